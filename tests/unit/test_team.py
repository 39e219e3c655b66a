"""The team orchestrator with a scripted model: order, concurrency bound, failures, cancel."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from agent.protocol import ConfirmationReply
from models import Message, Note
from plugins.llm import ModelError, ModelOutput, ModelRequest, TextDelta, ToolCall
from plugins.skills import ExpertSpec, SkillSpec
from tests.unit.conftest import ScriptedModel


class TeamModel(ScriptedModel):
    """Scripts keyed by who is asked: ``plan``, ``synthesis``, ``answer`` or an expert's name.

    It also counts how many experts stream at once, and which streams were closed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.keyed: dict[str, list[list[object]]] = defaultdict(list)
        self.active = 0
        self.peak = 0
        self.closed: list[str] = []

    def script(self, key: str, *items: object) -> None:
        self.keyed[key].append(list(items))

    def plan(self, tasks: dict[str, str]) -> None:
        answer = {"tasks": [{"expert": e, "task": t} for e, t in tasks.items()]}
        self.script("plan", TextDelta("Here is the plan: " + json.dumps(answer)))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        self.history.append(request)
        key = request.expert or request.purpose
        expert = request.purpose == "expert"
        self.active += expert
        self.peak = max(self.peak, self.active)
        try:
            async for output in self.play(self.keyed[key].pop(0)):
                yield output
        finally:
            self.active -= expert
            self.closed.append(key)

    def requests(self, purpose: str) -> list[ModelRequest]:
        return [r for r in self.history if r.purpose == purpose]


@pytest.fixture
def scripted() -> TeamModel:
    return TeamModel()


def types(frames: list[dict]) -> list[str]:
    return [f["type"] for f in frames]


def plans(frames: list[dict]) -> list[dict[str, str]]:
    """Each plan_update as {expert: status}."""
    return [
        {item["expert"]: item["status"] for item in f["plan"]}
        for f in frames
        if f["type"] == "plan_update"
    ]


async def test_a_team_turn_sends_its_events_in_order(rig, scripted) -> None:
    scripted.plan({"researcher": "Find the facts.", "critic": "Find the risks."})
    scripted.script("researcher", TextDelta("Facts "), TextDelta("found."))
    scripted.script("critic", TextDelta("Risks found."))
    scripted.script("synthesis", TextDelta("Both "), TextDelta("agree."))
    await rig.runner.start(rig.ctx, "Should we migrate?", mode="team")
    frames = await rig.frames_until_end()

    kinds = types(frames)
    assert kinds[:3] == ["thinking", "team_formed", "plan_update"]
    assert kinds[-5:] == ["token", "token", "team_synthesis", "team_dissolved", "final_answer"]
    team_id = frames[1]["team_id"]
    assert all(f["team_id"] == team_id for f in frames if "team_id" in f)
    # The planner picked two of the three registered experts.
    assert frames[1]["goal"] == "Should we migrate?"
    assert frames[1]["experts"] == [
        {"name": "researcher", "role": "finds the facts the question turns on"},
        {"name": "critic", "role": "looks for what could go wrong"},
    ]
    assert [(i["id"], i["expert"], i["task"], i["status"]) for i in frames[2]["plan"]] == [
        ("t1", "researcher", "Find the facts.", "pending"),
        ("t2", "critic", "Find the risks.", "pending"),
    ]
    for expert, text in [("researcher", "Facts found."), ("critic", "Risks found.")]:
        own = [f for f in frames if f.get("expert") == expert]
        assert [f["type"] for f in own if f["type"] != "token"] == ["expert_result"]
        assert "".join(f["content"] for f in own if f["type"] == "token") == text
        assert own[-1]["content"] == text
        running = next(i for i, p in enumerate(plans(frames)) if p[expert] == "running")
        done = next(i for i, p in enumerate(plans(frames)) if p[expert] == "done")
        assert 0 < running < done
    assert plans(frames)[-1] == {"researcher": "done", "critic": "done"}
    # The synthesis streams as the turn's own tokens and is the answer.
    answer_tokens = [f["content"] for f in frames if f["type"] == "token" and "expert" not in f]
    assert "".join(answer_tokens) == "Both agree."
    assert frames[-3]["content"] == frames[-1]["content"] == "Both agree."
    assert frames[-2]["reason"] == "done"
    stored = await Message.get(id=frames[-1]["message_id"])
    assert (stored.content, stored.status) == ("Both agree.", "complete")

    brief = json.loads(scripted.requests("synthesis")[0].user_message)
    assert brief["results"] == [
        {
            "expert": "researcher",
            "task": "Find the facts.",
            "status": "done",
            "result": "Facts found.",
        },
        {"expert": "critic", "task": "Find the risks.", "status": "done", "result": "Risks found."},
    ]
    researcher = next(r for r in scripted.requests("expert") if r.expert == "researcher")
    assert "Should we migrate?" in researcher.messages[0].content
    assert "State the facts that matter" in researcher.messages[0].content
    assert researcher.user_message == "Find the facts."
    # Experts may use the turn's tools, but never convene a team of their own.
    assert "calculator" in [t.name for t in researcher.tools]
    assert "convene_team" not in [t.name for t in researcher.tools]


