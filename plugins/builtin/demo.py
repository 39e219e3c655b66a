"""The ``demo`` model: offline and deterministic, so every flow runs without a key.

It answers ``You said: <message>`` word by word. Directives in the message,
removed from the echo:

- ``[[slow:MS]]``: wait MS milliseconds before each token (for cancel tests).
- ``[[lorem:N]]``: append N filler words (for long streams and benchmarks).
- ``[[tool:NAME {json-args}]]``: call tool NAME with those arguments, then
  answer with a sentence that includes the tool's result.
- ``[[ask:QUESTION]]``: ask the human (the ``ask_human`` tool), then answer
  with a sentence that includes the reply.
- ``[[team:NAME1,NAME2]]``: convene a team of those experts (the
  ``convene_team`` tool), with the rest of the message as its goal.
- ``[[fail:NAME]]``: in a team, the expert NAME fails (for failure tests).

Tool, ask and team directives run in the order they appear, one per model
round. In a team the demo model also plans (each expert gets the goal, seen
from its role), speaks for each expert (one short sentence), and merges the
results; experts and the synthesis honour ``[[slow:MS]]``.

Directives are found, and answers cut into tokens, in time linear in the
message: the demo model is the default, so nothing a user types may stall the
server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from plugins.hookspecs import hookimpl
from plugins.llm import ModelError, ModelOutput, ModelRequest, ReasoningDelta, TextDelta, ToolCall

# What follows "[[" in a directive. The rest, up to "]]", is found with str.find:
# the regex r"\[\[(\w+):(.*?)\]\]" retried its lazy .*? from every "[[" and took
# seconds on "[[a:" * 8192.
DIRECTIVE_NAME = re.compile(r"(\w+):")
# Linear: the name and the spaces around it cannot overlap, and (.*) ends the match.
TOOL_DIRECTIVE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*(.*)", re.DOTALL)
WORD = re.compile(r"\S+")
MAX_SLOW_MS = 10_000
MAX_LOREM = 100_000
LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


@dataclass(frozen=True, slots=True)
class Directive:
    """One ``[[NAME:ARG]]`` in a message, and where it is."""

    name: str
    arg: str
    start: int
    end: int


def find_directives(message: str) -> list[Directive]:
    """Every directive in *message*, left to right, in one pass."""
    found = []
    pos = 0
    while (start := message.find("[[", pos)) != -1:
        head = DIRECTIVE_NAME.match(message, start + 2)
        if head is None:
            pos = start + 1
            continue
        close = message.find("]]", head.end())
        if close == -1:
            break  # nothing after here is closed, so no later "[[" can be either
        found.append(Directive(head[1], message[head.end() : close], start, close + 2))
        pos = close + 2
    return found


def strip_directives(message: str, directives: list[Directive]) -> str:
    """*message* without *directives*, its whitespace collapsed to single spaces."""
    parts = []
    pos = 0
    for directive in directives:
        parts.append(message[pos : directive.start])
        pos = directive.end
    parts.append(message[pos:])
    return " ".join(" ".join(parts).split())


def tokens(text: str) -> list[str]:
    r"""*text* as words, each with the whitespace before it; trailing whitespace is dropped.

    The same as ``re.findall(r"\s*\S+", text)``, which backtracks over a long run of
    trailing whitespace once per character of it.
    """
    cut = []
    pos = 0
    for word in WORD.finditer(text):
        cut.append(text[pos : word.end()])
        pos = word.end()
    return cut


@dataclass(frozen=True, slots=True)
class Action:
    """A tool call the demo model makes for a directive."""

    tool: str
    arguments: str

    def sentence(self, result: str) -> str:
        if self.tool == "ask_human":
            return f"You answered: {result}"
        if self.tool == "convene_team":
            return f"The team reported: {result}"
        return f"The {self.tool} tool said: {result}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the demo model does with one user message."""

    echo: str
    delay_s: float = 0.0
    lorem: int = 0
    actions: tuple[Action, ...] = ()
    failing: frozenset[str] = frozenset()

    def answer_tokens(self, results: list[str]) -> list[str]:
        text = f"You said: {self.echo}" if self.echo else "You said nothing."
        for action, result in zip(self.actions, results, strict=False):
            text += " " + action.sentence(result)
        return tokens(text) + [" " + LOREM[i % len(LOREM)] for i in range(self.lorem)]


