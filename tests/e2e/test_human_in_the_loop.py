"""Tools, confirmations and ask_human over a real server, driven by demo directives."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
    recv_one,
    recv_until,
    register_skill_via_api,
    send,
)
from tests.e2e.server import QuartetServer

SAVE_NOTE = '[[tool:save_note {"text": "buy milk"}]]'


def tool(name: str, **arguments: object) -> str:
    return f"[[tool:{name} {json.dumps(arguments)}]]"


def kinds(frames: list[dict]) -> list[str]:
    return [f["type"] if f["type"] != "step" else f"step:{f['kind']}" for f in frames]


def confirm(request: dict, approved: bool, **extra: object) -> dict:
    return {
        "type": "confirmation_reply",
        "request_id": request["request_id"],
        "approved": approved,
        **extra,
    }


async def notes_of(ws_helper: WSChatHelper, sid: str) -> str:
    """The session's notes as the list_notes tool reports them."""
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": "[[tool:list_notes]]"}]
    )
    return next(f for f in frames if f.get("kind") == "tool_result")["result"]


# ─── confirmations ──────────────────────────────────────────────────────────


async def test_approved_tool_runs(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": f"Please {SAVE_NOTE}"})
        frames = await recv_until(ws, is_type("confirmation_request"))
        request = frames[-1]
        assert kinds(frames) == ["thinking", "step:tool_call", "confirmation_request"]
        assert frames[1]["tool"] == "save_note" and frames[1]["arguments"] == {"text": "buy milk"}
        assert request["tool"] == "save_note" and request["arguments"] == {"text": "buy milk"}
        assert request["reason"] and request["timeout_s"] == 300
        await send(ws, confirm(request, True))
        frames = await recv_until(ws, is_type(*TURN_END))
    assert kinds(frames)[:2] == ["confirmation_result", "step:tool_result"]
    assert frames[0] == frames[0] | {
        "request_id": request["request_id"],
        "approved": True,
        "by": "user",
    }
    assert frames[1]["result"]["saved"] is True
    assert frames[-1]["type"] == "final_answer"
    assert "The save_note tool said:" in frames[-1]["content"]
    assert frames[-1]["content"].startswith("You said: Please")
    assert [n["text"] for n in await notes_of(ws_helper, sid)] == ["buy milk"]
    # The whole exchange is in the event log, in order.
    logged = api_client.get(f"/api/v1/sessions/{sid}/events").json()["items"]
    assert "confirmation_request" in kinds(logged) and "confirmation_result" in kinds(logged)


async def test_denied_tool_does_not_run(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        await send(ws, confirm(request, False, reason="not today"))
        frames = await recv_until(ws, is_type(*TURN_END))
    assert kinds(frames)[0] == "confirmation_result"
    assert frames[0] == frames[0] | {"approved": False, "by": "user"}
    assert "step:tool_result" not in kinds(frames)
    assert "Not run: the user denied it: not today." in frames[-1]["content"]
    assert await notes_of(ws_helper, sid) == []


async def test_cancel_while_waiting_for_confirmation(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        await send(ws, {"type": "cancel"})
        frames = await recv_until(ws, is_type(*TURN_END))
        assert kinds(frames) == ["confirmation_result", "error"]
        assert frames[0] == frames[0] | {"request_id": request["request_id"], "by": "cancel"}
        assert frames[0]["approved"] is False and frames[1]["code"] == "cancelled"
        # The request is closed: a late approval is refused, and nothing ran.
        await send(ws, confirm(request, True))
        late = (await recv_until(ws, is_type("error")))[-1]
        assert late["code"] == "unknown_request"
        await send(ws, {"type": "message", "content": "next one"})
        assert (await recv_until(ws, is_type(*TURN_END)))[-1]["type"] == "final_answer"
    assert await notes_of(ws_helper, sid) == []
    items = api_client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
    assert [m["status"] for m in items if m["role"] == "assistant"][:1] == ["cancelled"]


async def test_a_second_reply_to_the_same_request_is_refused(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        await send(ws, confirm(request, True))
        await send(ws, confirm(request, False))
        frames = await recv_until(ws, is_type("final_answer"))
        errors = [f for f in frames if f["type"] == "error"]
        assert [e["code"] for e in errors] == ["unknown_request"]
        assert request["request_id"] in errors[0]["message"]
        assert "turn_id" not in errors[0]  # a reply to one client, not part of the turn
        results = [f for f in frames if f["type"] == "confirmation_result"]
        assert [(r["approved"], r["by"]) for r in results] == [(True, "user")]
        assert (await ping_pong(ws))["type"] == "pong"
    assert len(await notes_of(ws_helper, sid)) == 1


async def test_any_client_of_the_session_may_answer(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    asker, _ = await connect(ws_helper, sid)
    watcher, _ = await connect(ws_helper, sid)
    async with asker, watcher:
        await send(asker, {"type": "message", "content": SAVE_NOTE})
        seen_by_asker = (await recv_until(asker, is_type("confirmation_request")))[-1]
        seen_by_watcher = (await recv_until(watcher, is_type("confirmation_request")))[-1]
        assert seen_by_watcher == seen_by_asker
        await send(watcher, confirm(seen_by_watcher, True))
        asker_frames = await recv_until(asker, is_type(*TURN_END))
        watcher_frames = await recv_until(watcher, is_type(*TURN_END))
    assert asker_frames[0] == asker_frames[0] | {"approved": True, "by": "user"}
    assert asker_frames[-1]["type"] == "final_answer"
    assert [f["seq"] for f in watcher_frames][-1] == asker_frames[-1]["seq"]


async def test_a_client_that_connects_while_a_turn_waits_gets_the_request(
    ws_helper, api_client
) -> None:
    sid = create_session_via_api(api_client)
    asker, _ = await connect(ws_helper, sid)
    async with asker:
        await send(asker, {"type": "message", "content": SAVE_NOTE})
        request = (await recv_until(asker, is_type("confirmation_request")))[-1]
        late, connected = await connect(ws_helper, sid)
        async with late:
            assert connected["resumed"] == 1 and connected["last_seq"] == request["seq"]
            replayed = await recv_one(late)
            assert replayed == request
            await send(late, confirm(replayed, True))
            frames = await recv_until(late, is_type(*TURN_END))
        assert frames[0] == frames[0] | {"type": "confirmation_result", "by": "user"}
        assert (await recv_until(asker, is_type(*TURN_END)))[-1]["type"] == "final_answer"
    # Once answered, a new client gets no request.
    again, connected = await connect(ws_helper, sid)
    await again.close()
    assert connected["resumed"] == 0


# ─── ask_human ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("reply_type", ["human_reply", "reply"])
async def test_ask_human_round_trip(ws_helper, api_client, reply_type) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": "Greet me [[ask:What is your name?]]"})
        frames = await recv_until(ws, is_type("ask_human"))
        asked = frames[-1]
        assert kinds(frames) == ["thinking", "step:tool_call", "ask_human"]
        assert asked["question"] == "What is your name?" and asked["timeout_s"] == 300
        # A confirmation_reply does not answer a question, and leaves it open.
        await send(ws, confirm(asked, True))
        wrong = (await recv_until(ws, is_type("error")))[-1]
        assert wrong["code"] == "bad_request" and "human_reply" in wrong["message"]
        await send(ws, {"type": reply_type, "request_id": asked["request_id"], "content": "Ada"})
        frames = await recv_until(ws, is_type(*TURN_END))
        assert kinds(frames)[0] == "step:tool_result" and frames[0]["result"] == "Ada"
        assert frames[-1]["content"] == "You said: Greet me You answered: Ada"
        # The question is closed once answered.
        await send(ws, {"type": reply_type, "request_id": asked["request_id"], "content": "Bob"})
        assert (await recv_until(ws, is_type("error")))[-1]["code"] == "unknown_request"


async def test_several_directives_run_in_order(ws_helper, api_client) -> None:
    sid = create_session_via_api(api_client)
    ws, _ = await connect(ws_helper, sid)
    async with ws:
        content = tool("calculator", expression="6*7") + " [[ask:Sure?]] " + SAVE_NOTE
        await send(ws, {"type": "message", "content": content})
        asked = (await recv_until(ws, is_type("ask_human")))[-1]
        await send(ws, {"type": "human_reply", "request_id": asked["request_id"], "content": "yes"})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        await send(ws, confirm(request, True))
        final = (await recv_until(ws, is_type(*TURN_END)))[-1]
    text = final["content"]
    assert text.index("The calculator tool said: 42") < text.index("You answered: yes")
    assert text.index("You answered: yes") < text.index("The save_note tool said:")


# ─── tools that fail ────────────────────────────────────────────────────────


async def test_hostile_calculator_input_does_not_execute(
    ws_helper, api_client, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w').write('x')",
        "().__class__.__base__.__subclasses__()",
        "9**9**9**9",
    ]
    sid = create_session_via_api(api_client)
    for expression in hostile:
        frames = await ws_helper.connect_and_chat(
            sid, [{"type": "message", "content": tool("calculator", expression=expression)}]
        )
        result = next(f for f in frames if f.get("kind") == "tool_result")
        assert result["error"]["code"] == "tool_error" and "result" not in result
        assert frames[-1]["type"] == "final_answer"
        assert "The calculator tool said: Error:" in frames[-1]["content"]
    assert not marker.exists()
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": tool("calculator", expression="2 * (3 + 4)")}]
    )
    assert "The calculator tool said: 14" in frames[-1]["content"]


async def test_a_plugin_tool_that_raises(ws_helper, api_client, quartet_server) -> None:
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(
        sid, [{"type": "message", "content": "[[tool:explode]] then carry on"}]
    )
    result = next(f for f in frames if f.get("kind") == "tool_result")
    assert result["error"] == {
        "code": "tool_error",
        "message": "the tool failed: RuntimeError: this tool is broken on purpose",
    }
    assert frames[-1]["type"] == "final_answer"
    assert "this tool is broken on purpose" in quartet_server.output()


@pytest.mark.parametrize(
    ("directive", "told"),
    [
        ("[[tool:no_such_tool]]", "tool 'no_such_tool' is not available"),
        ("[[tool:calculator {}]]", "field 'expression': Field required"),
        ('[[tool:calculator {"expression": 3}]]', "field 'expression'"),
        ("[[tool:calculator {not json]]", "the arguments must be a JSON object"),
    ],
)
async def test_bad_tool_calls_are_told_to_the_model(ws_helper, api_client, directive, told) -> None:
    sid = create_session_via_api(api_client)
    frames = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": directive}])
    result = next(f for f in frames if f.get("kind") == "tool_result")
    assert told in result["error"]["message"]
    assert told in frames[-1]["content"] and frames[-1]["type"] == "final_answer"


async def test_a_skill_that_names_tools_restricts_the_model_to_them(ws_helper, api_client) -> None:
    register_skill_via_api(api_client, "e2e_maths", keywords=["arithmetic"], tools=["calculator"])
    sid = create_session_via_api(api_client)
    content = "arithmetic " + tool("calculator", expression="1+1") + " [[tool:list_notes]]"
    frames = await ws_helper.connect_and_chat(sid, [{"type": "message", "content": content}])
    results = [f for f in frames if f.get("kind") == "tool_result"]
    assert results[0]["result"] == 2
    assert (
        "tool 'list_notes' is not available; available tools: ['calculator']"
        in (results[1]["error"]["message"])
    )


def test_plugins_endpoint_lists_tools(api_client) -> None:
    plugins = {p["name"]: p for p in api_client.get("/api/v1/plugins").json()["plugins"]}
    calculator = plugins["plugins.builtin.calculator"]["tools"][0]
    assert calculator["name"] == "calculator"
    assert calculator["parameters"]["required"] == ["expression"]
    assert [t["name"] for t in plugins["tests.e2e.sample_plugins"]["tools"]] == ["explode"]
    notes = {t["name"]: t for t in plugins["plugins.builtin.notes"]["tools"]}
    assert notes["save_note"]["requires_confirmation"] is True


# ─── timeouts: a server with a short QUARTET_CONFIRMATION_TIMEOUT_S ─────────


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    server = QuartetServer(
        tmp_path_factory.mktemp("impatient"), env={"QUARTET_CONFIRMATION_TIMEOUT_S": "0.3"}
    ).start()
    yield server
    server.stop()


async def test_unanswered_confirmation_times_out_as_denied(impatient_server) -> None:
    helper = WSChatHelper(impatient_server.base_ws_url, impatient_server.api_key)
    with httpx.Client(
        base_url=impatient_server.base_url, headers={"X-API-Key": impatient_server.api_key}
    ) as client:
        sid = create_session_via_api(client)
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": SAVE_NOTE + " [[ask:Still there?]]"})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        assert request["timeout_s"] == 0.3
        frames = await recv_until(ws, is_type("confirmation_result"))
        assert frames[-1] == frames[-1] | {"approved": False, "by": "timeout"}
        frames = await recv_until(ws, is_type(*TURN_END))
        assert "step:tool_result" in kinds(frames)  # the question's timeout
        await send(ws, confirm(request, True))
        assert (await recv_until(ws, is_type("error")))[-1]["code"] == "unknown_request"
    final = frames[-1]["content"]
    assert "Not run: nobody approved it within 0.3 s." in final
    assert "You answered: Error: the human did not answer within 0.3 s" in final
    assert await notes_of(helper, sid) == []
