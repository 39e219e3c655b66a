"""Chat sessions and what they hold: messages and the event log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from quart import Blueprint
from quart_schema import validate_querystring, validate_request, validate_response

from blueprints import runtime
from blueprints.auth import check_session_quota, current_key, load_key
from blueprints.errors import KEYED, NotFound, document_errors
from models import Message, Session

bp = Blueprint("sessions", __name__, url_prefix="/api/v1/sessions")
bp.before_request(load_key)

MAX_METADATA_BYTES = 16 * 1024
#: Seqs and row counts are 32-bit INTEGER columns; a larger number cannot be compared
#: with them (PostgreSQL refuses it, SQLite overflows), so queries stop here.
LARGEST = 2**31 - 1
#: Session ids are at most this long; a longer one cannot exist.
SESSION_ID_CHARS = Session._meta.fields_map["id"].max_length


class SessionCreate(BaseModel):
    title: str = Field(default="", max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"must encode to at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class SessionOut(BaseModel):
    id: str
    title: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Session) -> SessionOut:
        return cls(
            id=s.id,
            title=s.title,
            metadata=s.metadata,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class PageQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=LARGEST)


class SessionPage(BaseModel):
    items: list[SessionOut]
    total: int
    limit: int
    offset: int


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class MessageOut(BaseModel):
    id: int
    turn_id: str | None
    role: str
    content: str
    status: str
    usage: Usage | None = None
    created_at: datetime


class MessagePage(BaseModel):
    items: list[MessageOut]
    total: int
    limit: int
    offset: int


class EventQuery(BaseModel):
    after: int = Field(default=0, ge=0, le=LARGEST)
    limit: int = Field(default=1000, ge=1, le=10000)


class EventPage(BaseModel):
    items: list[dict[str, Any]] = Field(description="Stored frames, exactly as sent, by seq.")
    last_seq: int


async def find_session(session_id: str, owner_id: int) -> Session | None:
    """The session *owner_id* owns with this id, if there is one."""
    if len(session_id) > SESSION_ID_CHARS:  # the database would refuse to look
        return None
    return await Session.get_or_none(id=session_id, owner_id=owner_id)


async def owned_session(session_id: str) -> Session:
    """The caller's session; someone else's is reported missing, not forbidden."""
    session = await find_session(session_id, current_key().id)
    if session is None:
        raise NotFound(f"no session {session_id[:SESSION_ID_CHARS]!r}")
    return session


@bp.post("")
@validate_request(SessionCreate)
@validate_response(SessionOut, 201)
@document_errors(400, 409, 413, *KEYED)
async def create_session(data: SessionCreate) -> tuple[SessionOut, int]:
    """Create a chat session owned by the calling key."""
    await check_session_quota(current_key())
    session = await Session.create(
        owner_id=current_key().id, title=data.title, metadata=data.metadata
    )
    return SessionOut.of(session), 201


@bp.get("")
@validate_querystring(PageQuery)
@validate_response(SessionPage)
@document_errors(400, *KEYED)
async def list_sessions(query_args: PageQuery) -> SessionPage:
    """List the calling key's sessions, newest first, a page at a time."""
    mine = Session.filter(owner_id=current_key().id)
    rows = await mine.order_by("-created_at").offset(query_args.offset).limit(query_args.limit)
    return SessionPage(
        items=[SessionOut.of(s) for s in rows],
        total=await mine.count(),
        limit=query_args.limit,
        offset=query_args.offset,
    )


@bp.get("/<session_id>")
@validate_response(SessionOut)
@document_errors(404, *KEYED)
async def get_session(session_id: str) -> SessionOut:
    """Read one session."""
    return SessionOut.of(await owned_session(session_id))


@bp.delete("/<session_id>")
@document_errors(404, *KEYED)
async def delete_session(session_id: str) -> tuple[str, int]:
    """Delete a session with its messages and events."""
    session = await owned_session(session_id)
    rt = runtime()
    await rt.turns.cancel_and_wait(session.id)
    rt.eventlog.discard(session.id)
    rt.bus.drop(session.id)
    await session.delete()
    return "", 204


@bp.get("/<session_id>/messages")
@validate_querystring(PageQuery)
@validate_response(MessagePage)
@document_errors(400, 404, *KEYED)
async def list_messages(session_id: str, query_args: PageQuery) -> MessagePage:
    """List a session's stored messages, oldest first."""
    session = await owned_session(session_id)
    msgs = Message.filter(session_id=session.id)
    rows = await msgs.order_by("id").offset(query_args.offset).limit(query_args.limit)
    return MessagePage(
        items=[
            MessageOut(
                id=m.id,
                turn_id=m.turn_id,
                role=m.role,
                content=m.content,
                status=m.status.value,
                usage=m.usage,
                created_at=m.created_at,
            )
            for m in rows
        ],
        total=await msgs.count(),
        limit=query_args.limit,
        offset=query_args.offset,
    )


@bp.get("/<session_id>/events")
@validate_querystring(EventQuery)
@validate_response(EventPage)
@document_errors(400, 404, *KEYED)
async def list_events(session_id: str, query_args: EventQuery) -> EventPage:
    """List a session's logged frames after a seq, as clients received them."""
    session = await owned_session(session_id)
    log = runtime().eventlog
    frames = await log.read(session.id, after=query_args.after, limit=query_args.limit)
    return EventPage(items=[json.loads(f) for f in frames], last_seq=await log.last_seq(session.id))
