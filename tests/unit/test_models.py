"""Tortoise models: hashed keys, cascades, the event log's uniqueness."""

from __future__ import annotations

import hashlib

import pytest
from tortoise.exceptions import IntegrityError

from agent.eventlog import EventLog
from models import ApiKey, Event, Message, Session


async def test_keys_are_stored_hashed(db) -> None:
    record, raw = await ApiKey.issue("k")
    assert record.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {record.key_hash, record.name}
    assert (await ApiKey.lookup(raw)).id == record.id
    assert await ApiKey.lookup(raw + "x") is None


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
