"""E2E fixtures: a real hypercorn server on loopback, an HTTP client, a WebSocket helper.

The seed suite (shared/seeds/) imports ``WSChatHelper``, ``create_session_via_api``
and ``register_skill_via_api`` from here, and uses the ``ws_helper`` and
``api_client`` fixtures.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.e2e.server import QuartetServer

TURN_END = ("final_answer", "error")
TEST_PLUGINS = """
[plugins]
enabled = ["plugins.examples.weather", "tests.e2e.sample_plugins"]
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def quartet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    data_dir = tmp_path_factory.mktemp("quartet")
    plugins_file = data_dir / "plugins.toml"
    plugins_file.write_text(TEST_PLUGINS)
    env = {
        "QUARTET_PLUGINS_FILE": str(plugins_file),
        # Every test here shares the admin key; the rate limits have their own server
        # in test_limits.py.
        "QUARTET_MESSAGES_PER_MINUTE": "0",
        "QUARTET_REQUESTS_PER_MINUTE": "0",
    }
    server = QuartetServer(data_dir, env=env).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_client(quartet_server: QuartetServer) -> Iterator[httpx.Client]:
    """A synchronous HTTP client for the server, already carrying the admin key."""
    with httpx.Client(
        base_url=quartet_server.base_url, headers={"X-API-Key": quartet_server.api_key}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def ws_helper(quartet_server: QuartetServer) -> WSChatHelper:
    return WSChatHelper(quartet_server.base_ws_url, quartet_server.api_key)


@pytest.fixture(scope="session")
def other_client(api_client: httpx.Client, quartet_server: QuartetServer) -> Iterator[httpx.Client]:
    """A client with a second, non-admin key."""
    key = api_client.post("/api/v1/keys", json={"name": "other"}).json()["key"]
    with httpx.Client(base_url=quartet_server.base_url, headers={"X-API-Key": key}) as client:
        yield client


class WSChatHelper:
    """Talks to the chat WebSocket the way a simple client would."""

    def __init__(self, base_ws_url: str, api_key: str) -> None:
        self.base_ws_url = base_ws_url
        self.api_key = api_key

    def url(self, session_id: str, **params: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"api_key": self.api_key, **params}.items())
        return f"{self.base_ws_url}/api/v1/chat/ws/{session_id}?{query}"

    async def connect_and_chat(
        self,
        session_id: str,
        outgoing: list[dict],
        *,
        idle_timeout: float = 1.0,
        turn_timeout: float = 30.0,
    ) -> list[dict]:
        """Connect, send each frame, and return every frame received.

        After a ``message`` frame it reads until that turn ends (``final_answer``
        or ``error``) before sending the next frame; after the last frame it
        keeps reading until the turn ends or nothing more comes for
        ``idle_timeout`` seconds.
        """
        received: list[dict] = []
        async with websockets.connect(self.url(session_id)) as ws:

            async def read(timeout: float) -> dict | None:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                except TimeoutError:
                    return None
                received.append(frame)
                return frame

            await read(10)
            for frame in outgoing:
                await ws.send(json.dumps(frame))
                if frame.get("type") == "message":
                    while (got := await read(turn_timeout)) and got.get("type") not in TURN_END:
                        pass
            if not outgoing or outgoing[-1].get("type") != "message":
                while await read(idle_timeout):
                    pass
        return received


def create_session_via_api(api_client: httpx.Client, title: str = "e2e") -> str:
    response = api_client.post("/api/v1/sessions", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def register_skill_via_api(
    api_client: httpx.Client, name: str, keywords: list[str], **fields: object
) -> dict:
    """Create or replace a REST skill (idempotent, so tests can share a server)."""
    response = api_client.put(f"/api/v1/skills/{name}", json={"keywords": keywords, **fields})
    assert response.status_code in (200, 201), response.text
    return response.json()


async def recv_until(ws, predicate, timeout: float = 30.0) -> list[dict]:
    """Read frames until one satisfies *predicate*; returns all read, that one last."""
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        frames.append(frame)
        if predicate(frame):
            return frames


def is_type(*types: str):
    return lambda frame: frame["type"] in types


async def connect(ws_helper: WSChatHelper, session_id: str, **params):
    ws = await websockets.connect(ws_helper.url(session_id, **params))
    connected = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert connected["type"] == "connected"
    return ws, connected


async def send(ws, frame: dict | str | bytes) -> None:
    await ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))


async def ping_pong(ws) -> dict:
    """The connection is alive: a ping gets a pong (skipping anything in between)."""
    await send(ws, {"type": "ping"})
    return (await recv_until(ws, is_type("pong"), timeout=10))[-1]


async def recv_one(ws) -> dict:
    """The next frame, whatever it is."""
    return (await recv_until(ws, lambda frame: True, timeout=10))[0]


async def recv_replay(ws, connected: dict) -> list[dict]:
    """The frames a resume replays after ``connected`` (``resumed`` of them)."""
    return [await recv_one(ws) for _ in range(connected["resumed"])]
