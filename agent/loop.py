"""The agent loop: one turn's conversation with the model, its tools and the human.

A round streams the model's output (``token`` and ``thinking`` frames) and
collects the tools it calls. When the model called tools, each runs in order
(``step`` frames, a ``confirmation_request`` first where a tool needs one) and
the model is called again with their results, until it answers without tools
or the round limit is reached.

The same rounds run an expert of a team (:mod:`agent.team`); a *voice* decides
which frames the output becomes: the turn's own, or the expert's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from agent import json_limits, metrics
from agent.pending import PendingRequests
from agent.prompt import build_messages
from agent.protocol import (
    ErrorCode,
    ExpertStep,
    SkillMatchEvent,
    Step,
    StepError,
    Thinking,
    Token,
    describe_validation_error,
)
from agent.router import Router
from plugins.llm import (
    ChatMessage,
    ChatModel,
    ModelError,
    ModelOutput,
    ModelRequest,
    Purpose,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from plugins.manager import PluginHost
from plugins.skills import ExpertSpec, SkillMatch
from plugins.tools import Tool, ToolContext, ToolError

if TYPE_CHECKING:
    from agent.turns import Turn
    from plugins.tools import TeamOutcome

log = logging.getLogger(__name__)

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class TurnError(Exception):
    """The loop cannot go on; the turn ends with an ``error`` frame of this code."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Voice(Protocol):
    """Where a model's output goes: the frames it becomes."""

    #: The expert speaking, or ``None`` for the turn's own answer.
    expert: str | None

    def text(self, text: str) -> None: ...

    def reasoning(self, text: str) -> None: ...

    def step(self, step: Step) -> None: ...


class AnswerVoice:
    """The turn's answer: ``token`` and ``thinking`` frames; the text is the turn's."""

    expert = None

    def __init__(self, turn: Turn) -> None:
        self.turn = turn

    def text(self, text: str) -> None:
        self.turn.parts.append(text)
        self.turn.emit(Token(content=text))

    def reasoning(self, text: str) -> None:
        self.turn.emit(Thinking(content=text))

    def step(self, step: Step) -> None:
        self.turn.emit(step)


