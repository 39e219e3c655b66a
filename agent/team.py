"""Expert teams: a goal split into tasks, worked on at once, merged into one answer.

A team forms inside a turn: for a message sent with ``mode: "team"``, when a
matched skill names experts, or when the model calls the ``convene_team``
tool. It runs in five steps:

1. The planner (one model call, purpose ``plan``) gives each expert a task;
   in team mode with no experts named it also picks the experts among the
   registered ones. Then ``team_formed`` and ``plan_update`` (all ``pending``).
2. The experts work concurrently, at most ``concurrency`` at a time, each
   through the agent loop a turn uses, tools and confirmations included.
   Their text streams as ``token`` frames that carry ``expert``; their
   reasoning and tool calls as ``expert_step``. A finished task sends
   ``expert_result``; every status change sends ``plan_update``. An expert
   that fails marks its task ``failed`` and the others go on.
3. The synthesis (purpose ``synthesis``) streams as the turn's own tokens,
   then ``team_synthesis``; it is the turn's answer.
4. ``team_dissolved``: ``done``; ``cancelled`` when the turn is cancelled
   (every expert is stopped first); ``failed`` when every task or the
   synthesis failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

from agent.loop import AnswerVoice, ExpertVoice, TurnError, model_stream
from agent.protocol import (
    ErrorCode,
    ExpertInfo,
    ExpertResult,
    PlanItem,
    PlanUpdate,
    TeamDissolved,
    TeamFormed,
    TeamSynthesis,
    Thinking,
)
from plugins.builtin.team import CONVENE_TOOL
from plugins.llm import ChatMessage, ModelError, ModelRequest, TextDelta, Usage
from plugins.skills import ExpertSpec
from plugins.tools import MAX_TEAM, TeamOutcome, Tool

if TYPE_CHECKING:
    from agent.loop import AgentLoop
    from agent.turns import Turn

log = logging.getLogger(__name__)

PLANNER_PROMPT = (
    "You lead a team of experts. The user's message gives the team's goal and "
    "the experts, as JSON. {choose} Answer with JSON only, in this shape: "
    '{{"tasks": [{{"expert": "<name>", "task": "<what this expert should do, '
    'in one or two sentences>"}}]}}'
)
CHOOSE_SOME = "Pick the experts the goal needs, at least two, and give each one task."
CHOOSE_ALL = "Give every expert exactly one task."
EXPERT_PROMPT = (
    "You are the {name} expert of a team{role}. {instructions}\n\n"
    "The team's goal: {goal}\n\n"
    "Do only your own task, in a few sentences; the team lead merges every "
    "expert's result into the answer."
)
SYNTHESIS_PROMPT = (
    "You lead a team of experts. The user's message gives the team's goal and "
    "each expert's result, as JSON. Merge the results into one answer to the "
    "goal, written for the user. Where a task failed, say what is missing."
)


class TeamFailed(TurnError):
    """The team produced no answer: every task failed."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.model_error, message, retryable=True)


class PlannedTask(BaseModel):
    expert: str
    task: str = Field(min_length=1)


class TeamPlan(BaseModel):
    """What the planner answers."""

    tasks: list[PlannedTask]


@dataclass
class Task:
    """One expert's part of the plan."""

    id: str
    expert: ExpertSpec
    task: str
    status: Literal["pending", "running", "done", "failed"] = "pending"
    result: str = ""
    error: str = ""

    def item(self) -> PlanItem:
        return PlanItem(id=self.id, expert=self.expert.name, task=self.task, status=self.status)

    def report(self) -> dict[str, str]:
        """The task as the synthesis sees it."""
        outcome = {"result": self.result} if self.status == "done" else {"error": self.error}
        return {"expert": self.expert.name, "task": self.task, "status": self.status, **outcome}


