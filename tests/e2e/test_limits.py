"""Per-key limits against a real server: rates, sockets, sessions, body size, slow clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import TURN_END, is_type, recv_until
from tests.e2e.raw_ws import RawWebSocket
from tests.e2e.server import QuartetServer

LIMITS = {
    "QUARTET_MESSAGES_PER_MINUTE": "6",  # one every 10 s...
    "QUARTET_MESSAGE_BURST": "2",  # ...after two at once
    "QUARTET_REQUESTS_PER_MINUTE": "60",
    "QUARTET_REQUEST_BURST": "10",
    "QUARTET_MAX_SOCKETS_PER_KEY": "2",
    "QUARTET_MAX_SESSIONS_PER_KEY": "3",
    "QUARTET_MAX_BODY_BYTES": "4096",
    "QUARTET_CLIENT_QUEUE_SIZE": "16",
    "QUARTET_TCP_USER_TIMEOUT_S": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    data_dir = tmp_path_factory.mktemp("limits")
    env = {**LIMITS, "QUARTET_PLUGINS_FILE": str(data_dir / "none.toml")}
    server = QuartetServer(data_dir, env=env, launcher="serve").start()
    yield server
    server.stop()


class Client:
    """One fresh key's view of the server (each test gets its own buckets and counts)."""

    def __init__(self, server: QuartetServer, key: str) -> None:
        self.server = server
        self.key = key
        self.http = httpx.Client(base_url=server.base_url, headers={"X-API-Key": key}, timeout=30)

    def session(self) -> str:
        response = self.http.post("/api/v1/sessions", json={})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def ws_url(self, session_id: str) -> str:
        return f"{self.server.base_ws_url}/api/v1/chat/ws/{session_id}?api_key={self.key}"


@pytest.fixture
def client(server: QuartetServer) -> Iterator[Client]:
    admin = {"X-API-Key": server.api_key}
    created = httpx.post(
        f"{server.base_url}/api/v1/keys", json={"name": "limited"}, headers=admin, timeout=30
    )
    assert created.status_code == 201, created.text
    client = Client(server, created.json()["key"])
    yield client
    client.http.close()


async def test_messages_past_the_rate_get_rate_limited_with_retry_after(client: Client) -> None:
    session_id = client.session()
    async with (
        websockets.connect(client.ws_url(session_id)) as ws,
        websockets.connect(client.ws_url(session_id)) as other,
    ):
        await recv_until(ws, is_type("connected"))
        await recv_until(other, is_type("connected"))
        for text in ("one", "two"):
            await ws.send(json.dumps({"type": "message", "content": text}))
            assert (await recv_until(ws, is_type(*TURN_END)))[-1]["type"] == "final_answer"
        # The burst is spent, for the key's every socket.
        for sock in (ws, other):
            await sock.send(json.dumps({"type": "message", "content": "three"}))
            error = (await recv_until(sock, is_type("error")))[-1]
            assert error["code"] == "rate_limited" and error["retryable"] is True
            assert 5 < error["retry_after"] <= 10
        # The connection is still usable.
        await ws.send(json.dumps({"type": "ping"}))
        await recv_until(ws, is_type("pong"))
    messages = client.http.get(f"/api/v1/sessions/{session_id}/messages").json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["one", "two"]


def test_requests_past_the_rate_get_429_with_retry_after(client: Client, server) -> None:
    statuses = [client.http.get("/api/v1/sessions").status_code for _ in range(12)]
    assert statuses[:9] == [200] * 9 and statuses[-1] == 429
    refused = client.http.get("/api/v1/sessions")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert refused.json()["error"]["code"] == "rate_limited"
    # Another key is not held back.
    assert httpx.get(
        f"{server.base_url}/api/v1/sessions", headers={"X-API-Key": server.api_key}
    ).is_success


async def test_a_key_holds_at_most_its_socket_limit(client: Client) -> None:
    session_id = client.session()
    first = await websockets.connect(client.ws_url(session_id))
    async with websockets.connect(client.ws_url(session_id)):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(client.ws_url(session_id))
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body)["error"]["code"] == "too_many_sockets"
        await first.close()
        for _ in range(50):  # the server notices the close a moment later
            try:
                third = await websockets.connect(client.ws_url(session_id))
                break
            except InvalidStatus:
                await asyncio.sleep(0.1)
        await third.close()


def test_a_key_holds_at_most_its_session_limit(client: Client) -> None:
    ids = [client.session() for _ in range(3)]
    refused = client.http.post("/api/v1/sessions", json={})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "session_limit"
    assert "QUARTET_MAX_SESSIONS_PER_KEY" in refused.json()["error"]["message"]
    assert client.http.delete(f"/api/v1/sessions/{ids[0]}").status_code == 204
    client.session()


def test_a_body_past_the_limit_gets_413_in_the_envelope(client: Client) -> None:
    big = {"title": "x", "metadata": {"blob": "y" * 5000}}
    refused = client.http.post("/api/v1/sessions", json=big)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it is read
        yield json.dumps(big).encode()

    refused = client.http.post(
        "/api/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "too_large"


def test_a_client_that_stops_reading_is_let_go_on_the_servers_clock(client: Client) -> None:
    session_id = client.session()
    path = f"/api/v1/chat/ws/{session_id}?api_key={client.key}"
    slow = RawWebSocket.connect(client.server.port, path, receive_buffer=4096)
    holder = RawWebSocket.connect(client.server.port, path)
    try:
        assert slow.status == holder.status == 101
        while slow.read_frame()[0] != RawWebSocket.TEXT:  # `connected` (a ping may come first)
            pass
        # A long answer to a client that now reads nothing at all.
        slow.send_text(json.dumps({"type": "message", "content": "[[lorem:100000]] go"}))
        started = time.monotonic()
        # The key holds its limit (2) until the server lets the slow socket go.
        third = RawWebSocket.connect(client.server.port, path)
        while third.status != 101:
            third.close()
            assert time.monotonic() - started < 30, "the slow client was never let go"
            time.sleep(0.2)
            third = RawWebSocket.connect(client.server.port, path)
        third.close()
        # ...and, the client's window staying shut, the kernel drops its connection.
        while slow.server_side_open():
            assert time.monotonic() - started < 30, "the slow client's TCP connection lives on"
            time.sleep(0.2)
    finally:
        slow.close()
        holder.close()