async def test_at_most_concurrency_experts_work_at_once(rig, scripted, host) -> None:
    rig.runner.loop.team.concurrency = 2
    names = ["a", "b", "c", "d"]
    host.add_plugin_skill(
        SkillSpec(name="panel", keywords=["panel"], experts=[ExpertSpec(name=n) for n in names]),
        source="plugin:test",
    )
    scripted.plan({})
    gates = {name: asyncio.Event() for name in names}
    for name in names:
        scripted.script(name, gates[name], TextDelta(f"{name} done"))
    scripted.script("synthesis", TextDelta("all done"))
    await rig.runner.start(rig.ctx, "ask the panel")

    seen: list[dict] = []
    # Release the experts one at a time, each once it is seen running.
    for name in names:
        while not any(p.get(name) == "running" for p in plans(seen)):
            seen += await rig.frames_until("plan_update")
        gates[name].set()
    seen += await rig.frames_until_end()

    assert scripted.peak == 2
    assert max(list(p.values()).count("running") for p in plans(seen)) == 2
    assert plans(seen)[-1] == dict.fromkeys(names, "done")
    # Without a plan from the planner, every expert's task is the goal.
    formed = next(f for f in seen if f["type"] == "plan_update")
    assert {i["task"] for i in formed["plan"]} == {"ask the panel"}
    assert seen[-1] == seen[-1] | {"type": "final_answer", "content": "all done"}


async def test_a_failing_expert_is_marked_failed_and_the_others_go_on(rig, scripted) -> None:
    scripted.plan({"researcher": "Facts.", "analyst": "Options.", "critic": "Risks."})
    scripted.script("researcher", TextDelta("Some facts."))
    scripted.script("analyst", TextDelta("Half an"), ModelError("upstream broke"))
    scripted.script("critic", TextDelta("Some risks."))
    scripted.script("synthesis", TextDelta("Facts and risks; the options are missing."))
    await rig.runner.start(rig.ctx, "Which database?", mode="team")
    frames = await rig.frames_until_end()

    assert plans(frames)[-1] == {"researcher": "done", "analyst": "failed", "critic": "done"}
    assert [f["expert"] for f in frames if f["type"] == "expert_result"] == [
        "researcher",
        "critic",
    ]
    failure = next(f for f in frames if f["type"] == "expert_step" and f["expert"] == "analyst")
    assert failure["content"] == "Failed: upstream broke"
    brief = json.loads(scripted.requests("synthesis")[0].user_message)
    assert brief["results"][1] == {
        "expert": "analyst",
        "task": "Options.",
        "status": "failed",
        "error": "upstream broke",
    }
    assert types(frames)[-3:] == ["team_synthesis", "team_dissolved", "final_answer"]
    assert frames[-2]["reason"] == "done"


async def test_when_every_expert_fails_the_team_and_the_turn_fail(rig, scripted) -> None:
    scripted.plan({"researcher": "Facts.", "critic": "Risks."})
    scripted.script("researcher", ModelError("no key"))
    scripted.script("critic", ModelError("no key"))
    await rig.runner.start(rig.ctx, "Anything?", mode="team")
    frames = await rig.frames_until_end()

    assert types(frames)[-2:] == ["team_dissolved", "error"]
    assert frames[-2]["reason"] == "failed"
    assert frames[-1]["code"] == "model_error" and frames[-1]["retryable"] is True
    assert "every expert of the team failed" in frames[-1]["message"]
    assert scripted.requests("synthesis") == []


async def test_cancel_stops_every_expert_then_dissolves_the_team(rig, scripted) -> None:
    scripted.plan({"researcher": "Facts.", "critic": "Risks."})
    never = asyncio.Event()
    scripted.script("researcher", TextDelta("Starting"), never)
    scripted.script("critic", TextDelta("Starting"), never)
    await rig.runner.start(rig.ctx, "Long question", mode="team")
    seen: list[dict] = []
    while sum(f["type"] == "token" for f in seen) < 2:
        seen += await rig.frames_until("token")
    rig.runner.cancel(rig.ctx.session_id)
    seen += await rig.frames_until_end()

    assert types(seen)[-2:] == ["team_dissolved", "error"]
    assert seen[-2]["reason"] == "cancelled" and seen[-1]["code"] == "cancelled"
    # Both expert streams were closed; nothing more came after the cancel.
    assert sorted(k for k in scripted.closed if k != "plan") == ["critic", "researcher"]
    assert "team_synthesis" not in types(seen)
    stored = await Message.filter(role="assistant").get()
    assert stored.status == "cancelled"
    # The session takes the next message normally.
    scripted.script("answer", TextDelta("fine"))
    await rig.runner.start(rig.ctx, "hello")
    assert (await rig.frames_until_end())[-1]["content"] == "fine"


