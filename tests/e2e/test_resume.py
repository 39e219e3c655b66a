"""Resuming with ?last_seq=N: replay exactly what was missed, then live events."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import (
    TURN_END,
    connect,
    create_session_via_api,
    is_type,
    recv_one,
    recv_replay,
    recv_until,
    send,
)


def text_of(frames: list[dict]) -> str:
    return "".join(f["content"] for f in frames if f["type"] == "token")


def assert_increasing(frames: list[dict]) -> None:
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)), seqs


async def test_resume_replays_what_was_missed_then_goes_live(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    first = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "one"}])
    second = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "two three"}])
    seen = first[-1]["seq"]
    ws, connected = await connect(ws_helper, sid, last_seq=seen)
    async with ws:
        replay = await recv_replay(ws, connected)
        assert connected["last_seq"] == second[-1]["seq"]
        assert replay[-1] == second[-1]  # the final_answer, exactly as sent
        assert replay[0]["seq"] > seen
        assert_increasing(replay)
        assert text_of(replay) == "You said: two three"
        # Stored tokens are merged on replay: one token frame for the whole run.
        assert [f["type"] for f in replay] == ["token", "final_answer"]
        await send(ws, {"type": "message", "content": "four"})
        live = await recv_until(ws, is_type(*TURN_END))
    assert live[0]["seq"] == second[-1]["seq"] + 1
    assert live[-1]["content"] == "You said: four"


async def test_resume_during_a_running_turn_has_no_gap_and_no_duplicate(
    ws_helper, api_client
) -> None:
    sid = create_session_via_api(api_client)
    words = " ".join(f"w{i}" for i in range(60))
    first, _ = await connect(ws_helper, sid)
    async with first:
        await send(first, {"type": "message", "content": f"[[slow:15]] {words}"})
        early = await recv_until(first, lambda f: f["type"] == "token" and f["seq"] >= 5)
        late, connected = await connect(ws_helper, sid, last_seq=0)
        async with late:
            assert connected["resumed"] >= 1 and connected["last_seq"] >= early[-1]["seq"]
            got = await recv_until(late, is_type(*TURN_END))
        rest = await recv_until(first, is_type(*TURN_END))
    final = got[-1]
    assert final["type"] == "final_answer" and final == rest[-1]
    assert_increasing(got)
    assert text_of(got) == final["content"] == f"You said: {words}"
    assert text_of(early + rest) == final["content"]


async def test_a_turn_outlives_its_client(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    words = " ".join(f"w{i}" for i in range(40))
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": f"[[slow:15]] {words}"})
        before = await recv_until(ws, lambda f: f["type"] == "token" and f["seq"] >= 3)
    back, _ = await connect(ws_helper, sid, last_seq=before[-1]["seq"])
    async with back:
        after = await recv_until(back, is_type(*TURN_END))
    assert after[0]["seq"] > before[-1]["seq"]
    assert after[-1]["type"] == "final_answer"
    assert text_of(before + after) == after[-1]["content"] == f"You said: {words}"


async def test_an_open_request_arrives_in_the_replay_and_can_be_answered(
    ws_helper, api_client
) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[ask:Still there?]]"})
        asked = (await recv_until(ws, is_type("ask_human")))[-1]
    back, connected = await connect(ws_helper, sid, last_seq=0)
    async with back:
        replay = await recv_replay(back, connected)
        assert replay[-1] == asked
        await send(
            back, {"type": "human_reply", "request_id": asked["request_id"], "content": "yes"}
        )
        final = (await recv_until(back, is_type(*TURN_END)))[-1]
    assert final["content"].endswith("You answered: yes")


async def test_last_seq_beyond_the_log_replays_nothing(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "x"}])
    ws, connected = await connect(ws_helper, sid, last_seq=10**9)
    async with ws:
        assert connected["resumed"] == 0
        await send(ws, {"type": "ping"})
        assert (await recv_one(ws))["type"] == "pong"


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
async def test_a_bad_last_seq_refuses_the_handshake(ws_helper, api_client, value) -> None:
    sid = create_session_via_api(api_client)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_helper.url(sid, last_seq=value)):
            pass
    assert refused.value.response.status_code == 400
    assert b"last_seq" in refused.value.response.body
