"""Wire protocol v1: a pydantic model for every frame the WebSocket carries.

This module is the one place the protocol is defined. ``docs/protocol.md`` holds a
section generated from it (``python -m agent.protocol --write``) and a test fails
when the two drift apart.

Parsing is sans-I/O: :func:`parse_client_frame` takes the raw frame and returns a
model or raises :class:`ProtocolError`, so every malformed input is tested without
a network.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from agent import json_limits

PROTOCOL_VERSION = 1


class ErrorCode(StrEnum):
    """Codes carried by ``error`` frames (and by REST error bodies)."""

    bad_request = "bad_request"
    unknown_type = "unknown_type"
    too_large = "too_large"
    busy = "busy"
    cancelled = "cancelled"
    no_active_turn = "no_active_turn"
    unknown_request = "unknown_request"
    rate_limited = "rate_limited"
    model_error = "model_error"
    tool_error = "tool_error"
    timeout = "timeout"
    step_limit = "step_limit"
    interrupted = "interrupted"
    unavailable = "unavailable"
    internal = "internal"


class ProtocolError(Exception):
    """A client frame the server cannot act on; becomes one ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def utcnow() -> datetime:
    return datetime.now(UTC)


# ─── server → client ────────────────────────────────────────────────────────


class ServerEvent(BaseModel):
    """The envelope every server frame shares."""

    type: str
    session_id: str = Field(
        default="", description="The chat session this frame belongs to (set by the channel)."
    )
    seq: int = Field(
        default=0,
        description="Per-session, strictly increasing for logged events; "
        "unlogged frames carry the current last seq.",
    )
    ts: datetime = Field(default_factory=utcnow, description="ISO-8601 UTC time.")
    turn_id: str | None = Field(default=None, description="Set on every frame inside a turn.")

    #: Logged events are stored with their seq, replayed on resume and fanned out to
    #: every client of the session. Unlogged ones go to one connection only.
    logged: ClassVar[bool] = True

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


class Connected(ServerEvent):
    """First frame on every accepted connection."""

    type: Literal["connected"] = "connected"
    logged: ClassVar[bool] = False
    protocol: int = Field(default=PROTOCOL_VERSION, description="Protocol version, 1.")
    last_seq: int = Field(description="The session's last logged seq.")
    model: str = Field(description="The model that answers turns.")
    resumed: int = Field(default=0, description="How many stored events follow as a replay.")


class Pong(ServerEvent):
    """Reply to a client ``ping``."""

    type: Literal["pong"] = "pong"
    logged: ClassVar[bool] = False


class SkillMatchEvent(ServerEvent):
    """The router matched a skill; sent before any token of the turn."""

    type: Literal["skill_match"] = "skill_match"
    skill: str = Field(description="Skill name.")
    matched: list[str] = Field(description="The keywords found in the message.")
    score: float = Field(description="Share of the skill's keywords found, 0..1.")
    source: str = Field(description="`rest` or `plugin:<plugin name>`.")


class Thinking(ServerEvent):
    """Model reasoning or progress text."""

    type: Literal["thinking"] = "thinking"
    content: str


class StepError(BaseModel):
    """Why a tool call produced no result; the model is told the same."""

    code: Literal[ErrorCode.tool_error, ErrorCode.timeout]
    message: str


class Step(ServerEvent):
    """The agent loop did something: a tool call or a tool result."""

    type: Literal["step"] = "step"
    kind: Literal["tool_call", "tool_result"]
    tool: str
    call_id: str | None = Field(default=None, description="Pairs a `tool_result` with its call.")
    arguments: Any = Field(
        default=None,
        description="On `tool_call`: the JSON arguments the model passed (raw text if not JSON).",
    )
    result: Any = Field(default=None, description="On a successful `tool_result`.")
    error: StepError | None = Field(
        default=None,
        description="On a failed `tool_result`: `code` (`tool_error`/`timeout`), `message`.",
    )


class Token(ServerEvent):
    """Streamed answer text. Consecutive tokens may arrive merged into one frame."""

    type: Literal["token"] = "token"
    content: str
    expert: str | None = Field(default=None, description="Set when an expert is speaking.")


class FinalAnswer(ServerEvent):
    """The turn finished; `content` is the full answer."""

    type: Literal["final_answer"] = "final_answer"
    content: str
    message_id: int = Field(description="Id of the stored assistant message.")


class ConfirmationRequest(ServerEvent):
    """A tool that needs approval is about to run."""

    type: Literal["confirmation_request"] = "confirmation_request"
    request_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    timeout_s: float


class ConfirmationResult(ServerEvent):
    """A confirmation was answered, timed out or cancelled."""

    type: Literal["confirmation_result"] = "confirmation_result"
    request_id: str
    approved: bool
    by: Literal["user", "timeout", "cancel"]


