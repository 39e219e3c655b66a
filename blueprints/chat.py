"""The chat WebSocket: ``/api/v1/chat/ws/<session_id>?api_key=KEY``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from quart import Blueprint, websocket

from agent.connection import ChatConnection
from agent.protocol import describe_validation_error
from agent.skills import SessionContext
from blueprints import runtime
from blueprints.auth import authenticate
from blueprints.errors import ApiError, error_response
from blueprints.sessions import LARGEST, SESSION_ID_CHARS, find_session

bp = Blueprint("chat", __name__, url_prefix="/api/v1/chat")


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
    try:
        query = ChatQuery.model_validate(websocket.args.to_dict())
    except ValidationError as exc:
        return error_response("bad_request", describe_validation_error(exc), 400)
    rt = runtime()
    channel = await rt.bus.channel(session.id)
    await websocket.accept()
    connection = ChatConnection(
        rt,
        SessionContext(session_id=session.id, owner_id=key.id),
        channel,
        send=websocket.send,
        receive=websocket.receive,
    )
    closing = await connection.serve(query.last_seq)
    if closing is not None:
        await websocket.close(*closing)
