"""The chat WebSocket over a real server: handshake, streaming, skills, turns, bad input."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from agent.protocol import SERVER_EVENT_TYPES
from tests.e2e.conftest import (
    WSChatHelper,
    connect,
    create_session_via_api,
    is_type,
    ping_pong,
    recv_until,
    register_skill_via_api,
    send,
)

SEED_TYPES = {
    "connected", "token", "thinking", "step", "final_answer", "skill_match",
    "confirmation_request", "confirmation_result", "ask_human", "error", "pong",
    "team_formed", "expert_step", "expert_result", "plan_update", "team_synthesis",
    "team_dissolved",
}  # fmt: skip


# ─── handshake ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("session", "key", "status"),
    [("missing", "good", 404), ("foreign", "good", 404), ("own", "none", 401), ("own", "bad", 401)],
)
async def test_handshake_refused(ws_helper, api_client, other_client, session, key, status) -> None:
    sid = {
        "missing": uuid.uuid4().hex,
        "foreign": create_session_via_api(other_client),
        "own": create_session_via_api(api_client),
    }[session]
    url = f"{ws_helper.base_ws_url}/api/v1/chat/ws/{sid}"
    if key != "none":
        url += f"?api_key={ws_helper.api_key if key == 'good' else 'bad'}"
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == status


async def test_connected_frame(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, connected = await connect(ws_helper, sid)
    await ws.close()
    assert connected["session_id"] == sid
    assert connected["protocol"] == 1
    assert connected["last_seq"] == 0
    assert connected["model"] == "demo"
    assert connected["resumed"] == 0
    assert connected["ts"].endswith("Z")


# ─── a turn ─────────────────────────────────────────────────────────────────


async def test_turn_streams_tokens_then_final_answer(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": "Hello big world"}]
    )
    assert frames[0]["type"] == "connected"
    turn = frames[1:]
    tokens = [f for f in turn if f["type"] == "token"]
    final = turn[-1]
    assert final["type"] == "final_answer"
    assert final["content"] == "".join(t["content"] for t in tokens) == "You said: Hello big world"
    seqs = [f["seq"] for f in turn]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] >= 1
    assert len({f["turn_id"] for f in turn}) == 1
    assert all(f["session_id"] == sid and f["ts"] for f in frames)
    assert {f["type"] for f in frames} <= SEED_TYPES

    messages = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[1]["content"] == final["content"] and messages[1]["id"] == final["message_id"]


async def test_events_are_logged_with_their_seq(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "log me"}])
    logged = api_client.get(f"/api/v1/sessions/{sid}/events").json()
    # Stored frames are what was sent; the live stream may have merged tokens.
    stored_text = "".join(e["content"] for e in logged["items"] if e["type"] == "token")
    assert stored_text == frames[-1]["content"]
    assert logged["items"][-1] == frames[-1]
    assert logged["last_seq"] == frames[-1]["seq"]
    after = api_client.get(
        f"/api/v1/sessions/{sid}/events", params={"after": logged["last_seq"] - 1}
    )
    assert [e["seq"] for e in after.json()["items"]] == [logged["last_seq"]]


async def test_second_turn_continues_the_seq(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    first = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "one"}])
    second = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "two"}])
    assert second[0]["last_seq"] == first[-1]["seq"]
    assert second[1]["seq"] == first[-1]["seq"] + 1


# ─── skills ─────────────────────────────────────────────────────────────────


async def test_skill_match_comes_before_any_token(ws_helper, api_client) -> None:
    register_skill_via_api(api_client, "e2e_trip", keywords=["Paris", "train"])
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": "a TRAIN to paris, and the weather?"}]
    )
    types = [f["type"] for f in frames]
    matches = {f["skill"]: f for f in frames if f["type"] == "skill_match"}
    last_match = len(types) - 1 - types[::-1].index("skill_match")
    assert last_match < types.index("token")
    assert types.count("skill_match") == len(matches) == 2
    assert matches["e2e_trip"]["matched"] == ["Paris", "train"]
    assert matches["e2e_trip"]["score"] == 1.0
    assert matches["e2e_trip"]["source"] == "rest"
    assert matches["weather"]["source"] == "plugin:plugins.examples.weather"
    assert matches["weather"]["score"] == pytest.approx(1 / 3, abs=1e-3)


@pytest.mark.parametrize("text", ["trainspotting in Parisian cafes", "no keywords here"])
async def test_skill_keywords_match_whole_words_only(ws_helper, api_client, text) -> None:
    register_skill_via_api(api_client, "e2e_trip", keywords=["Paris", "train"])
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": text}])
    assert "e2e_trip" not in {f.get("skill") for f in frames}
    assert frames[-1]["type"] == "final_answer"


async def test_rest_skill_matches_only_its_keys_sessions(
    ws_helper, api_client, other_client
) -> None:
    register_skill_via_api(other_client, "others_only", keywords=["marmalade"])
    mine = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(mine, [{"type": "message", "content": "marmalade"}])
    assert "others_only" not in {f.get("skill") for f in frames}

    other_key = other_client.headers["X-API-Key"]
    theirs = create_session_via_api(other_client)
    helper = WSChatHelper(ws_helper.base_ws_url, other_key)
    frames = await helper.connect_and_chat(theirs, [{"type": "message", "content": "marmalade"}])
    assert "others_only" in {f.get("skill") for f in frames}


async def test_deleted_skill_stops_matching(ws_helper, api_client) -> None:
    register_skill_via_api(api_client, "e2e_gone", keywords=["ephemeral"])
    assert api_client.delete("/api/v1/skills/e2e_gone").status_code == 204
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "ephemeral"}])
    assert "e2e_gone" not in {f.get("skill") for f in frames}


async def test_a_raising_plugin_is_skipped(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    # tests.e2e.sample_plugins raises on "explode"; weather must still match.
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": "explode the weather"}]
    )
    assert "weather" in {f.get("skill") for f in frames}
    assert frames[-1]["type"] == "final_answer"


# ─── one turn at a time, cancel ─────────────────────────────────────────────


async def test_busy_while_a_turn_runs(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[slow:20]] one two three four"})
        await recv_until(ws, is_type("token"))
        await send(ws, {"type": "message", "content": "interrupting"})
        busy = (await recv_until(ws, is_type("error")))[-1]
        assert busy["code"] == "busy"
        final = (await recv_until(ws, is_type("final_answer")))[-1]
        assert final["content"] == "You said: one two three four"
    messages = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "[[slow:20]] one two three four"
    ]


async def test_cancel_stores_partial_answer_and_session_goes_on(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[slow:30]] " + "word " * 200})
        frames = await recv_until(ws, lambda f: f["type"] == "token" and len(f["content"]) > 0)
        await send(ws, {"type": "cancel"})
        frames += await recv_until(ws, is_type("error", "final_answer"))
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "cancelled"
        assert frames[-1]["turn_id"] == frames[0]["turn_id"]
        streamed = "".join(f["content"] for f in frames if f["type"] == "token")

        await send(ws, {"type": "message", "content": "after the cancel"})
        after = await recv_until(ws, is_type("final_answer", "error"))
        assert after[-1]["type"] == "final_answer"
        assert after[-1]["content"] == "You said: after the cancel"

    items = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [(m["role"], m["status"]) for m in items] == [
        ("user", "complete"), ("assistant", "cancelled"), ("user", "complete"), ("assistant", "complete"),
    ]  # fmt: skip
    assert items[1]["content"] == streamed and 0 < len(streamed) < len("You said: " + "word " * 200)


async def test_message_right_after_cancel_is_not_busy(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[slow:50]] long long long"})
        await send(ws, {"type": "cancel"})
        await send(ws, {"type": "message", "content": "next"})
        frames = await recv_until(ws, is_type("final_answer"))
    errors = [f["code"] for f in frames if f["type"] == "error"]
    assert errors == ["cancelled"]
    assert frames[-1]["content"] == "You said: next"


async def test_cancel_with_nothing_running(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(sid, [{"type": "cancel"}])
    assert [(f["type"], f.get("code")) for f in frames[1:]] == [("error", "no_active_turn")]


# ─── bad input: an error frame, the connection stays, nothing stored is lost ─

BAD_FRAMES = [
    pytest.param("this is not json", "bad_request", "JSON", id="not-json"),
    pytest.param("[1, 2, 3]", "bad_request", "object", id="not-an-object"),
    pytest.param('"just a string"', "bad_request", "object", id="json-string"),
    pytest.param(b"\x00\x01binary", "bad_request", "binary", id="binary"),
    pytest.param({"content": "no type"}, "bad_request", "type", id="missing-type"),
    pytest.param({"type": 7}, "bad_request", "type", id="non-string-type"),
    pytest.param({"type": "dance"}, "unknown_type", "dance", id="unknown-type"),
    pytest.param({"type": "message"}, "bad_request", "content", id="missing-content"),
    pytest.param({"type": "message", "content": ""}, "bad_request", "content", id="empty-content"),
    pytest.param({"type": "message", "content": "   "}, "bad_request", "content", id="blank"),
    pytest.param({"type": "message", "content": 42}, "bad_request", "content", id="int-content"),
    pytest.param({"type": "message", "content": ["a"]}, "bad_request", "content", id="list-content"),
    pytest.param({"type": "message", "content": "x", "mode": "solo"}, "bad_request", "mode", id="mode"),
    pytest.param({"type": "message", "content": "x" * (32 * 1024 + 1)}, "too_large", "limit", id="32k+1"),
    pytest.param({"type": "message", "content": "x" * (1024 * 1024)}, "too_large", "limit", id="1MiB"),
    pytest.param("x" * (3 * 1024 * 1024), "too_large", "bytes", id="3MiB-frame"),
    pytest.param(
        {"type": "confirmation_reply", "request_id": "nope", "approved": True},
        "unknown_request", "nope", id="unknown-confirmation",
    ),
    pytest.param(
        {"type": "human_reply", "request_id": "nope", "content": "hi"},
        "unknown_request", "nope", id="unknown-human-reply",
    ),
    pytest.param(
        {"type": "reply", "request_id": "nope", "content": "hi"},
        "unknown_request", "nope", id="unknown-reply-alias",
    ),
    pytest.param({"type": "confirmation_reply", "approved": True}, "bad_request", "request_id", id="no-id"),
    pytest.param(
        {"type": "confirmation_reply", "request_id": "r", "approved": "maybe"},
        "bad_request", "approved", id="approved-not-bool",
    ),
    pytest.param({"type": "confirmation_reply", "request_id": "r"}, "bad_request", "approved", id="no-approved"),
    pytest.param({"type": "human_reply", "request_id": "r"}, "bad_request", "content", id="reply-no-content"),
    pytest.param({"type": "human_reply", "request_id": "r", "content": " "}, "bad_request", "content", id="reply-blank"),
    pytest.param(
        {"type": "reply", "request_id": "r", "content": "x" * (32 * 1024 + 1)}, "too_large", "limit", id="reply-32k+1",
    ),
    pytest.param({"type": "human_reply", "request_id": 5, "content": "x"}, "bad_request", "request_id", id="int-id"),
    pytest.param(b"", "bad_request", "binary", id="empty-binary"),
    pytest.param(
        {"type": "confirmation_reply", "request_id": "r", "approved": "no"},
        "bad_request", "approved", id="approved-no-string",
    ),
    pytest.param({"type": "confirmation_reply", "request_id": "", "approved": True}, "bad_request", "request_id", id="empty-id"),
    pytest.param({"type": "human_reply", "request_id": "", "content": "x"}, "bad_request", "request_id", id="reply-empty-id"),
    pytest.param(r'{"type": "message", "content": "hi \ud800"}', "bad_request", "surrogate", id="lone-surrogate"),
    pytest.param(r'{"type": "ping", "\udc00": 1}', "bad_request", "surrogate", id="surrogate-key"),
    pytest.param('{"type": "message", "content": "x", "x": ' + "[" * 5000 + "]" * 5000 + "}", "bad_request", "nested deeper", id="5000-deep"),
    pytest.param("[" * 100_000, "bad_request", "values", id="100k-open-brackets"),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "code", "mentions"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_connection_survives(
    ws_helper, api_client, frame, code, mentions
) -> None:
    sid = create_session_via_api(api_client)
    before = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": "keep me"}])
    stored = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    events = api_client.get(f"/api/v1/sessions/{sid}/events").json()

    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, frame)
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert error["type"] == "error" and error["code"] == code
        assert mentions in error["message"]
        assert error["seq"] == before[-1]["seq"]  # unlogged: carries the current seq
        assert (await ping_pong(ws))["type"] == "pong"
        await send(ws, {"type": "message", "content": "still here"})
        final = (await recv_until(ws, is_type("final_answer", "error")))[-1]
        assert final["type"] == "final_answer" and final["seq"] > before[-1]["seq"]

    items = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert items[: len(stored)] == stored and len(items) == len(stored) + 2
    after = api_client.get(f"/api/v1/sessions/{sid}/events").json()["items"]
    assert after[: len(events["items"])] == events["items"]


async def test_server_only_sends_seed_types() -> None:
    assert SERVER_EVENT_TYPES == SEED_TYPES


async def test_deleting_a_session_with_a_running_turn(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "[[slow:50]] a b c d e f"})
        await recv_until(ws, is_type("token"))
        assert api_client.delete(f"/api/v1/sessions/{sid}").status_code == 204
    assert api_client.get(f"/api/v1/sessions/{sid}").status_code == 404
    assert httpx.get(f"{ws_helper.base_ws_url.replace('ws', 'http', 1)}/readyz").status_code == 200