class AskHuman(ServerEvent):
    """The agent asks the human a question."""

    type: Literal["ask_human"] = "ask_human"
    request_id: str
    question: str
    timeout_s: float


class ExpertInfo(BaseModel):
    name: str
    role: str


class PlanItem(BaseModel):
    id: str
    expert: str
    task: str
    status: Literal["pending", "running", "done", "failed"]


class TeamFormed(ServerEvent):
    """A team of experts is convened."""

    type: Literal["team_formed"] = "team_formed"
    team_id: str
    goal: str
    experts: list[ExpertInfo]


class PlanUpdate(ServerEvent):
    """The team's plan is made or changes."""

    type: Literal["plan_update"] = "plan_update"
    team_id: str
    plan: list[PlanItem]


class ExpertStep(ServerEvent):
    """An expert's intermediate output."""

    type: Literal["expert_step"] = "expert_step"
    team_id: str
    expert: str
    content: str


class ExpertResult(ServerEvent):
    """An expert finished its task."""

    type: Literal["expert_result"] = "expert_result"
    team_id: str
    expert: str
    content: str


class TeamSynthesis(ServerEvent):
    """The experts' results merged into one answer."""

    type: Literal["team_synthesis"] = "team_synthesis"
    team_id: str
    content: str


class TeamDissolved(ServerEvent):
    """The team is closed."""

    type: Literal["team_dissolved"] = "team_dissolved"
    team_id: str
    reason: Literal["done", "cancelled", "failed"]


