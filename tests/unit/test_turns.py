"""The turn runner with a scripted model and an in-memory database."""

from __future__ import annotations

import asyncio

import pytest

from agent.protocol import ErrorCode, TeamFormed, Token
from agent.turns import TurnRejected
from models import Event, Message, PendingRequest, Session
from plugins.llm import ModelError, ReasoningDelta, TextDelta
from plugins.skills import SkillSpec


async def test_a_turn_streams_and_stores(rig, scripted, host) -> None:
    runner, ctx = rig.runner, rig.ctx
    host.add_plugin_skill(SkillSpec(name="greet", keywords=["hello"]), source="plugin:test")
    scripted.enqueue([ReasoningDelta("hm"), TextDelta("Hi"), TextDelta(" there")])
    await runner.start(ctx, "hello")
    frames = await rig.frames_until_end()
    assert [f["type"] for f in frames] == [
        "skill_match",
        "thinking",
        "token",
        "token",
        "final_answer",
    ]
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert frames[-1]["content"] == "Hi there"
    assert scripted.history[0].messages[-1].content == "hello"
    assert [s.skill for s in scripted.history[0].skills] == ["greet"]
    stored = await Message.filter(session_id=ctx.session_id).values_list(
        "role", "content", "status"
    )
    assert stored == [("user", "hello", "complete"), ("assistant", "Hi there", "complete")]
    # The turn flushed the event log when it ended.
    assert await Event.filter(session_id=ctx.session_id).count() == 5


async def test_history_reaches_the_model(rig, scripted) -> None:
    runner, ctx = rig.runner, rig.ctx
    scripted.enqueue([TextDelta("first answer")])
    scripted.enqueue([TextDelta("second answer")])
    await runner.start(ctx, "first")
    await rig.frames_until_end()
    await runner.start(ctx, "second")
    await rig.frames_until_end()
    roles = [(m.role, m.content) for m in scripted.history[1].messages]
    assert roles == [("user", "first"), ("assistant", "first answer"), ("user", "second")]


async def test_busy_then_cancel_stores_partial(rig, scripted) -> None:
    runner, ctx = rig.runner, rig.ctx
    hold = asyncio.Event()
    scripted.enqueue([TextDelta("par"), TextDelta("tial"), hold, TextDelta("never")])
    await runner.start(ctx, "go")
    with pytest.raises(TurnRejected) as busy:
        await runner.start(ctx, "again")
    assert busy.value.code == ErrorCode.busy
    while sum(1 for i in await rig.outbox.drain() if i.event.type == "token") < 2:
        pass
    runner.cancel(ctx.session_id)
    with pytest.raises(TurnRejected) as twice:
        runner.cancel(ctx.session_id)
    assert twice.value.code == ErrorCode.no_active_turn
    frames = await rig.frames_until_end()
    assert frames[-1]["code"] == "cancelled"
    last = await Message.filter(session_id=ctx.session_id).order_by("-id").first()
    assert (last.content, last.status) == ("partial", "cancelled")
    assert not runner.is_running(ctx.session_id)


async def test_cancel_before_the_turn_ran(rig, scripted) -> None:
    runner, ctx = rig.runner, rig.ctx
    scripted.enqueue([TextDelta("x")])
    await runner.start(ctx, "go")
    runner.cancel(ctx.session_id)
    frames = await rig.frames_until_end()
    assert frames[-1]["code"] == "cancelled"
    assert not runner.is_running(ctx.session_id)


async def test_model_error_ends_the_turn_with_status_error(rig, scripted) -> None:
    runner, ctx = rig.runner, rig.ctx
    scripted.enqueue([TextDelta("half"), ModelError("upstream 503", retryable=True)])
    await runner.start(ctx, "go")
    frames = await rig.frames_until_end()
    assert (frames[-1]["code"], frames[-1]["retryable"]) == ("model_error", True)
    last = await Message.filter(session_id=ctx.session_id).order_by("-id").first()
    assert (last.content, last.status) == ("half", "error")


