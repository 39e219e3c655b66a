"""A real server on PostgreSQL: a turn with a confirmation, then a restart and a resume."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests.e2e.conftest import WSChatHelper, connect, is_type, recv_replay, recv_until, send
from tests.e2e.server import QuartetServer
from tests.services import PostgresServer


async def approve_a_note(helper: WSChatHelper, sid: str) -> list[dict]:
    ws, _ = await connect(helper, sid)
    async with ws:
        await send(ws, {"type": "message", "content": '[[tool:save_note {"text": "pg"}]]'})
        request = (await recv_until(ws, is_type("confirmation_request")))[-1]
        await send(
            ws,
            {"type": "confirmation_reply", "request_id": request["request_id"], "approved": True},
        )
        return await recv_until(ws, is_type("final_answer", "error"))


def test_chat_on_postgres_survives_a_restart(postgres: PostgresServer, tmp_path: Path) -> None:
    env = {"QUARTET_DATABASE_URL": postgres.create_database(f"e2e_{uuid.uuid4().hex[:12]}")}
    server = QuartetServer(tmp_path, api_key="pg-key-0123456789", env=env).start()
    headers = {"X-API-Key": server.api_key}
    try:
        sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()[
            "id"
        ]
        frames = asyncio.run(approve_a_note(WSChatHelper(server.base_ws_url, server.api_key), sid))
    finally:
        server.stop()
    assert frames[-1]["type"] == "final_answer" and "saved" in frames[-1]["content"]

    server = QuartetServer(tmp_path, api_key="pg-key-0123456789", env=env).start()
    try:
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        replayed = asyncio.run(helper.connect_and_chat(sid, [{"type": "ping"}], idle_timeout=0.5))
        resumed = asyncio.run(_resume(helper, sid))
        notes = asyncio.run(
            helper.connect_and_chat(sid, [{"type": "message", "content": "[[tool:list_notes]]"}])
        )
    finally:
        server.stop()
    assert replayed[0]["last_seq"] == frames[-1]["seq"]
    assert resumed[-1] == frames[-1]
    assert '"text": "pg"' in notes[-1]["content"]


async def _resume(helper: WSChatHelper, sid: str) -> list[dict]:
    ws, connected = await connect(helper, sid, last_seq=0)
    async with ws:
        return await recv_replay(ws, connected)
