"""Tortoise models: keys stored as keyed hashes, cascades, the event log's uniqueness."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from tortoise.exceptions import IntegrityError

from agent.eventlog import EventLog
from models import ApiKey, Event, Message, Session
from models.auth import LOOKUP_CHARS, KeyHasher


async def test_keys_are_stored_as_a_keyed_hash_and_found_by_its_start(db) -> None:
    hasher = KeyHasher(b"a-server-secret-of-some-length")
    record, raw = await ApiKey.issue("k", hasher)
    expected = hmac.new(b"a-server-secret-of-some-length", raw.encode(), hashlib.sha256).hexdigest()
    assert record.key_hash == expected and record.lookup_id == expected[:LOOKUP_CHARS]
    assert hashlib.sha256(raw.encode()).hexdigest() != record.key_hash
    assert raw not in {record.key_hash, record.name}
    assert (await ApiKey.lookup(raw, hasher)).id == record.id
    assert await ApiKey.lookup(raw + "x", hasher) is None
    # The same key under another server's secret is not a key at all.
    assert await ApiKey.lookup(raw, KeyHasher(b"another-server-secret")) is None


async def test_a_key_whose_lookup_id_matches_but_whose_hash_does_not_is_refused(db) -> None:
    hasher = KeyHasher(b"a-server-secret-of-some-length")
    record, raw = await ApiKey.issue("k", hasher)
    record.key_hash = record.lookup_id + "0" * (64 - LOOKUP_CHARS)
    await record.save()
    assert await ApiKey.lookup(raw, hasher) is None


async def test_a_key_stored_as_plain_sha256_works_once_and_is_re_stored_keyed(db) -> None:
    hasher = KeyHasher(b"a-server-secret-of-some-length")
    raw = "qk_from-before-keyed-hashes"
    old = await ApiKey.create(name="old", key_hash=hashlib.sha256(raw.encode()).hexdigest())
    assert await ApiKey.count_unkeyed() == 1
    assert await ApiKey.lookup("qk_wrong", hasher) is None
    assert (await ApiKey.lookup(raw, hasher)).id == old.id
    stored = await ApiKey.get(id=old.id)
    assert stored.key_hash == hasher.digest(raw) and stored.lookup_id is not None
    assert await ApiKey.count_unkeyed() == 0
    assert (await ApiKey.lookup(raw, hasher)).id == old.id


def test_a_short_server_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        KeyHasher(b"short")


async def test_deleting_a_session_deletes_its_messages_and_events(session) -> None:
    await Message.create(session=session, role="user", content="hi")
    await Event.create(session=session, seq=1, type="token", frame="{}")
    await session.delete()
    assert await Message.all().count() == 0 and await Event.all().count() == 0


async def test_a_seq_is_stored_once_per_session(session) -> None:
    await Event.create(session=session, seq=1, type="token", frame="{}")
    with pytest.raises(IntegrityError):
        await Event.create(session=session, seq=1, type="token", frame="{}")


async def test_event_log_writes_behind_and_reads_in_order(session) -> None:
    log = EventLog(flush_interval_s=60)
    for seq in (1, 2, 3):
        log.append(session.id, seq, "token", "t", f'{{"seq":{seq}}}')
    assert await Event.all().count() == 0  # nothing written yet
    assert await log.last_seq(session.id) == 3  # but the seq is known
    assert await log.read(session.id, after=1, limit=10) == ['{"seq":2}', '{"seq":3}']
    assert await log.last_seq(session.id) == 3
    other = await Session.create(owner_id=session.owner_id)
    assert await log.last_seq(other.id) == 0