async def test_unexpected_failure_is_internal_and_frees_the_session(rig, scripted) -> None:
    runner, ctx = rig.runner, rig.ctx
    scripted.enqueue([ZeroDivisionError()])
    scripted.enqueue([TextDelta("ok")])
    await runner.start(ctx, "go")
    assert (await rig.frames_until_end())[-1]["code"] == "internal"
    await runner.start(ctx, "again")
    assert (await rig.frames_until_end())[-1]["content"] == "ok"


async def test_cancel_with_nothing_running(rig) -> None:
    runner, ctx = rig.runner, rig.ctx
    with pytest.raises(TurnRejected) as caught:
        runner.cancel(ctx.session_id)
    assert caught.value.code == ErrorCode.no_active_turn


async def test_shutdown_interrupts_a_running_turn(rig, scripted) -> None:
    scripted.enqueue([TextDelta("half"), asyncio.Event()])
    await rig.runner.start(rig.ctx, "go")
    await rig.frames_until("token")
    await rig.runner.shutdown()
    frames = await rig.frames_until_end()
    assert frames[-1] == frames[-1] | {"code": "interrupted", "retryable": True}
    stored = await Message.get(session_id=rig.ctx.session_id, role="assistant")
    assert (stored.content, stored.status) == ("half", "error")


async def test_turns_a_dead_process_left_running_are_closed_at_startup(rig, session) -> None:
    # What a process that died mid-turn leaves behind: the user message, the
    # tokens it had logged, an open request, and no answer.
    await Message.create(session_id=session.id, turn_id="t1", role="user", content="hi")
    for seq, text in [(1, "You"), (2, " said")]:
        token = Token(session_id=session.id, seq=seq, turn_id="t1", content=text)
        await Event.create(
            session_id=session.id, seq=seq, type="token", turn_id="t1", frame=token.to_json()
        )
    await PendingRequest.create(
        id="r1",
        session_id=session.id,
        turn_id="t1",
        kind="question",
        seq=2,
        prompt="?",
        timeout_s=1,
    )
    # It had reserved seqs up to 500: its clients may have seen any of them.
    await Session.filter(id=session.id).update(seq_reserved=500)
    # A finished turn is left alone.
    await Message.create(session_id=session.id, turn_id="t0", role="user", content="a")
    await Message.create(session_id=session.id, turn_id="t0", role="assistant", content="b")

    rig.runner.bus.drop(session.id)  # as at startup: no channel yet
    assert await rig.runner.close_interrupted() == 1
    answer = await Message.get(turn_id="t1", role="assistant")
    assert (answer.content, answer.status) == ("You said", "error")
    last = await Event.filter(session_id=session.id).order_by("-seq").first()
    assert (last.seq, last.type, last.turn_id) == (501, "error", "t1")
    assert '"code":"interrupted"' in last.frame
    assert (await PendingRequest.get(id="r1")).status == "cancelled"
    assert await rig.runner.close_interrupted() == 0


async def test_a_team_a_dead_process_left_open_is_dissolved_at_startup(rig, session) -> None:
    await Message.create(session_id=session.id, turn_id="t1", role="user", content="hi")
    frames = [
        TeamFormed(team_id="team1", goal="hi", experts=[]),
        Token(content="expert text", expert="critic"),
        Token(content="The synthesis"),
    ]
    for seq, frame in enumerate(frames, 1):
        frame.session_id, frame.seq, frame.turn_id = session.id, seq, "t1"
        await Event.create(
            session_id=session.id, seq=seq, type=frame.type, turn_id="t1", frame=frame.to_json()
        )

    rig.runner.bus.drop(session.id)
    assert await rig.runner.close_interrupted() == 1
    answer = await Message.get(turn_id="t1", role="assistant")
    assert answer.content == "The synthesis"
    closing = await Event.filter(session_id=session.id, seq__gt=3).order_by("seq")
    assert [e.type for e in closing] == ["team_dissolved", "error"]
    assert '"team_id":"team1"' in closing[0].frame and '"reason":"failed"' in closing[0].frame
