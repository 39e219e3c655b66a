"""The interface between the agent loop and a language model.

A model plugin registers an object with a ``name`` and an async ``stream``
method (see :class:`ChatModel`); the loop feeds it a :class:`ModelRequest`
and relays what it yields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.skills import SkillMatch


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a model needs for one turn.

    ``messages`` ends with the user's new message; ``skills`` are the skills the
    router matched for it, best first.
    """

    messages: list[ChatMessage]
    skills: list[SkillMatch] = field(default_factory=list)

    @property
    def user_message(self) -> str:
        return self.messages[-1].content


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer; the loop streams it as a ``token`` frame."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning or progress text; the loop streams it as a ``thinking`` frame."""

    text: str


ModelOutput = TextDelta | ReasoningDelta


class ModelError(Exception):
    """The model failed; ``retryable`` says whether sending again may work."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChatModel(Protocol):
    """What a model plugin registers."""

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        """Yield the answer as it is produced. Raise :class:`ModelError` on failure."""
        ...
