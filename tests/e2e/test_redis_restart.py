"""Redis restarts under two server processes that share it and PostgreSQL.

Process A and process B are real hypercorn servers; Redis is this module's
own, so stopping it disturbs no other test. Redis is stopped (SIGTERM) while
a client on B watches a turn running on A, and killed (SIGKILL) between
turns; each time it comes back empty on the same port, as a restarted Redis
without persistence does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import TURN_END, connect, is_type, recv_replay, recv_until, send
from tests.e2e.server import QuartetServer
from tests.e2e.test_scale_out import API_KEY, SAVE_NOTE, Pair, check_seqs, text_of
from tests.services import PostgresServer, RedisServer

#: Replies to one client's own frame: unlogged, they carry the session's current seq.
REPLY_CODES = ("busy", "unavailable", "no_active_turn")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    if reason := server.unavailable():
        pytest.skip(f"NO REDIS: {reason}")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def pair(
    postgres: PostgresServer, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    env = {
        "QUARTET_DATABASE_URL": postgres.create_database(f"restart_{uuid.uuid4().hex[:12]}"),
        "QUARTET_REDIS_URL": redis.url,
        "QUARTET_TURN_LEASE_S": "2",
        "QUARTET_SECRET_KEY": "redis-restart-shared-secret",
    }
    a = QuartetServer(tmp_path_factory.mktemp("a"), api_key=API_KEY, env=env).start()
    b = QuartetServer(tmp_path_factory.mktemp("b"), api_key=API_KEY, env=env).start()
    pair = Pair(a, b, env)
    yield pair
    pair.a.stop()
    pair.b.stop()


def logged(frames: list[dict]) -> list[dict]:
    """The frames every client of the session gets (not pongs, not replies to one client)."""
    return [
        f
        for f in frames
        if f["type"] != "pong" and not (f["type"] == "error" and f["code"] in REPLY_CODES)
    ]


def not_tokens(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] != "token"]


def stored_events(pair: Pair, sid: str, after: int = 0) -> list[dict]:
    with pair.client(pair.b) as client:
        page = client.get(f"/api/v1/sessions/{sid}/events", params={"after": after, "limit": 10000})
    assert page.status_code == 200, page.text
    return page.json()["items"]


def assert_healthy(pair: Pair) -> None:
    """Both processes still run, saw the outage and its end, and logged no traceback."""
    for server in (pair.a, pair.b):
        assert server.proc is not None and server.proc.poll() is None
        output = server.output()
        assert "Traceback" not in output, output[-4000:]
        assert "Redis unreachable" in output and "Redis reachable again" in output


async def send_message_until_taken(ws, content: str, until, timeout: float = 10) -> list[dict]:
    """Send a message, again while it is refused ``unavailable`` (retryable): for a lease
    TTL after Redis came back empty no process takes a new turn, and nothing announces
    the end of that grace, so this polls it. Returns the frames read up to *until*."""
    deadline = time.monotonic() + timeout
    frames: list[dict] = []

    def refused(frame: dict) -> bool:
        return frame["type"] == "error" and frame["code"] == "unavailable"

    while True:
        await send(ws, {"type": "message", "content": content})
        frames += await recv_until(ws, lambda f: refused(f) or until(f))
        if not refused(frames[-1]):
            return frames
        assert frames.pop()["retryable"] and time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def resume_on_b(pair: Pair, sid: str, last_seq: int) -> list[dict]:
    ws, connected = await connect(pair.helper(pair.b), sid, last_seq=last_seq)
    async with ws:
        return await recv_replay(ws, connected)


async def test_a_restart_while_b_watches_a_turn_on_a(pair: Pair, redis: RedisServer) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    wb, _ = await connect(pair.helper(pair.b), sid)
    async with wa, wb:
        # A long answer, behind a confirmation: it streams once the confirmation is answered.
        await send(wa, {"type": "message", "content": f"{SAVE_NOTE} [[slow:10]] [[lorem:5000]]"})
        seen_a = await recv_until(wa, is_type("confirmation_request"))
        seen_b = await recv_until(wb, is_type("confirmation_request"))
        request = seen_a[-1]
        assert seen_b[-1] == request

        stopped = time.monotonic()
        redis.stop()
        # The turn goes on, on A: its client answers there, and the answer streams.
        await send(
            wa,
            {"type": "confirmation_reply", "request_id": request["request_id"], "approved": True},
        )
        seen_a += await recv_until(wa, is_type("token"))
        # B still serves its client, but takes no turn: the lease is in Redis.
        await send(wb, {"type": "message", "content": "me too"})
        seen_b += await recv_until(wb, is_type("error"))
        assert seen_b[-1] == seen_b[-1] | {"code": "unavailable", "retryable": True}
        await send(wb, {"type": "ping"})
        seen_b += await recv_until(wb, is_type("pong"))
        relayed_while_down = [f for f in seen_b if f["seq"] > request["seq"]]
        seen_a += await recv_until(wa, lambda f: f["seq"] >= request["seq"] + 50)
        down_last = seen_a[-1]["seq"]

        restarted = time.monotonic()
        redis.start()
        # B relays again: what its client missed (from the log), then the live stream.
        seen_b += await recv_until(wb, lambda f: f["seq"] > down_last and f["type"] == "token")
        relayed_again = time.monotonic()
        # The turn's lease is A's again: once the grace is over, B refuses a second turn.
        seen_b += await send_message_until_taken(wb, "me too", is_type("error"))
        assert seen_b[-1]["code"] == "busy", seen_b[-1]
        refused_busy = time.monotonic()
        # And a cancel sent to B reaches the turn on A.
        await send(wb, {"type": "cancel"})
        seen_b += await recv_until(wb, is_type("error"))
        seen_a += await recv_until(wa, is_type("error"))
    print(
        f"\nrestart mid-turn: Redis down {restarted - stopped:.2f} s, A streamed "
        f"{down_last - request['seq']} frames meanwhile and B's client got "
        f"{len(relayed_while_down)}; relays back "
        f"{relayed_again - restarted:.2f} s after the restart; B refused with busy "
        f"{refused_busy - restarted:.2f} s after it; A streamed to seq {seen_a[-1]['seq']}"
    )

    # B's client got every frame A's client got, in order, each once, with no gap.
    turn_a, turn_b = logged(seen_a), logged(seen_b)
    check_seqs(turn_a)
    check_seqs(turn_b)
    assert turn_a[-1] == turn_b[-1] == turn_a[-1] | {"type": "error", "code": "cancelled"}
    assert not_tokens(turn_a) == not_tokens(turn_b)
    assert text_of(turn_a) == text_of(turn_b)
    assert len(text_of(turn_a).split()) > 50

    # The log holds the whole turn, with no gap and no seq twice.
    stored = stored_events(pair, sid)
    seqs = [f["seq"] for f in stored]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert stored[-1] == turn_a[-1]
    assert text_of(stored) == text_of(turn_a)
    # A client that resumes on B from before the restart gets all of it.
    replay = await resume_on_b(pair, sid, request["seq"])
    check_seqs(replay)
    assert replay[0]["seq"] > request["seq"]
    assert not_tokens(replay) == not_tokens([f for f in stored if f["seq"] > request["seq"]])
    assert text_of(replay) == text_of(stored)

    # One turn, one answer: no process closed A's turn as dead while Redis was away.
    with pair.client(pair.a) as client:
        rows = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    answers = [m for m in rows if m["role"] == "assistant"]
    assert [m["status"] for m in answers] == ["cancelled"]
    assert answers[0]["content"] == text_of(turn_a)
    assert_healthy(pair)
    assert "took back the turn lease" in pair.a.output()


async def test_a_restart_between_turns(pair: Pair, redis: RedisServer) -> None:
    sid = pair.session()
    wa, _ = await connect(pair.helper(pair.a), sid)
    wb, _ = await connect(pair.helper(pair.b), sid)
    async with wa, wb:
        await send(wa, {"type": "message", "content": "before the restart [[lorem:100]]"})
        seen_a = await recv_until(wa, is_type(*TURN_END))
        seen_b = await recv_until(wb, is_type(*TURN_END))
        assert seen_a[-1] == seen_b[-1] and seen_a[-1]["type"] == "final_answer"
        before = seen_a[-1]["seq"]

        redis.kill()
        # While Redis is down no process takes a turn, and says so; the rest answers.
        await send(wa, {"type": "message", "content": "during"})
        refused = (await recv_until(wa, is_type("error")))[-1]
        assert refused == refused | {"code": "unavailable", "retryable": True}
        assert [f["seq"] for f in stored_events(pair, sid)][-1] == before
        # A client still connects, and resumes from the log.
        joined = time.monotonic()
        replay = await resume_on_b(pair, sid, 0)
        joined = time.monotonic() - joined
        assert replay[-1] == seen_a[-1] and text_of(replay) == text_of(seen_a)

        restarted = time.monotonic()
        redis.start()
        # A turn on B after the restart: A's client sees it, numbered on from before.
        after_b = await send_message_until_taken(wb, "after the restart, on B", is_type(*TURN_END))
        after_a = await recv_until(wa, is_type(*TURN_END))
        first_turn_done = time.monotonic()
        assert after_b[-1] == after_a[-1]
        assert after_b[-1] == after_b[-1] | {
            "type": "final_answer",
            "content": "You said: after the restart, on B",
        }
        assert not_tokens(logged(after_a)) == not_tokens(logged(after_b))
        assert text_of(after_a) == text_of(after_b)
        assert min(f["seq"] for f in logged(after_a + after_b)) > before

        # A confirmation of a turn on A is answered from B.
        await send(wa, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(wb, is_type("confirmation_request")))[-1]
        await send(
            wb,
            {"type": "confirmation_reply", "request_id": request["request_id"], "approved": True},
        )
        confirmed_b = await recv_until(wb, is_type(*TURN_END))
        confirmed_a = await recv_until(wa, is_type(*TURN_END))
    print(
        f"\nrestart between turns: a client joined B in {joined:.2f} s while Redis was down; "
        f"B's first turn after it ended "
        f"{first_turn_done - restarted:.2f} s after the restart (the lease grace is 2 s)"
    )
    for seen in (confirmed_a, confirmed_b):
        result = next(f for f in seen if f["type"] == "confirmation_result")
        assert result == result | {"approved": True, "by": "user"}
        assert seen[-1]["type"] == "final_answer" and "saved" in seen[-1]["content"]
    assert confirmed_a[-1] == confirmed_b[-1]

    # Everything is stored once, in order; a client resuming on B from 0 gets it all.
    stored = stored_events(pair, sid)
    check_seqs(stored)
    assert [f["type"] for f in stored if f["type"] == "final_answer"] == ["final_answer"] * 3
    replay = await resume_on_b(pair, sid, 0)
    check_seqs(replay)
    assert not_tokens(replay) == not_tokens(stored)
    assert text_of(replay) == text_of(stored)
    with pair.client(pair.b) as client:
        rows = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["status"] for m in rows if m["role"] == "assistant"] == ["complete"] * 3
    assert_healthy(pair)
