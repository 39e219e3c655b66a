"""The key store: where the server secret comes from, and the admin key's record."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.keys import SECRET_FILE, KeyStore, read_or_create
from models import ApiKey
from models.auth import KeyHasher
from settings import Settings

ADMIN_KEY = "qk_an-admin-key-long-enough"


def test_a_missing_file_is_made_once_whole_and_private(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "secret"
    made = iter(f"value-{i}" for i in range(100))
    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: read_or_create(path, lambda: next(made)), range(32)))
    assert len(values) == 1 and values == {path.read_text()}
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # nothing left aside


async def test_the_secret_is_made_in_the_data_dir_and_kept(db, tmp_path: Path) -> None:
    store = KeyStore(Settings(data_dir=tmp_path, api_key=ADMIN_KEY))
    await store.start()
    secret = (tmp_path / SECRET_FILE).read_bytes()
    admin = await store.find(ADMIN_KEY)
    assert admin is not None and admin.is_admin
    assert admin.key_hash == KeyHasher(secret).digest(ADMIN_KEY)
    again = KeyStore(Settings(data_dir=tmp_path, api_key=ADMIN_KEY))
    await again.start()
    assert (await again.find(ADMIN_KEY)).id == admin.id
    assert await ApiKey.all().count() == 1


async def test_quartet_secret_key_is_used_when_set(db, tmp_path: Path) -> None:
    store = KeyStore(
        Settings(data_dir=tmp_path, api_key=ADMIN_KEY, secret_key="shared-by-every-host")
    )
    await store.start()
    assert not (tmp_path / SECRET_FILE).exists()
    record, raw = await store.issue("client")
    assert record.key_hash == KeyHasher(b"shared-by-every-host").digest(raw)
    assert (await store.find(raw)).id == record.id
    assert await store.find(raw[:-1]) is None


async def test_keys_stored_unkeyed_are_counted_at_start(db, tmp_path: Path, caplog) -> None:
    await ApiKey.create(name="old", key_hash=hashlib.sha256(b"qk_old").hexdigest())
    with caplog.at_level(logging.WARNING, logger="agent.keys"):
        await KeyStore(Settings(data_dir=tmp_path, api_key=ADMIN_KEY)).start()
    assert "1 API key(s) are still stored as plain SHA-256" in caplog.text


@pytest.mark.parametrize("field", ["api_key", "secret_key"])
def test_short_admin_keys_and_secrets_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(**{field: "a" * 15})
    Settings(**{field: "a" * 16})
