"""An outside plugin package, installed beside Quartet, over a real server.

examples/quartet-weather imports only ``quartet``; ``make test`` installs it.
Loaded through its entry point (and nothing from plugins.toml), it shows in
``GET /api/v1/plugins`` and works over the WebSocket: skill_match, then a
confirmation, then its tool's result.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import WSChatHelper, connect, is_type, recv_until, send
from tests.e2e.server import QuartetServer

if not any(ep.name == "weather" for ep in importlib.metadata.entry_points(group="quartet.plugins")):
    pytest.skip(
        "NOT INSTALLED: examples/quartet-weather (make install-test installs it)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def weather_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    data_dir = tmp_path_factory.mktemp("weather")
    env = {"QUARTET_LOAD_PLUGINS": "weather", "QUARTET_PLUGINS_FILE": str(Path(data_dir, "none"))}
    server = QuartetServer(data_dir, env=env).start()
    yield server
    server.stop()


def test_the_installed_package_is_listed(weather_server: QuartetServer) -> None:
    headers = {"X-API-Key": weather_server.api_key}
    body = httpx.get(f"{weather_server.base_url}/api/v1/plugins", headers=headers).json()
    weather = {p["name"]: p for p in body["plugins"]}["weather"]
    assert weather["package"] == "quartet-weather 0.1.0"
    assert weather["skills"][0]["keywords"] == ["weather alert", "storm warning", "frost warning"]
    assert weather["tools"][0]["confirmation_reason"].startswith("An alert sends you messages")
    assert [e["name"] for e in weather["experts"]] == ["meteorologist"]


async def test_skill_match_then_confirmation_then_the_tools_result(
    weather_server: QuartetServer,
) -> None:
    headers = {"X-API-Key": weather_server.api_key}
    created = httpx.post(f"{weather_server.base_url}/api/v1/sessions", json={}, headers=headers)
    helper = WSChatHelper(weather_server.base_ws_url, weather_server.api_key)
    ws, _ = await connect(helper, created.json()["id"])
    try:
        content = 'Storm warning please [[tool:set_weather_alert {"city": "Oslo"}]]'
        await send(ws, {"type": "message", "content": content})
        asked = await recv_until(ws, is_type("confirmation_request"))
        await send(
            ws,
            {"type": "confirmation_reply", "request_id": asked[-1]["request_id"], "approved": True},
        )
        rest = await recv_until(ws, is_type("final_answer", "error"))
    finally:
        await ws.close()
    frames = asked + rest
    assert frames[0]["type"] == "skill_match" and frames[0]["skill"] == "weather-alerts"
    assert asked[-1]["tool"] == "set_weather_alert"
    result = next(f for f in rest if f["type"] == "step" and f["kind"] == "tool_result")
    assert result["result"] == {"city": "Oslo", "alert": "storm", "status": "set"}
    assert rest[-1]["type"] == "final_answer"