class TeamOrchestrator:
    """Runs teams for the turns of one agent loop.

    :param concurrency: how many experts of a team work at the same time.
    """

    def __init__(self, loop: AgentLoop, *, concurrency: int = 3) -> None:
        self.loop = loop
        self.concurrency = concurrency

    # ── who is on the team ──

    def resolve(self, experts: Iterable[str | ExpertSpec]) -> list[ExpertSpec]:
        """Turn names and specs into experts, at most :data:`MAX_TEAM`, first of a name wins.

        A bare name is the registered expert of that name, or else an expert
        made up on the spot with only that name (the model and the demo
        directive may invent them).
        """
        registered = self.loop.plugins.experts
        team: dict[str, ExpertSpec] = {}
        for entry in experts:
            spec = ExpertSpec(name=entry) if isinstance(entry, str) else entry
            if spec.is_reference:
                spec = registered.get(spec.name, spec)
            team.setdefault(spec.name, spec)
        return list(team.values())[:MAX_TEAM]

    def registered(self) -> list[ExpertSpec]:
        """The candidates of a team for which nobody named experts."""
        return list(self.loop.plugins.experts.values())[:MAX_TEAM]

    # ── the team's life ──

    async def run(
        self,
        turn: Turn,
        goal: str,
        experts: list[ExpertSpec],
        *,
        tools: dict[str, Tool],
        choose: bool = False,
    ) -> TeamOutcome:
        """Run a team on *goal*; the synthesis becomes the turn's answer.

        :param experts: the team, or with *choose* the candidates to pick from.
        :param tools: what the turn may call; experts without a ``tools`` list get these.
        :raises TeamFailed: every task failed (``team_dissolved`` ``failed`` was sent).
        :raises agent.llm.ModelError: the synthesis failed (likewise).
        """
        if not experts:
            raise TeamFailed("no experts are registered, so no team can form")
        team_id = uuid.uuid4().hex
        turn.emit(Thinking(content=f"Planning the team's work on: {goal}"))
        tasks = await self._plan(turn, goal, experts, choose=choose)
        turn.emit(
            TeamFormed(
                team_id=team_id,
                goal=goal,
                experts=[ExpertInfo(name=t.expert.name, role=t.expert.role) for t in tasks],
            )
        )
        try:
            self._show_plan(turn, team_id, tasks)
            await self._work(turn, team_id, goal, tasks, tools)
            failed = [task for task in tasks if task.status == "failed"]
            if len(failed) == len(tasks):
                reasons = "; ".join(f"{t.expert.name}: {t.error}" for t in failed)
                raise TeamFailed(f"every expert of the team failed ({reasons})")
            synthesis = await self._synthesize(turn, goal, tasks)
            turn.emit(TeamSynthesis(team_id=team_id, content=synthesis))
        except asyncio.CancelledError:
            turn.emit(TeamDissolved(team_id=team_id, reason="cancelled"))
            raise
        except Exception:
            turn.emit(TeamDissolved(team_id=team_id, reason="failed"))
            raise
        turn.emit(TeamDissolved(team_id=team_id, reason="done"))
        return TeamOutcome(team_id, synthesis, len(tasks) - len(failed), len(failed))

    async def _plan(
        self, turn: Turn, goal: str, experts: list[ExpertSpec], *, choose: bool
    ) -> list[Task]:
        brief = {"goal": goal, "experts": [{"name": e.name, "role": e.role} for e in experts]}
        request = ModelRequest(
            messages=[
                ChatMessage(
                    role="system",
                    content=PLANNER_PROMPT.format(choose=CHOOSE_SOME if choose else CHOOSE_ALL),
                ),
                ChatMessage(role="user", content=json.dumps(brief)),
            ],
            purpose="plan",
        )
        try:
            answer = await self._complete(turn, request)
        except ModelError as exc:
            log.warning(
                "the planner failed in turn %s (%s); every expert gets the goal", turn.id, exc
            )
            answer = ""
        assigned: dict[str, str] = {}
        try:
            plan = TeamPlan.model_validate_json(_json_object(answer))
        except ValidationError:
            if answer:
                log.warning(
                    "the planner's answer in turn %s is not a plan: %.200r", turn.id, answer
                )
        else:
            for planned in plan.tasks:
                assigned.setdefault(planned.expert, planned.task.strip())
        members = experts
        if choose and len(picked := [e for e in experts if e.name in assigned]) >= 2:
            members = picked
        return [
            Task(id=f"t{n}", expert=expert, task=assigned.get(expert.name) or goal)
            for n, expert in enumerate(members, 1)
        ]

    async def _work(
        self, turn: Turn, team_id: str, goal: str, tasks: list[Task], tools: dict[str, Tool]
    ) -> None:
        slots = asyncio.Semaphore(self.concurrency)

        async def work(task: Task) -> None:
            async with slots:
                await self._expert(turn, team_id, goal, task, tasks, tools)

        # A cancelled turn cancels the group, which stops every expert before it ends.
        async with asyncio.TaskGroup() as group:
            for task in tasks:
                group.create_task(work(task), name=f"expert-{task.expert.name}")

    async def _expert(
        self,
        turn: Turn,
        team_id: str,
        goal: str,
        task: Task,
        tasks: list[Task],
        turn_tools: dict[str, Tool],
    ) -> None:
        expert = task.expert
        task.status = "running"
        self._show_plan(turn, team_id, tasks)
        voice = ExpertVoice(turn, team_id, expert.name)
        role = f", {expert.role}" if expert.role else ""
        messages = [
            ChatMessage(
                role="system",
                content=EXPERT_PROMPT.format(
                    name=expert.name, role=role, instructions=expert.instructions, goal=goal
                ).replace("  ", " "),
            ),
            ChatMessage(role="user", content=task.task),
        ]
        try:
            model = self.loop.plugins.model(expert.model or self.loop.model_name)
            tools = self._tools_for(expert, turn_tools)
            await self.loop.converse(turn, model, messages, tools, voice, purpose="expert")
        except asyncio.CancelledError:
            raise
        except (ModelError, TurnError) as exc:
            task.error = str(exc)
        except Exception as exc:
            log.exception("expert %s failed in turn %s", expert.name, turn.id)
            task.error = f"the expert failed: {type(exc).__name__}: {exc}"
        if task.error:
            task.status = "failed"
            voice.progress(f"Failed: {task.error}")
        else:
            task.status = "done"
            task.result = voice.answer
            turn.emit(ExpertResult(team_id=team_id, expert=expert.name, content=task.result))
        self._show_plan(turn, team_id, tasks)

    def _tools_for(self, expert: ExpertSpec, turn_tools: dict[str, Tool]) -> dict[str, Tool]:
        """The expert's own tools, or the turn's; never ``convene_team``."""
        if expert.tools is None:
            tools = dict(turn_tools)
        else:
            known = self.loop.plugins.tools
            tools = {name: known[name] for name in expert.tools if name in known}
        tools.pop(CONVENE_TOOL, None)
        return tools

    async def _synthesize(self, turn: Turn, goal: str, tasks: list[Task]) -> str:
        brief = {"goal": goal, "results": [task.report() for task in tasks]}
        messages = [
            ChatMessage(role="system", content=SYNTHESIS_PROMPT),
            ChatMessage(role="user", content=json.dumps(brief)),
        ]
        # The synthesis is the answer, even when the model said something
        # before it convened the team.
        turn.parts.clear()
        model = self.loop.plugins.model(self.loop.model_name)
        await self.loop.converse(turn, model, messages, {}, AnswerVoice(turn), purpose="synthesis")
        return turn.answer

    async def _complete(self, turn: Turn, request: ModelRequest) -> str:
        """One model call's text, not streamed to anyone."""
        model = self.loop.plugins.model(self.loop.model_name)
        text: list[str] = []
        async with model_stream(model, request) as stream:
            async for output in stream:
                if isinstance(output, TextDelta):
                    text.append(output.text)
                elif isinstance(output, Usage):
                    turn.count(output)
        return "".join(text)

    @staticmethod
    def _show_plan(turn: Turn, team_id: str, tasks: list[Task]) -> None:
        turn.emit(PlanUpdate(team_id=team_id, plan=[task.item() for task in tasks]))


def _json_object(text: str) -> str:
    """The outermost ``{...}`` in *text*: models like to wrap JSON in prose or fences."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else ""
