"""The agent loop with a scripted model: tool calls, confirmations, questions, limits."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from agent.protocol import ConfirmationReply, ErrorCode, HumanReply, ProtocolError
from models import Message, Note, PendingRequest
from plugins.llm import TextDelta, ToolCall
from plugins.skills import SkillSpec
from plugins.tools import Tool, ToolContext


def types(frames: list[dict]) -> list[str]:
    return [f["type"] if f["type"] != "step" else f"step:{f['kind']}" for f in frames]


def call(name: str, arguments: str = "{}", id: str = "c1") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


class NoArgs(BaseModel):
    pass


def add_tool(host, name: str, run, **options) -> None:
    host.tools[name] = Tool(name=name, description=name, arguments=NoArgs, run=run, **options)


async def test_a_tool_call_runs_and_its_result_goes_back_to_the_model(rig, scripted) -> None:
    scripted.enqueue([TextDelta("Let me add. "), call("calculator", '{"expression": "2+2"}')])
    scripted.enqueue([TextDelta("It is 4.")])
    await rig.runner.start(rig.ctx, "what is 2+2?")
    frames = await rig.frames_until_end()
    assert types(frames) == [
        "token",
        "step:tool_call",
        "step:tool_result",
        "token",
        "final_answer",
    ]
    assert frames[1] == frames[1] | {
        "tool": "calculator",
        "call_id": "c1",
        "arguments": {"expression": "2+2"},
    }
    assert frames[2]["result"] == 4 and frames[2]["call_id"] == "c1"
    assert frames[-1]["content"] == "Let me add. It is 4."
    second = scripted.history[1].messages
    assert second[-2].role == "assistant" and second[-2].tool_calls[0].name == "calculator"
    assert (second[-1].role, second[-1].content, second[-1].tool_call_id) == ("tool", "4", "c1")


async def test_the_model_sees_every_tool_unless_a_skill_names_some(rig, scripted, host) -> None:
    scripted.enqueue([TextDelta("a")])
    await rig.runner.start(rig.ctx, "plain")
    await rig.frames_until_end()
    assert (
        {t.name for t in scripted.history[0].tools}
        == set(host.tools)
        >= {
            "calculator",
            "save_note",
            "list_notes",
            "ask_human",
        }
    )
    host.add_plugin_skill(
        SkillSpec(name="maths", keywords=["sum"], tools=["calculator"]), source="plugin:test"
    )
    scripted.enqueue([call("list_notes")])
    scripted.enqueue([TextDelta("b")])
    await rig.runner.start(rig.ctx, "a sum please")
    frames = await rig.frames_until_end()
    assert [t.name for t in scripted.history[1].tools] == ["calculator"]
    assert frames[2]["error"]["code"] == "tool_error"
    assert "not available" in frames[2]["error"]["message"]


@pytest.mark.parametrize(
    ("arguments", "shown", "told"),
    [
        ('{"expression": 5}', {"expression": 5}, "invalid arguments: field 'expression'"),
        ("{}", {}, "field 'expression': Field required"),
        ("not json", "not json", "the arguments must be a JSON object"),
        ("[1, 2]", [1, 2], "the arguments must be a JSON object"),
        ('{"expression": "__import__(\'os\')"}', None, "unknown function '__import__'"),
        ('{"expression": "1/0"}', None, "division by zero"),
    ],
)
async def test_bad_arguments_are_a_tool_error_and_the_turn_goes_on(
    rig, scripted, arguments, shown, told
) -> None:
    scripted.enqueue([call("calculator", arguments)])
    scripted.enqueue([TextDelta("sorry")])
    await rig.runner.start(rig.ctx, "calc")
    frames = await rig.frames_until_end()
    assert types(frames) == ["step:tool_call", "step:tool_result", "token", "final_answer"]
    if shown is not None:
        assert frames[0]["arguments"] == shown
    assert frames[1]["error"]["code"] == "tool_error" and "result" not in frames[1]
    assert told in frames[1]["error"]["message"]
    told_model = scripted.history[1].messages[-1].content
    assert told_model.startswith("Error: ") and told in told_model


async def test_a_raising_tool_is_reported_and_logged(rig, scripted, host, caplog) -> None:
    async def boom(args, ctx):
        raise RuntimeError("kaput")

    add_tool(host, "boom", boom)
    scripted.enqueue([call("boom")])
    scripted.enqueue([TextDelta("recovered")])
    await rig.runner.start(rig.ctx, "go")
    frames = await rig.frames_until_end()
    assert frames[1]["error"] == {
        "code": "tool_error",
        "message": "the tool failed: RuntimeError: kaput",
    }
    assert frames[-1]["content"] == "recovered"
    assert "tool boom failed" in caplog.text


async def test_a_slow_tool_times_out(rig, scripted, host) -> None:
    async def sleepy(args, ctx):
        await asyncio.Event().wait()

    add_tool(host, "sleepy", sleepy, timeout_s=0.01)
    scripted.enqueue([call("sleepy")])
    scripted.enqueue([TextDelta("moving on")])
    await rig.runner.start(rig.ctx, "go")
    frames = await rig.frames_until_end()
    assert frames[1]["error"]["code"] == "timeout"
    assert frames[-1]["type"] == "final_answer"


async def test_a_model_that_never_stops_calling_tools_hits_the_round_limit(rig, scripted) -> None:
    for i in range(4):
        scripted.enqueue([TextDelta(f"{i} "), call("list_notes", id=f"c{i}")])
    await rig.runner.start(rig.ctx, "loop")
    frames = await rig.frames_until_end()
    assert frames[-1]["code"] == "step_limit"
    assert len(scripted.history) == 4
    stored = await Message.filter(session_id=rig.ctx.session_id, role="assistant").get()
    assert (stored.content, stored.status) == ("0 1 2 3 ", "error")


# ─── confirmations ──────────────────────────────────────────────────────────


async def start_save_note(rig, scripted, text: str = "buy milk") -> dict:
    scripted.enqueue([call("save_note", f'{{"text": "{text}"}}')])
    scripted.enqueue([TextDelta("done")])
    await rig.runner.start(rig.ctx, "note this")
    frames = await rig.frames_until("confirmation_request")
    assert types(frames) == ["step:tool_call", "confirmation_request"]
    request = frames[-1]
    assert request["tool"] == "save_note" and request["arguments"] == {"text": text}
    assert request["timeout_s"] == rig.pending.timeout_s and request["reason"]
    return request


def reply(request: dict, approved: bool, reason: str | None = None) -> ConfirmationReply:
    return ConfirmationReply(
        type="confirmation_reply",
        request_id=request["request_id"],
        approved=approved,
        reason=reason,
    )


async def test_approved_confirmation_runs_the_tool(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    assert [e.request_id for e in rig.pending.open_events(rig.ctx.session_id)] == [
        request["request_id"]
    ]
    rig.pending.answer(rig.ctx.session_id, reply(request, True))
    frames = await rig.frames_until_end()
    assert types(frames) == ["confirmation_result", "step:tool_result", "token", "final_answer"]
    assert frames[0] == frames[0] | {"approved": True, "by": "user"}
    assert frames[1]["result"]["saved"] is True
    assert await Note.filter(session_id=rig.ctx.session_id).values_list("text", flat=True) == [
        "buy milk"
    ]
    row = await PendingRequest.get(id=request["request_id"])
    assert (row.status, row.kind, row.seq, row.tool) == (
        "approved",
        "confirmation",
        request["seq"],
        "save_note",
    )
    assert rig.pending.open_events(rig.ctx.session_id) == []


async def test_denied_confirmation_does_not_run_the_tool(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    rig.pending.answer(rig.ctx.session_id, reply(request, False, "not now"))
    frames = await rig.frames_until_end()
    assert types(frames) == ["confirmation_result", "token", "final_answer"]
    assert frames[0] == frames[0] | {"approved": False, "by": "user"}
    assert await Note.filter(session_id=rig.ctx.session_id).count() == 0
    assert scripted.history[1].messages[-1].content == "Not run: the user denied it: not now."
    row = await PendingRequest.get(id=request["request_id"])
    assert (row.status, row.answer) == ("denied", "not now")


@pytest.mark.parametrize("confirmation_timeout_s", [0.05])
async def test_unanswered_confirmation_times_out_as_denied(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    frames = await rig.frames_until_end()
    assert frames[0] == frames[0] | {"type": "confirmation_result", "approved": False}
    assert frames[0]["by"] == "timeout"
    assert await Note.filter(session_id=rig.ctx.session_id).count() == 0
    assert "nobody approved it within 0.05 s" in scripted.history[1].messages[-1].content
    assert (await PendingRequest.get(id=request["request_id"])).status == "timeout"
    with pytest.raises(ProtocolError) as late:
        rig.pending.answer(rig.ctx.session_id, reply(request, True))
    assert late.value.code == ErrorCode.unknown_request


async def test_cancel_while_waiting_resolves_the_request_then_ends_the_turn(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    rig.runner.cancel(rig.ctx.session_id)
    frames = await rig.frames_until_end()
    assert types(frames) == ["confirmation_result", "error"]
    assert frames[0] == frames[0] | {"approved": False, "by": "cancel"}
    assert frames[1]["code"] == "cancelled"
    assert (await PendingRequest.get(id=request["request_id"])).status == "cancelled"
    assert await Note.filter(session_id=rig.ctx.session_id).count() == 0
    assert rig.pending.open_events(rig.ctx.session_id) == []


async def test_only_the_first_reply_counts(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    rig.pending.answer(rig.ctx.session_id, reply(request, True))
    with pytest.raises(ProtocolError) as second:
        rig.pending.answer(rig.ctx.session_id, reply(request, False))
    assert second.value.code == ErrorCode.unknown_request
    frames = await rig.frames_until_end()
    assert frames[0]["approved"] is True


async def test_replies_that_match_no_open_request(rig, scripted) -> None:
    request = await start_save_note(rig, scripted)
    unknown = {"request_id": "nope"}
    with pytest.raises(ProtocolError) as exc:
        rig.pending.answer(rig.ctx.session_id, reply(unknown, True))
    assert exc.value.code == ErrorCode.unknown_request
    with pytest.raises(ProtocolError) as exc:
        rig.pending.answer("another-session", reply(request, True))
    assert exc.value.code == ErrorCode.unknown_request
    with pytest.raises(ProtocolError) as exc:
        rig.pending.answer(
            rig.ctx.session_id,
            HumanReply(type="human_reply", request_id=request["request_id"], content="yes"),
        )
    assert exc.value.code == ErrorCode.bad_request
    assert "confirmation_reply" in exc.value.message
    # None of them answered it.
    rig.pending.answer(rig.ctx.session_id, reply(request, True))
    assert (await rig.frames_until_end())[0]["approved"] is True


# ─── questions ──────────────────────────────────────────────────────────────


async def test_ask_human_round_trip(rig, scripted) -> None:
    scripted.enqueue([call("ask_human", '{"question": "Which colour?"}')])
    scripted.enqueue([TextDelta("Blue it is.")])
    await rig.runner.start(rig.ctx, "pick a colour")
    frames = await rig.frames_until("ask_human")
    assert frames[-1]["question"] == "Which colour?"
    request_id = frames[-1]["request_id"]
    rig.pending.answer(
        rig.ctx.session_id, HumanReply(type="reply", request_id=request_id, content="blue")
    )
    frames = await rig.frames_until_end()
    assert types(frames) == ["step:tool_result", "token", "final_answer"]
    assert frames[0]["result"] == "blue"
    assert scripted.history[1].messages[-1].content == "blue"
    row = await PendingRequest.get(id=request_id)
    assert (row.kind, row.status, row.answer, row.prompt) == (
        "question",
        "answered",
        "blue",
        "Which colour?",
    )


@pytest.mark.parametrize("confirmation_timeout_s", [0.05])
async def test_unanswered_question_is_a_tool_error_for_the_model(rig, scripted) -> None:
    scripted.enqueue([call("ask_human", '{"question": "Anyone?"}')])
    scripted.enqueue([TextDelta("No answer, then.")])
    await rig.runner.start(rig.ctx, "ask")
    frames = await rig.frames_until_end()
    assert types(frames) == [
        "step:tool_call",
        "ask_human",
        "step:tool_result",
        "token",
        "final_answer",
    ]
    assert frames[2]["error"]["message"] == "the human did not answer within 0.05 s"


async def test_a_tool_may_ask_the_human_itself(rig, scripted, host) -> None:
    async def interview(args, ctx: ToolContext) -> str:
        return "name=" + await ctx.ask_human("Your name?")

    add_tool(host, "interview", interview, timeout_s=None)
    scripted.enqueue([call("interview")])
    scripted.enqueue([TextDelta("Hello.")])
    await rig.runner.start(rig.ctx, "go")
    asked = (await rig.frames_until("ask_human"))[-1]
    rig.pending.answer(
        rig.ctx.session_id,
        HumanReply(type="human_reply", request_id=asked["request_id"], content="Ada"),
    )
    frames = await rig.frames_until_end()
    assert frames[0]["result"] == "name=Ada"