class Error(ServerEvent):
    """Anything that went wrong. Replies to one client's bad frame are unlogged."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retryable: bool = False
    retry_after: float | None = Field(
        default=None, description="With `rate_limited`: seconds until the key may send again."
    )


SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    Connected,
    Pong,
    SkillMatchEvent,
    Thinking,
    Step,
    Token,
    FinalAnswer,
    ConfirmationRequest,
    ConfirmationResult,
    AskHuman,
    TeamFormed,
    PlanUpdate,
    ExpertStep,
    ExpertResult,
    TeamSynthesis,
    TeamDissolved,
    Error,
)
SERVER_EVENT_TYPES: frozenset[str] = frozenset(
    cls.model_fields["type"].default for cls in SERVER_EVENTS
)
# Derived from the tuple so that a new event is declared in one place only.
AnyServerEvent = Annotated[Union[SERVER_EVENTS], Field(discriminator="type")]  # noqa: UP007
server_event_adapter: TypeAdapter[ServerEvent] = TypeAdapter(AnyServerEvent)


# ─── client → server ────────────────────────────────────────────────────────


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


class ClientFrame(BaseModel):
    # Unknown extra fields are ignored so that clients can be newer than the server.
    model_config = ConfigDict(extra="ignore")
    type: str


class Ping(ClientFrame):
    """Liveness check; answered with `pong`."""

    type: Literal["ping"]


class UserMessage(ClientFrame):
    """Starts a turn. While one runs the reply is `error` `busy`."""

    type: Literal["message"]
    content: str = Field(description="The user's text, 1..max_message_chars characters.")
    mode: Literal["team"] | None = Field(default=None, description='`"team"` convenes experts.')

    content_not_blank = field_validator("content")(_not_blank)


class Cancel(ClientFrame):
    """Cancels the running turn (`error` `cancelled`), else `error` `no_active_turn`."""

    type: Literal["cancel"]


class ConfirmationReply(ClientFrame):
    """Answers a `confirmation_request`."""

    type: Literal["confirmation_reply"]
    request_id: str = Field(min_length=1)
    # Strict: "no" or 0 must not count as a denial the client did not mean.
    approved: StrictBool = Field(description="`true` or `false`; nothing else.")
    reason: str | None = None


class HumanReply(ClientFrame):
    """Answers an `ask_human`; `reply` is accepted as an alias of the type."""

    type: Literal["human_reply", "reply"]
    request_id: str = Field(min_length=1)
    content: str = Field(description="The human's answer, 1..max_message_chars characters.")

    content_not_blank = field_validator("content")(_not_blank)


CLIENT_FRAMES: tuple[type[ClientFrame], ...] = (
    Ping,
    UserMessage,
    Cancel,
    ConfirmationReply,
    HumanReply,
)
AnyClientFrame = Annotated[Union[CLIENT_FRAMES], Field(discriminator="type")]  # noqa: UP007
_client_frame_adapter: TypeAdapter[ClientFrame] = TypeAdapter(AnyClientFrame)
CLIENT_FRAME_TYPES: frozenset[str] = frozenset(
    t for cls in CLIENT_FRAMES for t in cls.model_fields["type"].annotation.__args__
)


def parse_client_frame(raw: str | bytes | None, *, max_chars: int, max_bytes: int) -> ClientFrame:
    """Turn one received WebSocket frame into a client frame model.

    Parsing takes time linear in the frame's length: nesting and the number of
    values are bounded (:mod:`agent.json_limits`) before ``json.loads`` runs.

    :param raw: the frame as received: ``bytes`` for a binary frame, and
        ``None`` for an empty binary one (Quart hands that over as ``None``).
    :param max_chars: the longest ``content`` accepted.
    :param max_bytes: frames longer than this are refused without parsing.
    :raises ProtocolError: with the code a client should see.
    """
    if raw is None or isinstance(raw, bytes):
        raise ProtocolError(
            ErrorCode.bad_request, "binary frames are not supported; send JSON text frames"
        )
    if len(raw) > max_bytes:
        raise ProtocolError(
            ErrorCode.too_large, f"frame of {len(raw)} bytes exceeds the limit of {max_bytes}"
        )
    try:
        data = json_limits.loads(raw)
    except json_limits.JSONLimitError as exc:
        raise ProtocolError(ErrorCode.bad_request, f"frame refused: {exc}") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.bad_request, f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.bad_request, "frame must be a JSON object")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise ProtocolError(ErrorCode.bad_request, "field 'type' is required and must be a string")
    if frame_type not in CLIENT_FRAME_TYPES:
        raise ProtocolError(
            ErrorCode.unknown_type,
            f"unknown frame type {frame_type!r}; expected one of {sorted(CLIENT_FRAME_TYPES)}",
        )
    content = data.get("content")
    if isinstance(content, str) and len(content) > max_chars:
        raise ProtocolError(
            ErrorCode.too_large,
            f"content of {len(content)} characters exceeds the limit of {max_chars}",
        )
    try:
        return _client_frame_adapter.validate_python(data)
    except ValidationError as exc:
        # pydantic puts the discriminator tag first in each error's location.
        raise ProtocolError(ErrorCode.bad_request, describe_validation_error(exc, skip=1)) from None


def describe_validation_error(exc: ValidationError, *, skip: int = 0) -> str:
    """One line naming each bad field, for error frames and REST error bodies.

    :param skip: leading location parts to leave out of field names.
    """
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"][skip:]) or "body"
        parts.append(f"field '{field}': {err['msg']}")
    return "; ".join(parts)


# ─── docs ───────────────────────────────────────────────────────────────────

DOCS_BEGIN = "<!-- generated by `python -m agent.protocol --write`: begin -->"
DOCS_END = "<!-- generated: end -->"
_ENVELOPE = set(ServerEvent.model_fields)


def _describe_fields(cls: type[BaseModel], skip: set[str]) -> str:
    fields = []
    for name, info in cls.model_fields.items():
        if name in skip:
            continue
        optional = "" if info.is_required() else "?"
        fields.append(f"`{name}{optional}`")
    return ", ".join(fields) or "—"


def render_markdown() -> str:
    """The generated part of docs/protocol.md: one table row per frame type."""
    lines = [
        DOCS_BEGIN,
        "",
        "### Server frames",
        "",
        "Every server frame also carries the envelope: "
        + ", ".join(f"`{n}`" for n in ServerEvent.model_fields)
        + ".",
        "",
        "| type | logged | when | payload fields |",
        "|---|---|---|---|",
    ]
    for cls in SERVER_EVENTS:
        type_name = cls.model_fields["type"].default
        logged = "yes" if cls.logged else "no"
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines.append(f"| `{type_name}` | {logged} | {doc} | {_describe_fields(cls, _ENVELOPE)} |")
    lines += [
        "",
        "### Client frames",
        "",
        "| type | effect | fields |",
        "|---|---|---|",
    ]
    for cls in CLIENT_FRAMES:
        types = " / ".join(f"`{t}`" for t in cls.model_fields["type"].annotation.__args__)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines.append(f"| {types} | {doc} | {_describe_fields(cls, {'type'})} |")
    lines += [
        "",
        "### Limits on every client frame",
        "",
        f"- JSON nested at most {json_limits.MAX_DEPTH} arrays and objects deep;",
        f"- at most {json_limits.MAX_VALUES:,} values (array items, object members, arrays,"
        " objects);",
        "- every string, keys included, valid Unicode: an escaped lone surrogate such as"
        " `\\ud800` is refused.",
        "",
        "A frame past any of these gets `error` `bad_request`, parsed in time linear in its"
        " length.",
        "",
        "### Error codes",
        "",
        ", ".join(f"`{code.value}`" for code in ErrorCode),
        "",
        DOCS_END,
    ]
    return "\n".join(lines)


def splice_docs(text: str) -> str:
    """Return *text* with its generated section replaced by :func:`render_markdown`."""
    head, _, rest = text.partition(DOCS_BEGIN)
    _, _, tail = rest.partition(DOCS_END)
    return head + render_markdown() + tail


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        path = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
        path.write_text(splice_docs(path.read_text()))
    else:
        print(render_markdown())
