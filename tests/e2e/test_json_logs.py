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


def test_client_mistakes_log_no_traceback(tmp_path: Path) -> None:
    server = QuartetServer(tmp_path / "data", env={"QUARTET_LOG_FORMAT": "json"}).start()
    try:
        with httpx.Client(base_url=server.base_url, headers={"X-API-Key": server.api_key}) as api:
            bad = [
                api.post("/api/v1/sessions", content=b"{not json"),
                api.post(
                    "/api/v1/sessions",
                    content=b"\xff\xfe",
                    headers={"Content-Type": "application/json"},
                ),
                api.post("/api/v1/sessions", json={"title": 5}),
                api.post("/api/v1/skills", json={"name": "", "keywords": []}),
                api.get("/api/v1/sessions/" + "x" * 500),
                api.get("/api/v1/sessions", params={"limit": "many"}),
                api.get("/api/v1/sessions", headers={"X-API-Key": "qk_wrong"}),
                api.delete("/api/v1/skills/nope"),
            ]
        assert all(400 <= response.status_code < 500 for response in bad), [
            response.status_code for response in bad
        ]
    finally:
        server.stop()
    output = server.output()
    assert "Traceback" not in output
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    assert not [record for record in records if "exc" in record]
