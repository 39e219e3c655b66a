#!/bin/sh
# Install what the Postgres, Redis and browser tests run against: PostgreSQL,
# Redis and Debian's Chromium (driven by Playwright, which downloads no browser).
# Called by `make test`. Needs root and apt (Debian); anywhere else it says so
# and the tests that need them skip, loudly.
set -eu
need=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "WARNING: cannot install$need (needs root and apt-get); the tests that need them will skip" >&2
    exit 0
fi
echo "installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || echo "WARNING: apt-get update failed" >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null \
    || echo "WARNING: apt-get install$need failed; the tests that need them will skip" >&2
if [ ! -x /usr/bin/chromium ]; then
    echo "##########################################################################" >&2
    echo "WARNING: Chromium is NOT installed: the web page's browser tests will SKIP" >&2
    echo "##########################################################################" >&2
fi
