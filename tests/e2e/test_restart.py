"""State that must survive a server restart: REST skills (re-registered from the DB) and history."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.conftest import WSChatHelper
from tests.e2e.server import QuartetServer


def test_rest_skill_and_history_survive_a_restart(tmp_path: Path) -> None:
    server = QuartetServer(tmp_path, api_key="restart-key").start()
    headers = {"X-API-Key": server.api_key}
    try:
        skill = {"keywords": ["persistent"]}
        assert (
            httpx.put(
                f"{server.base_url}/api/v1/skills/kept", json=skill, headers=headers
            ).status_code
            == 201
        )
        sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()[
            "id"
        ]
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        asyncio.run(helper.connect_and_chat(sid, [{"type": "message", "content": "before"}]))
    finally:
        server.stop()

    server = QuartetServer(tmp_path, api_key="restart-key").start()
    try:
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        frames = asyncio.run(
            helper.connect_and_chat(sid, [{"type": "message", "content": "a persistent skill"}])
        )
        messages = httpx.get(f"{server.base_url}/api/v1/sessions/{sid}/messages", headers=headers)
    finally:
        server.stop()
    assert "kept" in {f.get("skill") for f in frames}
    assert [m["content"] for m in messages.json()["items"]][::2] == ["before", "a persistent skill"]
    # The seq carries on from the stored log after the restart.
    assert frames[0]["last_seq"] > 0 and frames[1]["seq"] == frames[0]["last_seq"] + 1
