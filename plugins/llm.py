"""The interface between the agent loop and a language model.

A model plugin registers an object with a ``name`` and an async ``stream``
method (see :class:`ChatModel`); the loop feeds it a :class:`ModelRequest`
and relays what it yields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from plugins.skills import SkillMatch
from plugins.tools import Tool


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks the loop to run a tool.

    ``arguments`` is the JSON text the model wrote; the loop parses and
    validates it, and tells the model when it is wrong.
    """

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation the model sees.

    An assistant message that called tools carries them in ``tool_calls``; each
    result comes back as a ``tool`` message with the call's ``tool_call_id``.
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


#: Which part of a turn a model call is for; see :class:`ModelRequest`.
Purpose = Literal["answer", "plan", "expert", "synthesis"]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a model needs for one round of a turn.

    ``messages`` is the history, the user's new message, and then the tool
    calls and results of this turn so far. ``skills`` are the skills the
    router matched, best first; ``tools`` are the tools the model may call.

    ``purpose`` says which part of a turn the request is for: ``answer`` (the
    reply to the user), or in a team ``plan`` (write each expert's task),
    ``expert`` (one expert's work; ``expert`` names it) and ``synthesis``
    (merge the results). The messages already say the same in words, so a
    real model may ignore it; the offline ``demo`` model relies on it.
    """

    messages: list[ChatMessage]
    skills: list[SkillMatch] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    purpose: Purpose = "answer"
    expert: str | None = None

    @property
    def user_message(self) -> str:
        """The text of the last user message."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def tool_results(self) -> list[ChatMessage]:
        """The ``tool`` messages that follow the last user message, in order."""
        results: list[ChatMessage] = []
        for message in reversed(self.messages):
            if message.role == "user":
                break
            if message.role == "tool":
                results.append(message)
        return results[::-1]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer; the loop streams it as a ``token`` frame."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning or progress text; the loop streams it as a ``thinking`` frame."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a model round consumed; the loop adds them up and stores them."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


ModelOutput = TextDelta | ReasoningDelta | ToolCall | Usage


class ModelError(Exception):
    """The model failed; the turn ends with an ``error`` frame.

    :param retryable: whether sending the message again may work.
    :param code: the frame's code: ``model_error``, or ``timeout`` for a stalled stream.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        code: Literal["model_error", "timeout"] = "model_error",
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class ChatModel(Protocol):
    """What a model plugin registers."""

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelOutput]:
        """Yield the answer as it is produced. Raise :class:`ModelError` on failure.

        It may return any async iterator; an ``async def`` generator is the
        simplest, and one with ``aclose`` is closed as soon as the round ends
        (when a turn is cancelled, for instance).

        Yielding :class:`ToolCall` items asks for tools: when the stream ends,
        the loop runs them and calls ``stream`` again with their results. A
        :class:`Usage` item reports the tokens the round consumed.
        """
        ...