def _int_arg(value: str, upper: int) -> int:
    try:
        return max(0, min(int(value.strip()), upper))
    except ValueError:
        return 0


def plan(message: str) -> Plan:
    """Read the directives in *message*."""
    delay_s = 0.0
    lorem = 0
    actions: list[Action] = []
    failing: set[str] = set()
    directives = find_directives(message)
    for directive in directives:
        name, arg = directive.name, directive.arg
        if name == "slow":
            delay_s = _int_arg(arg, MAX_SLOW_MS) / 1000
        elif name == "lorem":
            lorem = _int_arg(arg, MAX_LOREM)
        elif name == "tool" and (found := TOOL_DIRECTIVE.fullmatch(arg)):
            actions.append(Action(found[1], found[2].strip() or "{}"))
        elif name == "ask":
            actions.append(Action("ask_human", json.dumps({"question": arg.strip()})))
        elif name == "team":
            teams = [d for d in directives if d.name == "team"]
            goal = strip_directives(message, teams) or "(no goal given)"
            experts = [expert.strip() for expert in arg.split(",") if expert.strip()]
            actions.append(Action("convene_team", json.dumps({"goal": goal, "experts": experts})))
        elif name == "fail":
            failing.add(arg.strip())
    echo = strip_directives(message, directives)
    return Plan(
        echo=echo,
        delay_s=delay_s,
        lorem=lorem,
        actions=tuple(actions),
        failing=frozenset(failing),
    )


class DemoModel:
    name = "demo"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        if request.purpose == "plan":
            yield TextDelta(team_plan(json.loads(request.user_message)))
            return
        if request.purpose == "expert":
            outputs = expert_work(request)
        elif request.purpose == "synthesis":
            outputs = synthesis(json.loads(request.user_message))
        else:
            outputs = self.answer(request)
        async for output in outputs:
            yield output

    async def answer(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        todo = plan(request.user_message)
        results = [message.content for message in request.tool_results]
        if len(results) < len(todo.actions):
            action = todo.actions[len(results)]
            yield ReasoningDelta(f"Calling the {action.tool} tool.")
            yield ToolCall(id=f"demo-{len(results)}", name=action.tool, arguments=action.arguments)
            return
        async for output in _speak(todo.answer_tokens(results), todo.delay_s):
            yield output


async def _speak(tokens: list[str], delay_s: float) -> AsyncIterator[ModelOutput]:
    for token in tokens:
        # Always give the event loop a turn, so senders keep up with a long stream.
        await asyncio.sleep(delay_s)
        yield TextDelta(token)


def team_plan(brief: dict) -> str:
    """The planner's answer: every expert gets the goal, seen from its role."""
    goal = plan(brief["goal"]).echo
    tasks = []
    for expert in brief["experts"]:
        role = expert["role"] or f"the {expert['name']} view"
        tasks.append({"expert": expert["name"], "task": f"{role[:1].upper()}{role[1:]}: {goal}"})
    return json.dumps({"tasks": tasks})


async def expert_work(request: ModelRequest) -> AsyncIterator[ModelOutput]:
    """One expert's sentence; the directives are in the goal, in the system message."""
    directives = plan(request.messages[0].content)
    task = plan(request.user_message).echo
    yield ReasoningDelta(f"Working on: {task}")
    if request.expert in directives.failing:
        raise ModelError(f"the {request.expert} expert was told to fail")
    sentence = f"The {request.expert} covered: {task}"
    async for output in _speak(tokens(sentence), directives.delay_s):
        yield output


async def synthesis(brief: dict) -> AsyncIterator[ModelOutput]:
    """Every result in one answer, and what is missing."""
    directives = plan(brief["goal"])
    text = f"The team's answer on: {directives.echo}"
    for report in brief["results"]:
        if report["status"] == "done":
            text += f" [{report['expert']}] {report['result']}"
        else:
            text += f" [{report['expert']}] Missing, that part failed: {report['error']}"
    async for output in _speak(tokens(text), directives.delay_s):
        yield output


@hookimpl
def register_models(register) -> None:
    register(DemoModel())
