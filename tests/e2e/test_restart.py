"""State that must survive a server restart: REST skills (re-registered from the DB) and history."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import WSChatHelper, connect, is_type, recv_replay, recv_until, send
from tests.e2e.server import QuartetServer


def test_rest_skill_and_history_survive_a_restart(tmp_path: Path) -> None:
    server = QuartetServer(tmp_path, api_key="restart-key-0123456789").start()
    headers = {"X-API-Key": server.api_key}
    try:
        skill = {"keywords": ["persistent"]}
        assert (
            httpx.put(
                f"{server.base_url}/api/v1/skills/kept", json=skill, headers=headers
            ).status_code
            == 201
        )
        sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()[
            "id"
        ]
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        asyncio.run(helper.connect_and_chat(sid, [{"type": "message", "content": "before"}]))
    finally:
        server.stop()

    server = QuartetServer(tmp_path, api_key="restart-key-0123456789").start()
    try:
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        frames = asyncio.run(
            helper.connect_and_chat(sid, [{"type": "message", "content": "a persistent skill"}])
        )
        messages = httpx.get(f"{server.base_url}/api/v1/sessions/{sid}/messages", headers=headers)
    finally:
        server.stop()
    assert "kept" in {f.get("skill") for f in frames}
    assert [m["content"] for m in messages.json()["items"]][::2] == ["before", "a persistent skill"]
    # The seq carries on from the stored log after the restart.
    assert frames[0]["last_seq"] > 0 and frames[1]["seq"] == frames[0]["last_seq"] + 1


async def read_turn_until_stopped(
    server: QuartetServer, sid: str, content: str, enough, *, kill: bool = True
) -> list[dict]:
    """Start a turn, read until *enough* of it, then stop the server (SIGKILL or SIGTERM).

    :returns: every frame the client got, up to the closed connection.
    """
    helper = WSChatHelper(server.base_ws_url, server.api_key)
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": content})
        seen = await recv_until(ws, enough, timeout=60)
        await asyncio.to_thread(server.kill if kill else server.stop)
        try:
            while True:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except ConnectionClosed:
            pass
    return seen


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "sigterm"])
def test_a_turn_stopped_by_the_server_going_down_ends_interrupted(tmp_path: Path, kill) -> None:
    server = QuartetServer(tmp_path, api_key="crash-key-0123456789").start()
    headers = {"X-API-Key": server.api_key}
    sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()["id"]
    seen = asyncio.run(
        read_turn_until_stopped(
            server,
            sid,
            "[[slow:20]] " + "word " * 300,
            lambda f: f["type"] == "token" and f["seq"] >= 10,
            kill=kill,
        )
    )

    server = QuartetServer(tmp_path, api_key="crash-key-0123456789").start()
    try:
        helper = WSChatHelper(server.base_ws_url, server.api_key)

        async def resume() -> tuple[list[dict], list[dict]]:
            ws, connected = await connect(helper, sid, last_seq=seen[-1]["seq"])
            async with ws:
                replay = await recv_replay(ws, connected)
                await send(ws, {"type": "message", "content": "after"})
                after = await recv_until(ws, lambda f: f["type"] in ("final_answer", "error"))
            return replay, after

        replay, after = asyncio.run(resume())
        messages = httpx.get(
            f"{server.base_url}/api/v1/sessions/{sid}/messages", headers=headers
        ).json()["items"]
    finally:
        server.stop()
    # The replay holds what the turn logged after the client lost it, then its end.
    assert [f["type"] for f in replay[:-1]] == ["token"] * (len(replay) - 1)
    end = replay[-1]
    assert (end["type"], end["code"], end["retryable"]) == ("error", "interrupted", True)
    assert end["seq"] > seen[-1]["seq"] and end["turn_id"] == seen[0]["turn_id"]
    assert after[-1]["content"] == "You said: after" and after[0]["seq"] > end["seq"]
    interrupted = messages[1]
    assert interrupted["status"] == "error" and interrupted["content"]
    text = "".join(f["content"] for f in seen + replay if f["type"] == "token")
    if kill:
        # What was stored is what was logged: a SIGKILL may cost the frames of
        # the last flush interval, which the client saw live.
        assert text.startswith(interrupted["content"])
    else:
        assert interrupted["content"] == text


def test_kill_9_at_a_large_log_lag_loses_a_bounded_tail_and_reuses_no_seq(tmp_path: Path) -> None:
    # A flush interval far longer than the stream: only the high-water mark makes
    # the log keep up, so it alone bounds what a crash can lose.
    high_water = 100
    env = {"QUARTET_EVENT_FLUSH_INTERVAL_S": "60", "QUARTET_EVENT_LOG_HIGH_WATER": str(high_water)}
    key = "crash-key-0123456789"
    server = QuartetServer(tmp_path, api_key=key, env=env).start()
    headers = {"X-API-Key": key}
    sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()["id"]
    seen = asyncio.run(
        read_turn_until_stopped(server, sid, "[[lorem:50000]] go", lambda f: f["seq"] >= 12_000)
    )
    top_seen = max(f["seq"] for f in seen)

    server = QuartetServer(tmp_path, api_key=key, env=env).start()
    try:
        helper = WSChatHelper(server.base_ws_url, key)

        async def replay_then_chat() -> tuple[list[dict], list[dict]]:
            ws, connected = await connect(helper, sid, last_seq=0)
            async with ws:
                replay = await recv_replay(ws, connected)
                await send(ws, {"type": "message", "content": "after"})
                after = await recv_until(ws, is_type("final_answer", "error"))
            return replay, after

        replay, after = asyncio.run(replay_then_chat())
        events = httpx.get(
            f"{server.base_url}/api/v1/sessions/{sid}/events",
            params={"after": 0, "limit": 500},
            headers=headers,
        )
    finally:
        server.stop()
    assert events.status_code == 200
    end = replay[-1]
    assert (end["type"], end["code"]) == ("error", "interrupted")
    # No seq a client saw is handed out again: not to the turn's end, not to the next turn.
    assert end["seq"] > top_seen
    assert min(f["seq"] for f in after) > end["seq"]
    # What the client saw but the log lost is bounded by the high-water mark.
    replayed_text = "".join(f["content"] for f in replay if f["type"] == "token")
    seen_text = "".join(f["content"] for f in seen if f["type"] == "token")
    assert seen_text.startswith(replayed_text)
    lost = seen_text[len(replayed_text) :].split()
    assert len(lost) <= high_water + 5, f"{len(lost)} seen words not in the log"


def test_clients_that_give_up_mid_read_leave_every_write_on_disk(tmp_path: Path) -> None:
    # Issue 11's first reproduction: GET /events and last_seq=0 replays whose
    # clients vanish while a turn streams used to wedge the database in an open
    # transaction, so later writes answered 201 and were gone after a restart.
    key = "vanish-key-0123456789"
    server = QuartetServer(tmp_path, api_key=key).start()
    headers = {"X-API-Key": key}
    try:
        sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()
        sid = sid["id"]
        helper = WSChatHelper(server.base_ws_url, key)

        async def storm() -> list[dict]:
            ws, _ = await connect(helper, sid)
            async with ws:
                await send(ws, {"type": "message", "content": "[[lorem:5000]] go"})
                await recv_until(ws, is_type("token"))
                async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
                    for _ in range(40):
                        with contextlib.suppress(httpx.TimeoutException):
                            await http.get(
                                f"/api/v1/sessions/{sid}/events",
                                params={"after": 0},
                                timeout=0.002,
                            )
                        replay = await websockets.connect(helper.url(sid, last_seq=0))
                        replay.transport.abort()  # a reset, not a close
                return await recv_until(ws, is_type("final_answer", "error"), timeout=60)

        frames = asyncio.run(storm())
        created = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers)
        assert created.status_code == 201
    finally:
        server.stop()

    server = QuartetServer(tmp_path, api_key=key).start()
    try:
        kept = httpx.get(
            f"{server.base_url}/api/v1/sessions/{created.json()['id']}", headers=headers
        )
        events = httpx.get(
            f"{server.base_url}/api/v1/sessions/{sid}/events",
            params={"after": 0, "limit": 10_000},
            headers=headers,
        )
    finally:
        server.stop()
    assert frames[-1]["type"] == "final_answer"
    assert kept.status_code == 200
    assert events.status_code == 200
    stored = [e["seq"] for e in events.json()["items"]]
    assert stored[-1] == frames[-1]["seq"] and stored == sorted(set(stored))
