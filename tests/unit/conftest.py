"""Unit fixtures: an in-memory database, the kit's scripted model, a fresh plugin host."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.bus import EventBus, Outgoing, Subscriber
from agent.eventlog import EventLog
from agent.loop import AgentLoop
from agent.pending import PendingRequests
from agent.turns import TurnRunner
from models import ApiKey, Session
from models.auth import KeyHasher
from models.db import close_db, init_db
from plugins.hookspecs import hookimpl
from plugins.manager import PluginHost, build_plugin_host
from plugins.skills import SessionContext
from quartet.testing import ScriptedModel

#: Keys issued by unit tests are hashed with this secret.
TEST_KEYS = KeyHasher(b"unit-test-server-secret")


class ScriptedModelPlugin:
    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    @hookimpl
    def register_models(self, register) -> None:
        register(self.model)


@pytest.fixture
async def db() -> AsyncIterator[None]:
    await init_db("sqlite://:memory:")
    yield
    await close_db()


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def host(scripted: ScriptedModel, tmp_path: Path) -> PluginHost:
    return build_plugin_host(tmp_path / "none.toml", extra=[ScriptedModelPlugin(scripted)])


@pytest.fixture
async def session(db) -> Session:
    key, _ = await ApiKey.issue("tester", TEST_KEYS)
    return await Session.create(owner_id=key.id, title="unit")


@dataclass
class Rig:
    """A turn runner wired like the app's, with one subscribed outbox."""

    runner: TurnRunner
    pending: PendingRequests
    ctx: SessionContext
    outbox: Subscriber

    async def frames_until(self, *types: str) -> list[dict]:
        """Frames from the outbox up to and including the first of one of *types*."""
        frames: list[Outgoing] = []
        while not frames or frames[-1].event.type not in types:
            frames += await self.outbox.drain()
        return [json.loads(item.frame) for item in frames]

    async def frames_until_end(self) -> list[dict]:
        return await self.frames_until("final_answer", "error")


@pytest.fixture
def confirmation_timeout_s() -> float:
    return 30.0


@pytest.fixture
async def rig(host, session, confirmation_timeout_s) -> AsyncIterator[Rig]:
    bus = EventBus(EventLog(flush_interval_s=60))
    pending = PendingRequests(confirmation_timeout_s)
    loop = AgentLoop(host, pending, model_name="scripted", max_rounds=4)
    runner = TurnRunner(host, bus, loop)
    ctx = SessionContext(session_id=session.id, owner_id=session.owner_id)
    outbox = Subscriber(1000)
    (await bus.channel(session.id)).subscribers.add(outbox)
    yield Rig(runner, pending, ctx, outbox)
    # Turns a test left waiting end, and their writes land, before the database closes.
    await runner.shutdown()
    await bus.log.stop()
