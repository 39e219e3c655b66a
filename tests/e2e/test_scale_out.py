"""Two server processes sharing PostgreSQL and Redis act as one service.

Each test talks to process A and process B, real hypercorn servers on their
own ports, started against a real PostgreSQL database and a real Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    TURN_END,
    WSChatHelper,
    connect,
    create_session_via_api,
    is_type,
    ping_pong,
    recv_replay,
    recv_until,
    register_skill_via_api,
    send,
)
from tests.e2e.server import QuartetServer
from tests.services import PostgresServer, RedisServer

API_KEY = "scale-out-key-0123456789"
SAVE_NOTE = '[[tool:save_note {"text": "from A"}]]'


@dataclass
class Pair:
    a: QuartetServer
    b: QuartetServer
    env: dict[str, str]

    def helper(self, server: QuartetServer) -> WSChatHelper:
        return WSChatHelper(server.base_ws_url, API_KEY)

    def client(self, server: QuartetServer) -> httpx.Client:
        return httpx.Client(base_url=server.base_url, headers={"X-API-Key": API_KEY})

    def session(self) -> str:
        with self.client(self.a) as client:
            return create_session_via_api(client)


@pytest.fixture(scope="module")
def pair(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    env = {
        "QUARTET_DATABASE_URL": postgres.create_database(f"pair_{uuid.uuid4().hex[:12]}"),
        "QUARTET_REDIS_URL": redis_server.url,
        "QUARTET_TURN_LEASE_S": "2",
        # Processes on several hosts (here: data dirs) must share the secret keys are hashed with.
        "QUARTET_SECRET_KEY": "scale-out-shared-secret",
    }
    a = QuartetServer(tmp_path_factory.mktemp("a"), api_key=API_KEY, env=env).start()
    b = QuartetServer(tmp_path_factory.mktemp("b"), api_key=API_KEY, env=env).start()
    pair = Pair(a, b, env)
    yield pair
    pair.a.stop()
    pair.b.stop()


async def logged_through(server: QuartetServer, sid: str, seq: int, timeout: float = 10) -> None:
    """Wait until the session's event log holds *seq* (no event says so; poll it)."""
    deadline = time.monotonic() + timeout
    headers = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
        while True:
            events = await client.get(f"/api/v1/sessions/{sid}/events", params={"after": seq - 1})
            if events.json()["items"]:
                return
            assert time.monotonic() < deadline, f"seq {seq} never reached the log"
            await asyncio.sleep(0.02)


def text_of(frames: list[dict]) -> str:
    return "".join(f["content"] for f in frames if f["type"] == "token")


def check_seqs(frames: list[dict]) -> None:
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs


async def test_clients_on_both_processes_see_the_same_turns(pair: Pair) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    wb, _ = await connect(pair.helper(pair.b), sid)
    async with wa, wb:
        await send(wa, {"type": "message", "content": "[[lorem:300]] hello from A"})
        seen_a = await recv_until(wa, is_type(*TURN_END))
        seen_b = await recv_until(wb, is_type(*TURN_END))
        # The next turn runs on B and numbers on from A's.
        await send(wb, {"type": "message", "content": "and from B"})
        seen_b += await recv_until(wb, is_type(*TURN_END))
        seen_a += await recv_until(wa, is_type(*TURN_END))
    for seen in (seen_a, seen_b):
        check_seqs(seen)
        assert [f["type"] for f in seen if f["type"] != "token"] == ["final_answer"] * 2
    finals = [f for f in seen_a if f["type"] == "final_answer"]
    assert finals == [f for f in seen_b if f["type"] == "final_answer"]
    assert finals[0]["content"].startswith("You said: hello from A lorem")
    assert finals[1]["content"] == "You said: and from B"
    assert text_of(seen_a) == text_of(seen_b) == finals[0]["content"] + finals[1]["content"]
    # Both turns are in the one log, in order.
    with pair.client(pair.b) as client:
        logged = client.get(f"/api/v1/sessions/{sid}/events").json()["items"]
    assert [e for e in logged if e["type"] == "final_answer"] == finals


async def test_b_answers_a_confirmation_of_a_turn_on_a(pair: Pair) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    async with wa:
        await send(wa, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(wa, is_type("confirmation_request")))[-1]
        # A client that joins on B gets the open request after `connected`.
        wb, connected = await connect(pair.helper(pair.b), sid)
        async with wb:
            assert connected["resumed"] == 1
            assert (await recv_replay(wb, connected)) == [request]
            await send(
                wb,
                {
                    "type": "confirmation_reply",
                    "request_id": request["request_id"],
                    "approved": True,
                },
            )
            seen_b = await recv_until(wb, is_type(*TURN_END))
        seen_a = await recv_until(wa, is_type(*TURN_END))
    for seen in (seen_a, seen_b):
        result = next(f for f in seen if f["type"] == "confirmation_result")
        assert result == result | {"approved": True, "by": "user"}
        assert seen[-1]["type"] == "final_answer" and "saved" in seen[-1]["content"]
    assert seen_a[-1] == seen_b[-1]


