"""Hostile input over a real server: every bad frame or body gets a clear answer, never a 500."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.e2e.conftest import (
    connect,
    create_session_via_api,
    is_type,
    ping_pong,
    recv_until,
    send,
)

# ─── WebSocket ──────────────────────────────────────────────────────────────


async def test_invalid_utf8_text_frame_drops_the_connection_and_nothing_else(
    ws_helper, api_client
) -> None:
    """hypercorn drops TCP without the 1007 close frame RFC 6455 asks for.

    wsproto finds the bad bytes and reports a close event with code 1007, but
    hypercorn 0.18 sends a close frame only in answer to the peer's, and the
    frame never reaches the app, so Quartet cannot send 1007 itself (see
    docs/protocol.md, "Bad input"). This pins what happens today, so a
    hypercorn that does send 1007 fails here and the docs get updated.
    """
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    await send(ws, {"type": "message", "content": "[[slow:20]] one two three four"})
    await recv_until(ws, is_type("token"))
    await ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
    with pytest.raises(ConnectionClosedError):
        await recv_until(ws, lambda frame: False)
    assert ws.close_code == 1006  # abnormal closure: no close frame came
    assert ws.protocol.close_rcvd is None

    # The session and its turn carry on; the client resumes where it was.
    again, _ = await connect(ws_helper, sid, last_seq=0)
    async with again:
        frames = await recv_until(again, is_type("final_answer", "error"))
        assert frames[-1]["type"] == "final_answer"
        assert (await ping_pong(again))["type"] == "pong"


async def test_lone_surrogate_in_a_human_reply_leaves_the_question_answerable(
    ws_helper, api_client
) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "Greet me [[ask:Your name?]]"})
        asked = (await recv_until(ws, is_type("ask_human")))[-1]
        rid = asked["request_id"]
        reply = json.dumps({"type": "human_reply", "request_id": rid, "content": "@"})
        await send(ws, reply.replace("@", "\\ud800"))  # json.dumps cannot write one
        error = (await recv_until(ws, is_type("error")))[-1]
        assert error["code"] == "bad_request" and "surrogate" in error["message"]
        await send(ws, {"type": "human_reply", "request_id": rid, "content": "Ada"})
        final = (await recv_until(ws, is_type("final_answer", "error")))[-1]
    assert final["type"] == "final_answer" and "Ada" in final["content"]


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param('{"expression": "\\ud800"}', id="lone-surrogate"),
        pytest.param(
            '{"expression": "1", "x": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}", id="3000-deep"
        ),
    ],
)
async def test_hostile_tool_arguments_are_a_tool_error_not_a_broken_turn(
    ws_helper, api_client, arguments
) -> None:
    """The model writes what the user asks for: its arguments get the frames' limits."""
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": f"[[tool:calculator {arguments}]]"})
        frames = await recv_until(ws, is_type("final_answer", "error"))
    assert frames[-1]["type"] == "final_answer", frames[-1]
    result = next(f for f in frames if f["type"] == "step" and f["kind"] == "tool_result")
    assert result["error"]["code"] == "tool_error"
    # Tokens may arrive merged, so the client's seqs increase; the log has no gap.
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs))
    stored = [f["seq"] for f in api_client.get(f"/api/v1/sessions/{sid}/events").json()["items"]]
    assert stored == list(range(1, seqs[-1] + 1))
    roles = [m["role"] for m in api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]]
    assert roles == ["user", "assistant"]


async def test_handshake_with_an_over_long_session_id_is_404(ws_helper) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_helper.url("a" * 37)):
            pass
    assert refused.value.response.status_code == 404


async def test_handshake_with_a_huge_last_seq_is_400(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ws_helper.url(sid, last_seq=2**63)):
            pass
    assert refused.value.response.status_code == 400


# ─── REST ───────────────────────────────────────────────────────────────────

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 5000 + "]" * 5000


