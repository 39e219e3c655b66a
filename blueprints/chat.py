"""The chat WebSocket: ``/api/v1/chat/ws/<session_id>?api_key=KEY``."""

from __future__ import annotations

import asyncio
from contextlib import suppress

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, websocket

from agent import logs, metrics
from agent.connection import ChatConnection
from agent.limits import RateLimited
from agent.protocol import describe_validation_error
from blueprints import runtime
from blueprints.auth import authenticate, rate_limited_response
from blueprints.errors import ApiError, error_response
from blueprints.sessions import LARGEST, SESSION_ID_CHARS, find_session
from plugins.skills import SessionContext

bp = Blueprint("chat", __name__, url_prefix="/api/v1/chat")

#: How long closing may wait on a client that reads nothing before the handler lets go.
CLOSE_WAIT_S = 2.0


class ChatQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    last_seq: int | None = Field(
        default=None, ge=0, le=LARGEST, description="Replay the stored events after this seq."
    )


@bp.websocket("/ws/<session_id>")
async def chat_ws(session_id: str):
    # Answering before accept() refuses the handshake with this HTTP response.
    try:
        key = await authenticate(websocket.headers, websocket.args)
    except ApiError as exc:
        return error_response(exc.code, exc.message, exc.status)
    session = await find_session(session_id, key.id)
    if session is None:
        return error_response("not_found", f"no session {session_id[:SESSION_ID_CHARS]!r}", 404)
    logs.bind(session_id=session.id, key=key.name)
    try:
        query = ChatQuery.model_validate(websocket.args.to_dict())
    except ValidationError as exc:
        return error_response("bad_request", describe_validation_error(exc), 400)
    rt = runtime()
    try:
        rt.limits.requests.check(key.id)
    except RateLimited as exc:
        return rate_limited_response(exc)
    if not rt.limits.sockets.open(key.id):
        return error_response(
            "too_many_sockets",
            f"this key holds {rt.limits.sockets.limit} open sockets, the most it may "
            "(QUARTET_MAX_SOCKETS_PER_KEY)",
            429,
        )
    try:
        channel = await rt.bus.channel(session.id)
        await websocket.accept()
        connection = ChatConnection(
            rt,
            SessionContext(session_id=session.id, owner_id=key.id),
            channel,
            send=websocket.send,
            receive=websocket.receive,
        )
        with metrics.websocket_open() as counted:
            closing = await connection.serve(query.last_seq)
            if closing is not None:
                counted.code = closing[0]
                # A client too slow to keep up may read nothing more: the close frame is
                # queued behind its backlog, and the kernel drops the TCP connection later.
                with suppress(TimeoutError):
                    await asyncio.wait_for(websocket.close(*closing), CLOSE_WAIT_S)
    finally:
        rt.limits.sockets.close(key.id)