class ExpertVoice:
    """An expert at work: ``token`` frames that name it, ``expert_step`` for the rest."""

    def __init__(self, turn: Turn, team_id: str, expert: str) -> None:
        self.turn = turn
        self.team_id = team_id
        self.expert = expert
        self.parts: list[str] = []

    @property
    def answer(self) -> str:
        return "".join(self.parts)

    def text(self, text: str) -> None:
        self.parts.append(text)
        self.turn.emit(Token(content=text, expert=self.expert))

    def reasoning(self, text: str) -> None:
        self.progress(text)

    def step(self, step: Step) -> None:
        if step.kind == "tool_call":
            self.progress(f"Calling {step.tool} with {json.dumps(step.arguments)}")
        elif step.error is not None:
            self.progress(f"{step.tool} failed: {step.error.message}")
        else:
            self.progress(f"{step.tool} returned: {json.dumps(step.result)}")

    def progress(self, content: str) -> None:
        self.turn.emit(ExpertStep(team_id=self.team_id, expert=self.expert, content=content))


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What the model is told about one tool call."""

    content: str

    @classmethod
    def failed(cls, message: str) -> ToolOutcome:
        return cls(f"Error: {message}")


class AgentLoop:
    """Runs turns against one model.

    :param max_rounds: model rounds per turn before ``error`` ``step_limit``.
    :param system_prompt: the start of every turn's system message.
    :param history_budget_chars: how much earlier conversation the model sees.
    :param team_concurrency: how many experts of a team work at the same time.
    """

    def __init__(
        self,
        plugins: PluginHost,
        pending: PendingRequests,
        *,
        model_name: str,
        max_rounds: int = 10,
        system_prompt: str = "",
        history_budget_chars: int = 32_000,
        team_concurrency: int = 3,
    ) -> None:
        # The team runs experts through this loop, so it imports the loop, not the reverse.
        from agent.team import TeamOrchestrator

        self.plugins = plugins
        self.pending = pending
        self.router = Router(plugins)
        self.model_name = model_name
        self.max_rounds = max_rounds
        self.system_prompt = system_prompt
        self.history_budget_chars = history_budget_chars
        self.team = TeamOrchestrator(self, concurrency=team_concurrency)

    async def run(self, turn: Turn, history: list[ChatMessage]) -> None:
        """Answer the turn's message; the answer text accumulates in ``turn.parts``.

        :param history: earlier messages of the session, ending with the user's new one.
        :raises TurnError: the model kept calling tools past the round limit.
        :raises agent.llm.ModelError: the model failed.
        """
        matches = await self.router.match(turn.content, turn.session)
        for match in matches:
            turn.emit(
                SkillMatchEvent(
                    skill=match.skill,
                    matched=match.matched,
                    score=match.score,
                    source=match.source,
                )
            )
        tools = self.enabled_tools(matches)
        experts = [expert for match in matches for expert in match.experts]
        if turn.mode == "team" or experts:
            await self._run_team(turn, experts, tools)
            return
        messages = build_messages(self.system_prompt, matches, history, self.history_budget_chars)
        model = self.plugins.model(self.model_name)
        await self.converse(turn, model, messages, tools, AnswerVoice(turn), skills=matches)

    async def converse(
        self,
        turn: Turn,
        model: ChatModel,
        messages: list[ChatMessage],
        tools: dict[str, Tool],
        voice: Voice,
        *,
        purpose: Purpose = "answer",
        skills: list[SkillMatch] | None = None,
    ) -> None:
        """Run model rounds until the model answers without calling a tool.

        :param messages: the conversation so far; this turn's calls are appended.
        :param voice: what the output becomes.
        :raises TurnError: the model kept calling tools past the round limit.
        :raises agent.llm.ModelError: the model failed.
        """
        for _ in range(self.max_rounds):
            request = ModelRequest(
                messages=messages,
                skills=skills or [],
                tools=list(tools.values()),
                purpose=purpose,
                expert=voice.expert,
            )
            text: list[str] = []
            calls: list[ToolCall] = []
            async with model_stream(model, request) as stream:
                async for output in stream:
                    if isinstance(output, TextDelta):
                        delta = wire_text(output.text)
                        text.append(delta)
                        voice.text(delta)
                        # The stream waits for the log, so a crash loses a bounded tail.
                        await turn.channel.log.room()
                    elif isinstance(output, ReasoningDelta):
                        voice.reasoning(wire_text(output.text))
                    elif isinstance(output, ToolCall):
                        calls.append(output)
                    elif isinstance(output, Usage):
                        turn.count(output)
            if not calls:
                return
            messages.append(
                ChatMessage(role="assistant", content="".join(text), tool_calls=tuple(calls))
            )
            for call in calls:
                outcome = await self.call_tool(turn, call, tools, voice)
                if turn.answered:
                    # A team answered for the turn (convene_team); its synthesis is the answer.
                    return
                messages.append(
                    ChatMessage(role="tool", content=outcome.content, tool_call_id=call.id)
                )
        raise TurnError(
            ErrorCode.step_limit,
            f"the model was still calling tools after {self.max_rounds} rounds",
        )

    async def _run_team(
        self, turn: Turn, experts: list[ExpertSpec], tools: dict[str, Tool]
    ) -> None:
        """A team answers the message: the one a matched skill names, or a chosen one."""
        team = self.team
        if experts:
            await team.run(turn, turn.content, team.resolve(experts), tools=tools)
        else:
            await team.run(turn, turn.content, team.registered(), tools=tools, choose=True)

    async def _convene(
        self, turn: Turn, tools: dict[str, Tool], goal: str, experts: list[str]
    ) -> TeamOutcome:
        """The ``convene_team`` tool: a team answers for the turn.

        :raises ToolError: the team failed, as :attr:`ToolContext.convene` promises tools.
        """
        try:
            outcome = await self.team.run(turn, goal, self.team.resolve(experts), tools=tools)
        except (TurnError, ModelError) as exc:
            raise ToolError(str(exc)) from None
        turn.answered = True
        return outcome

    def enabled_tools(self, matches: list[SkillMatch]) -> dict[str, Tool]:
        """Every tool, or only those the matched skills name when any names some."""
        named = {name for match in matches for name in match.tools}
        if not named:
            return dict(self.plugins.tools)
        return {name: tool for name, tool in self.plugins.tools.items() if name in named}

    async def call_tool(
        self, turn: Turn, call: ToolCall, tools: dict[str, Tool], voice: Voice
    ) -> ToolOutcome:
        """Run one tool call through validation, confirmation and the tool itself."""
        arguments = _parse_arguments(call.arguments)
        voice.step(Step(kind="tool_call", tool=call.name, call_id=call.id, arguments=arguments))

        def fail(code: ErrorCode, message: str) -> ToolOutcome:
            voice.step(
                Step(
                    kind="tool_result",
                    tool=call.name,
                    call_id=call.id,
                    error=StepError(code=code, message=message),
                )
            )
            return ToolOutcome.failed(message)

        tool = tools.get(call.name)
        if tool is None:
            return fail(
                ErrorCode.tool_error,
                f"tool {call.name!r} is not available; available tools: {sorted(tools)}",
            )
        if not isinstance(arguments, dict):
            return fail(ErrorCode.tool_error, "the arguments must be a JSON object")
        try:
            args = tool.arguments.model_validate(arguments)
        except ValidationError as exc:
            return fail(
                ErrorCode.tool_error, f"invalid arguments: {describe_validation_error(exc)}"
            )

        if tool.requires_confirmation:
            reason = tool.confirmation_reason or f"{tool.name}: {tool.description}"
            if voice.expert is not None:
                reason = f"The {voice.expert} expert asks: {reason}"
            decision = await self.pending.confirm(
                turn, tool=tool.name, arguments=arguments, reason=reason
            )
            if not decision.approved:
                if decision.by == "timeout":
                    why = f"nobody approved it within {self.pending.timeout_s:g} s"
                else:
                    why = "the user denied it" + (f": {decision.reason}" if decision.reason else "")
                return ToolOutcome(f"Not run: {why}.")

        ctx = ToolContext(
            session=turn.session,
            turn_id=turn.id,
            call_id=call.id,
            ask=lambda question: self._ask(turn, question),
            convene=None
            if voice.expert is not None
            else lambda goal, experts: self._convene(turn, tools, goal, experts),
        )
        try:
            result = await asyncio.wait_for(tool.run(args, ctx), tool.timeout_s)
        except ToolError as exc:
            return fail(ErrorCode.tool_error, str(exc))
        except TimeoutError:
            return fail(ErrorCode.timeout, f"the tool took longer than {tool.timeout_s:g} s")
        except Exception as exc:
            log.exception("tool %s failed in turn %s", tool.name, turn.id)
            return fail(ErrorCode.tool_error, f"the tool failed: {type(exc).__name__}: {exc}")
        result = to_jsonable_python(result, fallback=str)
        voice.step(Step(kind="tool_result", tool=call.name, call_id=call.id, result=result))
        return ToolOutcome(result if isinstance(result, str) else json.dumps(result))

    async def _ask(self, turn: Turn, question: str) -> str:
        reply = await self.pending.ask(turn, question)
        if reply is None:
            raise ToolError(f"the human did not answer within {self.pending.timeout_s:g} s")
        return reply


@asynccontextmanager
async def model_stream(
    model: ChatModel, request: ModelRequest
) -> AsyncIterator[AsyncIterator[ModelOutput]]:
    """One round's stream of *model*, closed on the way out when it can be.

    Closing matters: a cancelled turn closes an async generator (and its
    upstream connection) at once, not when it is collected. ``stream`` may
    return any async iterator, and a plain one has no ``aclose``.
    """
    metrics.model_called(model.name)
    stream = model.stream(request)
    try:
        yield stream
    except ModelError:
        metrics.model_failed(model.name)
        raise
    finally:
        if (aclose := getattr(stream, "aclose", None)) is not None:
            await aclose()


def wire_text(text: str) -> str:
    """*text* as it can go on the wire: a lone surrogate (which no JSON encoder
    will write as UTF-8) becomes U+FFFD instead of failing the turn."""
    if text.isascii():
        return text
    return LONE_SURROGATE.sub("\ufffd", text)


def _parse_arguments(raw: str) -> Any:
    """The model's arguments as JSON, or the raw text when it is not JSON.

    A model writes what its user asks for, so the text gets the limits a client
    frame gets: nesting too deep or a lone surrogate makes it "not JSON" too.
    """
    if not raw.strip():
        return {}
    try:
        return json_limits.loads(raw)
    except ValueError:
        return raw