async def test_b_cancels_a_turn_on_a_and_starts_the_next(pair: Pair) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    wb, _ = await connect(pair.helper(pair.b), sid)
    async with wa, wb:
        await send(wa, {"type": "message", "content": "[[slow:200]] a long answer " * 5})
        await recv_until(wb, is_type("token"))
        # While A's turn runs, B refuses a second one.
        await send(wb, {"type": "message", "content": "me too"})
        busy = (await recv_until(wb, is_type("error")))[-1]
        assert busy["code"] == "busy"
        await send(wb, {"type": "cancel"})
        # A message right after the cancel waits for the cancelled turn to end.
        await send(wb, {"type": "message", "content": "instead"})
        seen_b = await recv_until(wb, is_type("error"))
        assert seen_b[-1]["code"] == "cancelled"
        seen_b += await recv_until(wb, is_type(*TURN_END))
        seen_a = await recv_until(wa, lambda f: f["type"] == "final_answer")
        await ping_pong(wa)
    assert seen_b[-1] == seen_b[-1] | {"type": "final_answer", "content": "You said: instead"}
    assert seen_a[-1] == seen_b[-1]
    assert next(f for f in seen_a if f["type"] == "error")["code"] == "cancelled"
    with pair.client(pair.a) as client:
        stored = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["status"] for m in stored if m["role"] == "assistant"] == ["cancelled", "complete"]


async def test_a_skill_registered_through_a_matches_on_b(pair: Pair) -> None:
    with pair.client(pair.a) as client:
        register_skill_via_api(client, "cluster-skill", ["kumquat"])
    sid = pair.session()
    frames = await pair.helper(pair.b).connect_and_chat(
        sid, [{"type": "message", "content": "a kumquat please"}]
    )
    assert frames[1] == frames[1] | {"type": "skill_match", "skill": "cluster-skill"}
    with pair.client(pair.b) as client:
        assert client.delete("/api/v1/skills/cluster-skill").status_code == 204
    frames = await pair.helper(pair.a).connect_and_chat(
        sid, [{"type": "message", "content": "a kumquat please"}]
    )
    assert "skill_match" not in [f["type"] for f in frames]


async def test_a_killed_mid_turn_then_restarted_the_client_resumes_on_b(
    pair: Pair, tmp_path: Path
) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    async with wa:
        await send(wa, {"type": "message", "content": "[[slow:100]] doomed words " * 10})
        live = await recv_until(wa, is_type("token"))
        live += await recv_until(wa, is_type("token"))
        last_seq = live[-1]["seq"]
        # The log is written behind: let it catch up with what the client saw,
        # then kill A mid-turn (a kill inside the flush interval loses those frames).
        await logged_through(pair.b, sid, last_seq)
        pair.a.kill()
    # A comes back at once; its turn's lease has not expired yet, so it is
    # closed by whichever process looks first once it has.
    pair.a = QuartetServer(tmp_path, api_key=API_KEY, env=pair.env).start()

    # The client resumes on B: the rest of what A logged, then the close.
    wb, connected = await connect(pair.helper(pair.b), sid, last_seq=last_seq)
    async with wb:
        replay = await recv_replay(wb, connected)
        rest = replay + (
            await recv_until(wb, is_type(*TURN_END))
            if not replay or replay[-1]["type"] != "error"
            else []
        )
        assert rest[-1] == rest[-1] | {"type": "error", "code": "interrupted", "retryable": True}
        check_seqs(live + rest)
        assert all(f["seq"] > last_seq for f in rest)
        # The session goes on, on B.
        await send(wb, {"type": "message", "content": "again"})
        after = await recv_until(wb, is_type(*TURN_END))
    assert after[-1] == after[-1] | {"type": "final_answer", "content": "You said: again"}
    with pair.client(pair.b) as client:
        stored = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    partial = next(m for m in stored if m["role"] == "assistant")
    assert partial["status"] == "error"
    # Nothing is lost: the stored partial answer is exactly what the client was sent.
    assert partial["content"] == text_of(live) + text_of(rest)

    # The restarted A serves the session as before.
    frames = await pair.helper(pair.a).connect_and_chat(
        sid, [{"type": "message", "content": "back on A"}]
    )
    assert frames[-1] == frames[-1] | {"type": "final_answer", "content": "You said: back on A"}
