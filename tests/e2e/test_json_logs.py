"""``QUARTET_LOG_FORMAT=json`` on a real server: one JSON object a line, with the turn's ids."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import WSChatHelper, create_session_via_api
from tests.e2e.server import QuartetServer


def session_of(server: QuartetServer) -> str:
    with httpx.Client(base_url=server.base_url, headers={"X-API-Key": server.api_key}) as api:
        return create_session_via_api(api, "json logs")


def wait_for_output(server: QuartetServer, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)


async def test_a_failing_tool_is_logged_as_json_with_session_turn_and_key(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins.toml"
    plugins.write_text('[plugins]\nenabled = ["tests.e2e.sample_plugins"]\n')
    env = {"QUARTET_LOG_FORMAT": "json", "QUARTET_PLUGINS_FILE": str(plugins)}
    server = QuartetServer(tmp_path / "data", env=env).start()
    try:
        session_id = session_of(server)
        helper = WSChatHelper(server.base_ws_url, server.api_key)
        frames = await helper.connect_and_chat(
            session_id, [{"type": "message", "content": "[[tool:explode {}]]"}]
        )
        turn_id = frames[-1]["turn_id"]
        wait_for_output(server, "broken on purpose")
    finally:
        server.stop()
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    failed = [r for r in records if "explode" in r["message"]]
    assert failed, server.output()
    record = failed[0]
    assert record["level"] == "ERROR"
    assert record["session_id"] == session_id
    assert record["turn_id"] == turn_id
    assert record["key"] == "admin"
    assert server.api_key not in json.dumps(record)
    assert "broken on purpose" in record["exc"]
