"""The chat WebSocket: ``/api/v1/chat/ws/<session_id>?api_key=KEY``."""

from __future__ import annotations

from quart import Blueprint, websocket

from agent.connection import ChatConnection
from agent.skills import SessionContext
from blueprints import runtime
from blueprints.auth import authenticate
from blueprints.errors import ApiError, error_response
from models import Session

bp = Blueprint("chat", __name__, url_prefix="/api/v1/chat")


@bp.websocket("/ws/<session_id>")
async def chat_ws(session_id: str):
    # Answering before accept() refuses the handshake with this HTTP response.
    try:
        key = await authenticate(websocket.headers, websocket.args)
    except ApiError as exc:
        return error_response(exc.code, exc.message, exc.status)
    session = await Session.get_or_none(id=session_id, owner_id=key.id)
    if session is None:
        return error_response("not_found", f"no session {session_id!r}", 404)
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
    closing = await connection.serve()
    if closing is not None:
        await websocket.close(*closing)
