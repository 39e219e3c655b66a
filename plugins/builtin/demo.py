"""The ``demo`` model: offline and deterministic, so every flow runs without a key.

It answers ``You said: <message>`` word by word. Directives in the message,
removed from the echo:

- ``[[slow:MS]]``: wait MS milliseconds before each token (for cancel tests).
- ``[[lorem:N]]``: append N filler words (for long streams and benchmarks).
- ``[[tool:NAME {json-args}]]``: call tool NAME with those arguments, then
  answer with a sentence that includes the tool's result.
- ``[[ask:QUESTION]]``: ask the human (the ``ask_human`` tool), then answer
  with a sentence that includes the reply.

Tool and ask directives run in the order they appear, one per model round.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from agent.llm import ModelOutput, ModelRequest, ReasoningDelta, TextDelta, ToolCall
from plugins.hookspecs import hookimpl

DIRECTIVE = re.compile(r"\[\[(\w+):(.*?)\]\]", re.DOTALL)
TOOL_DIRECTIVE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*(.*)", re.DOTALL)
TOKEN = re.compile(r"\s*\S+")
MAX_SLOW_MS = 10_000
MAX_LOREM = 100_000
LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


@dataclass(frozen=True, slots=True)
class Action:
    """A tool call the demo model makes for a directive."""

    tool: str
    arguments: str

    def sentence(self, result: str) -> str:
        if self.tool == "ask_human":
            return f"You answered: {result}"
        return f"The {self.tool} tool said: {result}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the demo model does with one user message."""

    echo: str
    delay_s: float = 0.0
    lorem: int = 0
    actions: tuple[Action, ...] = ()

    def answer_tokens(self, results: list[str]) -> list[str]:
        text = f"You said: {self.echo}" if self.echo else "You said nothing."
        for action, result in zip(self.actions, results, strict=False):
            text += " " + action.sentence(result)
        tokens = TOKEN.findall(text)
        tokens += [" " + LOREM[i % len(LOREM)] for i in range(self.lorem)]
        return tokens


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
    for name, arg in DIRECTIVE.findall(message):
        if name == "slow":
            delay_s = _int_arg(arg, MAX_SLOW_MS) / 1000
        elif name == "lorem":
            lorem = _int_arg(arg, MAX_LOREM)
        elif name == "tool" and (found := TOOL_DIRECTIVE.fullmatch(arg)):
            actions.append(Action(found[1], found[2].strip() or "{}"))
        elif name == "ask":
            actions.append(Action("ask_human", json.dumps({"question": arg.strip()})))
    echo = " ".join(DIRECTIVE.sub(" ", message).split())
    return Plan(echo=echo, delay_s=delay_s, lorem=lorem, actions=tuple(actions))


class DemoModel:
    name = "demo"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        todo = plan(request.user_message)
        results = [message.content for message in request.tool_results]
        if len(results) < len(todo.actions):
            action = todo.actions[len(results)]
            yield ReasoningDelta(f"Calling the {action.tool} tool.")
            yield ToolCall(id=f"demo-{len(results)}", name=action.tool, arguments=action.arguments)
            return
        for token in todo.answer_tokens(results):
            # Always give the event loop a turn, so senders keep up with a long stream.
            await asyncio.sleep(todo.delay_s)
            yield TextDelta(token)


@hookimpl
def register_models(register) -> None:
    register(DemoModel())