async def test_an_expert_uses_a_tool_that_needs_confirmation(rig, scripted, host) -> None:
    host.experts["scribe"] = ExpertSpec(name="scribe", role="keeps notes", tools=["save_note"])
    host.add_plugin_skill(
        SkillSpec(name="minutes", keywords=["minutes"], experts=[ExpertSpec(name="scribe")]),
        source="plugin:test",
    )
    scripted.plan({"scribe": "Write it down."})
    scripted.script("scribe", ToolCall(id="n1", name="save_note", arguments='{"text": "hi"}'))
    scripted.script("scribe", TextDelta("Noted."))
    scripted.script("synthesis", TextDelta("The note is saved."))
    await rig.runner.start(rig.ctx, "take minutes")
    frames = await rig.frames_until("confirmation_request")
    request = frames[-1]
    assert request["reason"].startswith("The scribe expert asks: ")
    assert scripted.requests("expert")[0].tools == [host.tools["save_note"]]
    rig.pending.answer(
        rig.ctx.session_id,
        ConfirmationReply(
            type="confirmation_reply", request_id=request["request_id"], approved=True
        ),
    )
    frames += await rig.frames_until_end()

    steps = [f["content"] for f in frames if f["type"] == "expert_step"]
    assert steps == ['Calling save_note with {"text": "hi"}', steps[1]]
    assert steps[1].startswith("save_note returned: ")
    assert await Note.filter(session_id=rig.ctx.session_id).values_list("text", flat=True) == ["hi"]
    assert frames[-1]["content"] == "The note is saved."


async def test_the_model_convenes_a_team_whose_synthesis_is_the_answer(rig, scripted) -> None:
    arguments = json.dumps({"goal": "Plan a trip", "experts": ["critic", "guide"]})
    scripted.script("answer", ToolCall(id="t1", name="convene_team", arguments=arguments))
    scripted.plan({"critic": "Risks of the trip.", "guide": "Sights."})
    scripted.script("critic", TextDelta("Rain."))
    scripted.script("guide", TextDelta("Museums."))
    scripted.script("synthesis", TextDelta("Museums, bring an umbrella."))
    await rig.runner.start(rig.ctx, "help me plan a trip")
    frames = await rig.frames_until_end()

    kinds = types(frames)
    assert kinds[0] == "step" and frames[0]["tool"] == "convene_team"
    assert kinds[-4:] == ["team_synthesis", "team_dissolved", "step", "final_answer"]
    # A registered expert keeps its role; a new name is an expert made up on the spot.
    formed = frames[kinds.index("team_formed")]
    assert formed["goal"] == "Plan a trip"
    assert formed["experts"] == [
        {"name": "critic", "role": "looks for what could go wrong"},
        {"name": "guide", "role": ""},
    ]
    assert frames[-2]["result"] == {
        "team_id": formed["team_id"],
        "tasks_done": 2,
        "tasks_failed": 0,
    }
    assert frames[-1]["content"] == "Museums, bring an umbrella."
    # The model is not called again once the team answered.
    assert len(scripted.requests("answer")) == 1


async def test_cancel_ends_an_experts_open_confirmation_before_the_team(rig, scripted) -> None:
    scripted.plan({"critic": "Risks.", "researcher": "Facts."})
    scripted.script("critic", ToolCall(id="n1", name="save_note", arguments='{"text": "x"}'))
    scripted.script("researcher", asyncio.Event())  # never set: still working at the cancel
    await rig.runner.start(rig.ctx, "Note the risks", mode="team")
    await rig.frames_until("confirmation_request")
    rig.runner.cancel(rig.ctx.session_id)
    frames = await rig.frames_until_end()

    assert types(frames)[-3:] == ["confirmation_result", "team_dissolved", "error"]
    assert frames[-3]["by"] == "cancel"
    assert rig.pending.open_events(rig.ctx.session_id) == []


async def test_a_shutdown_dissolves_the_team_and_interrupts_the_turn(rig, scripted) -> None:
    scripted.plan({"researcher": "Facts.", "critic": "Risks."})
    scripted.script("researcher", TextDelta("Going"), asyncio.Event())
    scripted.script("critic", TextDelta("Going"), asyncio.Event())
    await rig.runner.start(rig.ctx, "Long", mode="team")
    await rig.frames_until("token")
    await rig.runner.shutdown()
    frames = await rig.frames_until_end()

    assert types(frames)[-2:] == ["team_dissolved", "error"]
    assert frames[-2]["reason"] == "cancelled" and frames[-1]["code"] == "interrupted"
