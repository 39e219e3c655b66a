"""API keys. Only a SHA-256 hash of a key is stored; the raw key is shown once."""

from __future__ import annotations

import hashlib
import secrets

from tortoise import fields
from tortoise.models import Model

KEY_PREFIX = "qk_"


def generate_key() -> str:
    """A new raw API key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw: str) -> str:
    # Keys are high-entropy random strings, so a fast hash is enough: there is
    # nothing to brute-force that a slow KDF would protect.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    key_hash = fields.CharField(max_length=64, unique=True)
    is_admin = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_keys"

    def __str__(self) -> str:
        return f"ApiKey({self.name})"

    @classmethod
    async def issue(cls, name: str, *, is_admin: bool = False) -> tuple[ApiKey, str]:
        """Create a key; returns the record and the raw key (not stored anywhere)."""
        raw = generate_key()
        record = await cls.create(name=name, key_hash=hash_key(raw), is_admin=is_admin)
        return record, raw

    @classmethod
    async def lookup(cls, raw: str) -> ApiKey | None:
        return await cls.get_or_none(key_hash=hash_key(raw))
