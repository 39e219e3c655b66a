"""The API keys a server accepts: its secret, the admin key, issuing and finding keys.

Keys are stored as HMAC-SHA256 under a server secret (:class:`models.auth.KeyHasher`).
The secret is ``QUARTET_SECRET_KEY`` or, unset, one generated on first start
and kept in the data dir beside the dev key; processes on several hosts must
be given the same one.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.auth import ApiKey, KeyHasher, generate_key
from settings import Settings

log = logging.getLogger(__name__)

DEV_KEY_FILE = "dev_api_key"
SECRET_FILE = "secret_key"


class KeyStore:
    """Issues and finds API keys; :meth:`start` must run first (it reads the secret)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._hasher: KeyHasher | None = None

    @property
    def hasher(self) -> KeyHasher:
        if self._hasher is None:
            raise RuntimeError("KeyStore.start() has not run")
        return self._hasher

    def load_secret(self) -> KeyHasher:
        """Read (or make) the server secret; :meth:`start` does this first."""
        if self._hasher is None:
            self._hasher = KeyHasher(self._secret())
        return self._hasher

    async def start(self) -> None:
        """Read (or make) the secret, then make sure the admin key has a record."""
        self.load_secret()
        if unkeyed := await ApiKey.count_unkeyed():
            log.warning(
                "%d API key(s) are still stored as plain SHA-256; each is re-stored with "
                "a keyed hash on its first use",
                unkeyed,
            )
        raw = self.settings.api_key
        generated = raw is None
        if raw is None:
            raw = read_or_create(self.settings.data_dir / DEV_KEY_FILE, generate_key)
        if await ApiKey.lookup(raw, self.hasher) is None:
            await ApiKey.store("admin", raw, self.hasher, is_admin=True)
        if generated:
            print(f"Quartet dev API key: {raw}", file=sys.stderr, flush=True)

    async def issue(self, name: str, *, is_admin: bool = False) -> tuple[ApiKey, str]:
        """A new key; returns its record and the raw key, which is not kept."""
        return await ApiKey.issue(name, self.hasher, is_admin=is_admin)

    async def find(self, raw: str) -> ApiKey | None:
        """The record of the key *raw*, or None if it is not one."""
        return await ApiKey.lookup(raw, self.hasher)

    def _secret(self) -> bytes:
        if self.settings.secret_key is not None:
            return self.settings.secret_key.get_secret_value().encode()
        if self.settings.redis_url is not None:
            log.warning(
                "QUARTET_SECRET_KEY is unset: keys are hashed with %s, so every host of "
                "this service must share that file or set the same QUARTET_SECRET_KEY",
                self.settings.data_dir / SECRET_FILE,
            )
        return read_or_create(
            self.settings.data_dir / SECRET_FILE, lambda: secrets.token_urlsafe(32)
        ).encode()


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The text of *path*; if there is no such file, one holding ``make()``, readable by us only.

    Several workers starting at once agree on one value: the file appears
    whole (written aside, then linked into place) or not at all.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    aside = Path(aside_name)
    with os.fdopen(fd, "w") as f:
        f.write(make())
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another worker was first: use its value
    finally:
        aside.unlink()
    return path.read_text().strip()
