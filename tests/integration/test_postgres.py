"""Quartet's storage on a real PostgreSQL: migrations, the event log, crash recovery."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agent.bus import EventBus
from agent.eventlog import EventLog
from agent.loop import AgentLoop
from agent.pending import PendingRequests
from agent.turns import TurnRunner
from models import ApiKey, Event, Message, Session
from models.db import close_db, init_db, migrate, tortoise_config
from plugins.manager import build_plugin_host
from tests.services import PostgresServer


@pytest.fixture
async def pg_url(postgres: PostgresServer) -> AsyncIterator[str]:
    url = postgres.create_database(f"q_{uuid.uuid4().hex[:12]}")
    await init_db(url)
    yield url
    await close_db()


async def test_migrations_apply_and_reapply(pg_url: str) -> None:
    await migrate(tortoise_config(pg_url))  # a second start changes nothing
    key, raw = await ApiKey.issue("pg")
    assert (await ApiKey.lookup(raw)).id == key.id
    session = await Session.create(owner_id=key.id, metadata={"a": [1, 2]})
    await Message.create(session=session, role="assistant", content="x", usage={"input_tokens": 1})
    assert (await Session.get(id=session.id)).metadata == {"a": [1, 2]}
    assert (await Message.get(session=session)).usage == {"input_tokens": 1}


async def test_event_log_and_crash_recovery(pg_url: str, tmp_path) -> None:
    key, _ = await ApiKey.issue("pg")
    session = await Session.create(owner_id=key.id)
    log = EventLog(flush_interval_s=60)
    for seq in (1, 2):
        log.append(session.id, seq, "token", "t1", '{"type":"token","content":"ab"}')
    assert await log.last_seq(session.id) == 2
    assert await log.read(session.id, after=0) == ['{"type":"token","content":"ab"}'] * 2
    await Message.create(session=session, turn_id="t1", role="user", content="hi")
    host = build_plugin_host(tmp_path / "none.toml")
    bus = EventBus(log)
    runner = TurnRunner(host, bus, AgentLoop(host, PendingRequests(1), model_name="demo"))
    assert await runner.close_interrupted() == 1
    answer = await Message.get(turn_id="t1", role="assistant")
    assert (answer.content, answer.status) == ("abab", "error")
    assert (await Event.filter(session=session).order_by("-seq").first()).type == "error"
