"""Tools: what a plugin gives the agent loop to call.

A plugin returns :class:`Tool` objects from its ``register_tools`` hook. The
model sees each tool's name, description and the JSON schema of its argument
model; the loop validates the model's arguments against that model, asks the
human first when ``requires_confirmation`` is set, and runs ``run`` with a
timeout.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from plugins.skills import SessionContext

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TOOL_TIMEOUT_S = 30.0
#: The most experts one team has; more named ones are left out.
MAX_TEAM = 8


class ToolError(Exception):
    """Raise from a tool for a failure the model should be told about.

    The message goes back to the model as the tool's result and the turn goes
    on. Any other exception is logged and reported to the model the same way.
    """


@dataclass(frozen=True, slots=True)
class TeamOutcome:
    """How a team convened by :attr:`ToolContext.convene` ended."""

    team_id: str
    synthesis: str
    done: int
    failed: int


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool knows about its turn, and how it reaches the human.

    ``convene(goal, experts)`` runs a team of at most :data:`MAX_TEAM` experts
    for the turn (the ``convene_team`` tool) and raises :class:`ToolError` when
    the team fails; its synthesis becomes the turn's answer. It is ``None``
    inside an expert, since experts do not convene teams.
    """

    session: SessionContext
    turn_id: str
    call_id: str
    ask: Callable[[str], Awaitable[str]]
    convene: Callable[[str, list[str]], Awaitable[TeamOutcome]] | None = None

    async def ask_human(self, question: str) -> str:
        """Ask the human *question* (an ``ask_human`` frame) and wait for the reply.

        :raises ToolError: nobody answered before the timeout.
        """
        return await self.ask(question)


ToolFunction = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call.

    :param name: what the model calls it (letters, digits, ``_`` and ``-``; at most 64).
    :param description: what it does, for the model.
    :param arguments: a pydantic model; its JSON schema is what the model sees
        and the model's arguments are validated against it.
    :param run: ``async def run(args, ctx)`` taking an instance of ``arguments``
        and a :class:`ToolContext`; returns anything JSON-serialisable.
    :param requires_confirmation: ask the human to approve each call first.
    :param confirmation_reason: why it needs approval, shown to the human.
    :param timeout_s: how long ``run`` may take; ``None`` for no limit (a tool
        that waits for the human has the human's timeout instead).
    """

    name: str
    description: str
    arguments: type[BaseModel]
    run: ToolFunction
    requires_confirmation: bool = False
    confirmation_reason: str = ""
    timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")
        if not (isinstance(self.arguments, type) and issubclass(self.arguments, BaseModel)):
            raise ValueError(f"tool {self.name!r}: arguments must be a pydantic model class")
        if not inspect.iscoroutinefunction(self.run):
            raise ValueError(f"tool {self.name!r}: run must be an async function")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"tool {self.name!r}: timeout_s must be positive or None")

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as a model sees it."""
        return self.arguments.model_json_schema()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "requires_confirmation": self.requires_confirmation,
            "confirmation_reason": self.confirmation_reason,
            "timeout_s": self.timeout_s,
        }
