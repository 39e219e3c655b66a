"""ChatConnection with an in-memory runtime: the slow-client policy and the replay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.connection import CLOSE_TOO_SLOW, ChatConnection
from agent.protocol import Token
from agent.runtime import Runtime
from models import ApiKey, Session
from plugins.manager import build_plugin_host
from plugins.skills import SessionContext
from settings import Settings


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url="sqlite://:memory:",
        data_dir=tmp_path,
        api_key="qk_unit-test-admin-key",
        client_queue_size=16,
    )
    rt = Runtime(settings, build_plugin_host(tmp_path / "none.toml"))
    await rt.startup()
    yield rt
    await rt.shutdown()


class Client:
    """A client whose reading the test controls: ``send`` blocks until ``reading`` is set."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.reading = asyncio.Event()
        self.first_frame = asyncio.Event()
        self.text = ""
        self.text_changed = asyncio.Event()

    async def send(self, frame: str) -> None:
        data = json.loads(frame)
        self.sent.append(data)
        if data["type"] == "token":
            self.text += data["content"]
            self.text_changed.set()
        self.first_frame.set()
        await self.reading.wait()

    async def wait_for_text(self, text: str) -> None:
        while self.text != text:
            self.text_changed.clear()
            await self.text_changed.wait()

    async def receive(self) -> str:
        await asyncio.Event().wait()  # says nothing
        raise AssertionError("unreachable")


async def open_connection(runtime: Runtime) -> tuple[ChatConnection, SessionContext]:
    key = await ApiKey.get(name="admin")
    session = await Session.create(owner_id=key.id)
    ctx = SessionContext(session_id=session.id, owner_id=key.id)
    channel = await runtime.bus.channel(session.id)
    return ChatConnection(runtime, ctx, channel, send=None, receive=None), ctx  # type: ignore[arg-type]


async def test_a_client_that_falls_too_far_behind_is_closed_and_the_rest_go_on(runtime) -> None:
    connection, ctx = await open_connection(runtime)
    slow, fast = Client(), Client()
    fast.reading.set()
    connection._send, connection._receive = slow.send, slow.receive
    other = ChatConnection(runtime, ctx, connection.channel, fast.send, fast.receive)
    slow_task = asyncio.create_task(connection.serve())
    fast_task = asyncio.create_task(other.serve())
    await slow.first_frame.wait()  # `connected` is out; the slow client now stops reading
    expected = ""
    for i in range(40):  # more than an outbox holds (16)
        connection.channel.publish(Token(content=f"t{i} "))
        expected += f"t{i} "
        # The fast client keeps up: the slow one does not hold it back.
        await asyncio.wait_for(fast.wait_for_text(expected), 10)
    assert connection.outbox.overflowed and not other.outbox.overflowed
    # The slow client still reads nothing: its send stays blocked, and the
    # connection ends all the same, on the server's clock.
    code, reason = await asyncio.wait_for(slow_task, 2)
    assert code == CLOSE_TOO_SLOW and "last_seq" in reason
    assert [f["type"] for f in slow.sent] == ["connected"]
    fast_task.cancel()
    await asyncio.gather(fast_task, return_exceptions=True)
    assert connection.outbox not in connection.channel.subscribers
