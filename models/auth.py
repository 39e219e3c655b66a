"""API keys. Only a keyed hash of a key is stored; the raw key is shown once.

The hash is HMAC-SHA256 under the server secret (see :mod:`agent.keys`), so a
copy of the database alone gives nothing to test guessed keys against. Its
first :data:`LOOKUP_CHARS` hex digits, stored as ``lookup_id``, find the row;
the whole hash is then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tortoise import fields
from tortoise.models import Model

KEY_PREFIX = "qk_"
#: How much of the keyed hash the database indexes (64 bits: collisions are not a concern).
LOOKUP_CHARS = 16
MIN_SECRET_BYTES = 16


def generate_key() -> str:
    """A new raw API key: 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyHasher:
    """Keyed hashes of API keys: HMAC-SHA256 under the server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the server secret must have at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def digest(self, raw: str) -> str:
        """The 64 hex digits stored for the key *raw*."""
        return hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()


def _unkeyed_digest(raw: str) -> str:
    """How keys were stored before keyed hashes (plain SHA-256); read once, to upgrade a row."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    lookup_id = fields.CharField(
        max_length=LOOKUP_CHARS,
        unique=True,
        null=True,
        description="The start of key_hash, by which a presented key finds its row "
        "(null for a key stored before keyed hashes, until its first use).",
    )
    # HMAC-SHA256 of the key under the server secret, hex; plain SHA-256 while
    # lookup_id is null. (Not a field description: that would rebuild the table.)
    key_hash = fields.CharField(max_length=64, unique=True)
    is_admin = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_keys"

    def __str__(self) -> str:
        return f"ApiKey({self.name})"

    @classmethod
    async def issue(
        cls, name: str, hasher: KeyHasher, *, is_admin: bool = False
    ) -> tuple[ApiKey, str]:
        """Create a key; returns the record and the raw key (not stored anywhere)."""
        raw = generate_key()
        return await cls.store(name, raw, hasher, is_admin=is_admin), raw

    @classmethod
    async def store(
        cls, name: str, raw: str, hasher: KeyHasher, *, is_admin: bool = False
    ) -> ApiKey:
        """Create the record of a key chosen elsewhere (the operator's admin key)."""
        digest = hasher.digest(raw)
        return await cls.create(
            name=name, lookup_id=digest[:LOOKUP_CHARS], key_hash=digest, is_admin=is_admin
        )

    @classmethod
    async def lookup(cls, raw: str, hasher: KeyHasher) -> ApiKey | None:
        """The record of the key *raw*, or None if it is not a known key.

        A key stored before keyed hashes is found by its plain SHA-256 and
        re-stored with a keyed hash on the way.
        """
        digest = hasher.digest(raw)
        record = await cls.get_or_none(lookup_id=digest[:LOOKUP_CHARS])
        if record is not None:
            return record if hmac.compare_digest(record.key_hash, digest) else None
        legacy = _unkeyed_digest(raw)
        record = await cls.get_or_none(lookup_id__isnull=True, key_hash=legacy)
        if record is None or not hmac.compare_digest(record.key_hash, legacy):
            return None
        record.lookup_id, record.key_hash = digest[:LOOKUP_CHARS], digest
        await record.save(update_fields=["lookup_id", "key_hash"])
        return record

    @classmethod
    async def count_unkeyed(cls) -> int:
        """How many keys are still stored as plain SHA-256 (none once each has been used)."""
        return await cls.filter(lookup_id__isnull=True).count()