def assert_bad_request(response: httpx.Response, mentions: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert mentions in error["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "mentions"),
    [
        ("POST", "/api/v1/sessions", b'{"title": "\xff\xfe"}', "not valid UTF-8"),
        ("POST", "/api/v1/skills", b'{"name": "x\xc3", "keywords": ["a"]}', "not valid UTF-8"),
        ("PUT", "/api/v1/skills/utf8", b'{"keywords": ["\xed\xa0\x80"]}', "not valid UTF-8"),
        ("POST", "/api/v1/keys", b'{"name": "\x80"}', "not valid UTF-8"),
        ("POST", "/api/v1/sessions", b'{"metadata": {"a": ' + DEEP.encode() + b"}}", "nested deeper"),
        ("PUT", "/api/v1/skills/deep", b'{"keywords": ' + DEEP.encode() + b"}", "nested deeper"),
        ("POST", "/api/v1/sessions", b'{"metadata": {"\\ud800": 1}}', "surrogate"),
        ("POST", "/api/v1/sessions", b'{"title": ', "not valid JSON"),
    ],
)  # fmt: skip
def test_unreadable_bodies_are_400(api_client, method, path, body, mentions) -> None:
    assert_bad_request(api_client.request(method, path, content=body, headers=JSON), mentions)


@pytest.mark.parametrize("path", ["", "/{sid}/messages"])
@pytest.mark.parametrize("value", [2**31, 2**63, 10**30])
def test_huge_offsets_are_400(api_client, path, value) -> None:
    sid = create_session_via_api(api_client)
    response = api_client.get(f"/api/v1/sessions{path.format(sid=sid)}", params={"offset": value})
    assert_bad_request(response, "field 'offset'")


@pytest.mark.parametrize("value", [2**31, 2**63])
def test_huge_after_is_400(api_client, value) -> None:
    sid = create_session_via_api(api_client)
    response = api_client.get(f"/api/v1/sessions/{sid}/events", params={"after": value})
    assert_bad_request(response, "field 'after'")


def test_largest_accepted_offset_and_after_work(api_client) -> None:
    sid = create_session_via_api(api_client)
    largest = 2**31 - 1
    assert api_client.get("/api/v1/sessions", params={"offset": largest}).json()["items"] == []
    events = api_client.get(f"/api/v1/sessions/{sid}/events", params={"after": largest})
    assert events.status_code == 200 and events.json()["items"] == []


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("DELETE", ""), ("GET", "/messages"), ("GET", "/events")]
)
@pytest.mark.parametrize("length", [37, 1000])
def test_over_long_session_ids_are_404(api_client, method, suffix, length) -> None:
    response = api_client.request(method, f"/api/v1/sessions/{'a' * length}{suffix}")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_over_long_skill_names_are_404(api_client, method) -> None:
    response = api_client.request(method, f"/api/v1/skills/{'a' * 101}")
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("name", ["bad%20name", "-starts-with-dash", "a" * 101, "semi;colon"])
def test_put_skill_with_a_bad_name_is_400_naming_the_rule(api_client, name) -> None:
    response = api_client.put(f"/api/v1/skills/{name}", json={"keywords": ["x"]})
    assert_bad_request(response, "Letters, digits, `_`, `.`, `-`; at most 100")


def test_openapi_documents_error_responses_and_put_statuses(api_client) -> None:
    paths = api_client.get("/openapi.json").json()["paths"]
    put = paths["/api/v1/skills/{name}"]["put"]["responses"]
    assert {"200", "201", "400", "401"} <= set(put)
    assert set(paths["/api/v1/sessions/{session_id}"]["get"]["responses"]) >= {"200", "401", "404"}
    assert set(paths["/api/v1/sessions"]["post"]["responses"]) >= {"201", "400", "401", "413"}
    assert set(paths["/api/v1/keys"]["post"]["responses"]) >= {"201", "400", "401", "403"}
    for path, operations in paths.items():
        if path.startswith("/api/v1/"):
            for method, operation in operations.items():
                assert "401" in operation["responses"], f"{method.upper()} {path}"


def test_put_skill_answers_201_then_200(api_client) -> None:
    name = f"put-{uuid.uuid4().hex[:8]}"
    assert api_client.put(f"/api/v1/skills/{name}", json={"keywords": ["x"]}).status_code == 201
    assert api_client.put(f"/api/v1/skills/{name}", json={"keywords": ["y"]}).status_code == 200
