"""Quartet's storage on a real PostgreSQL: migrations, the event log, crash recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tortoise import connections

from agent.bus import EventBus
from agent.eventlog import EventLog
from agent.loop import AgentLoop
from agent.pending import PendingRequests
from agent.turns import TurnRunner
from models import ApiKey, Event, Message, Session
from models.auth import KeyHasher
from models.db import MIGRATION_LOCK_ID, close_db, init_db, migrate, tortoise_config
from plugins.manager import build_plugin_host
from tests.services import PostgresServer

KEYS = KeyHasher(b"postgres-test-secret")


@pytest.fixture
async def pg_url(postgres: PostgresServer) -> AsyncIterator[str]:
    url = postgres.create_database(f"q_{uuid.uuid4().hex[:12]}")
    await init_db(url)
    yield url
    await close_db()


async def test_migrations_apply_and_reapply(pg_url: str) -> None:
    await migrate(tortoise_config(pg_url))  # a second start changes nothing
    key, raw = await ApiKey.issue("pg", KEYS)
    assert (await ApiKey.lookup(raw, KEYS)).id == key.id
    session = await Session.create(owner_id=key.id, metadata={"a": [1, 2]})
    await Message.create(session=session, role="assistant", content="x", usage={"input_tokens": 1})
    assert (await Session.get(id=session.id)).metadata == {"a": [1, 2]}
    assert (await Message.get(session=session)).usage == {"input_tokens": 1}


async def test_processes_that_start_together_migrate_one_at_a_time(pg_url: str) -> None:
    # Another process holds the migration lock...
    other = await asyncpg.connect(pg_url.replace("postgres://", "postgresql://"))
    try:
        await other.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        migrating = asyncio.create_task(migrate(tortoise_config(pg_url)))
        # ...so this one waits for it, as PostgreSQL's lock table shows.
        while not await other.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            assert not migrating.done(), "migrate did not wait for the lock"
            await asyncio.sleep(0.01)
        await other.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
        await asyncio.wait_for(migrating, 10)
    finally:
        await other.close()
    held = await connections.get("default").execute_query_dict(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
    )
    assert held[0]["n"] == 0


async def test_event_log_and_crash_recovery(pg_url: str, tmp_path) -> None:
    key, _ = await ApiKey.issue("pg", KEYS)
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
