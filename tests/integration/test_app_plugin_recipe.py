"""The recipe docs/plugins.md gives plugin authors: an in-process app with a throwaway plugin."""

from __future__ import annotations

from pathlib import Path

from app import create_app
from plugins.hookspecs import hookimpl
from plugins.skills import SkillMatch
from settings import Settings

KEY = "qk_plugin-recipe-test-key"


class Billing:
    def __init__(self) -> None:
        self.ended: list[str] = []

    @hookimpl
    async def match_skills(self, message, session):
        if "invoice" in message.lower():
            return [
                SkillMatch(skill="billing", matched=["invoice"], score=1.0, source="plugin:billing")
            ]
        return None

    @hookimpl
    def on_turn_end(self, status):
        self.ended.append(status)


async def test_plugin_in_a_test_app(tmp_path: Path) -> None:
    plugin = Billing()
    settings = Settings(
        database_url="sqlite://:memory:",
        data_dir=tmp_path,
        api_key=KEY,
        plugins_file=tmp_path / "none",
    )
    app = create_app(settings, extra_plugins=[plugin])
    async with app.test_app() as test_app:
        client = test_app.test_client()
        created = await client.post("/api/v1/sessions", json={}, headers={"X-API-Key": KEY})
        sid = (await created.get_json())["id"]
        async with client.websocket(f"/api/v1/chat/ws/{sid}?api_key={KEY}") as ws:
            assert (await ws.receive_json())["type"] == "connected"
            await ws.send_json({"type": "message", "content": "Where is my INVOICE?"})
            frames = [await ws.receive_json()]
            while frames[-1]["type"] not in ("final_answer", "error"):
                frames.append(await ws.receive_json())
        plugins = await (await client.get("/api/v1/plugins", headers={"X-API-Key": KEY})).get_json()
    assert frames[0]["type"] == "skill_match" and frames[0]["skill"] == "billing"
    assert frames[-1]["content"] == "You said: Where is my INVOICE?"
    assert plugin.ended == ["complete"]
    assert any("match_skills" in p["hooks"] for p in plugins["plugins"])
