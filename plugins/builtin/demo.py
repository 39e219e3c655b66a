"""The ``demo`` model: offline and deterministic, so every flow runs without a key.

It answers ``You said: <message>`` word by word. Directives in the message,
removed from the echo:

- ``[[slow:MS]]``: wait MS milliseconds before each token (for cancel tests).
- ``[[lorem:N]]``: append N filler words (for long streams and benchmarks).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from agent.llm import ModelOutput, ModelRequest, TextDelta
from plugins.hookspecs import hookimpl

DIRECTIVE = re.compile(r"\[\[(\w+):([^\]]*)\]\]")
TOKEN = re.compile(r"\s*\S+")
MAX_SLOW_MS = 10_000
MAX_LOREM = 100_000
LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


def _int_arg(value: str, upper: int) -> int:
    try:
        return max(0, min(int(value.strip()), upper))
    except ValueError:
        return 0


def plan_answer(message: str) -> tuple[list[str], float]:
    """The tokens the demo model will stream for *message*, and the delay between them."""
    delay_s = 0.0
    lorem = 0
    for name, arg in DIRECTIVE.findall(message):
        if name == "slow":
            delay_s = _int_arg(arg, MAX_SLOW_MS) / 1000
        elif name == "lorem":
            lorem = _int_arg(arg, MAX_LOREM)
    echo = " ".join(DIRECTIVE.sub(" ", message).split())
    text = f"You said: {echo}" if echo else "You said nothing."
    tokens = TOKEN.findall(text)
    tokens += [" " + LOREM[i % len(LOREM)] for i in range(lorem)]
    return tokens, delay_s


class DemoModel:
    name = "demo"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        tokens, delay_s = plan_answer(request.user_message)
        for token in tokens:
            # Always give the event loop a turn, so senders keep up with a long stream.
            await asyncio.sleep(delay_s)
            yield TextDelta(token)


@hookimpl
def register_models(register) -> None:
    register(DemoModel())
