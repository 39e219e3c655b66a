#!/bin/sh
# Install the servers the Postgres and Redis tests run against.
# Called by `make test`. Needs root and apt (Debian); anywhere else it says so
# and the tests that need the servers skip, loudly.
set -eu
need=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "WARNING: cannot install$need (needs root and apt-get); the Postgres and Redis tests will skip" >&2
    exit 0
fi
echo "installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || echo "WARNING: apt-get update failed" >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null \
    || echo "WARNING: apt-get install$need failed; the Postgres and Redis tests will skip" >&2
