"""The operators' commands (``quart --app app …``), run through Quart's CLI runner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from quart import Quart

from agent.protocol import DOCS_BEGIN, DOCS_END
from app import create_app
from models import ApiKey, Event, Message, Session, Skill
from models.db import close_db, init_db
from settings import Settings

COMMANDS = [
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["db", "upgrade"],
    ["db", "current"],
    ["plugins", "list"],
    ["skills", "list"],
    ["sessions", "export"],
    ["protocol-docs"],
]


@pytest.fixture
def app(tmp_path: Path) -> Quart:
    settings = Settings(
        database_url=f"sqlite://{tmp_path}/data/quartet.db",
        data_dir=tmp_path / "data",
        plugins_file=tmp_path / "none.toml",
        secret_key="cli-test-secret-0123456789",
    )
    return create_app(settings)


def invoke(app: Quart, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(app: Quart, command: list[str]) -> None:
    result = invoke(app, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_keys_create_prints_a_key_that_the_server_accepts(app: Quart) -> None:
    result = invoke(app, "keys", "create", "ops")
    assert result.exit_code == 0, result.output
    raw = result.output.strip()
    assert raw.startswith("qk_")

    async def check() -> None:
        async with app.test_app():
            client = app.test_client()
            response = await client.get("/api/v1/sessions", headers={"X-API-Key": raw})
            assert response.status_code == 200

    asyncio.run(check())
    listed = invoke(app, "keys", "list")
    assert listed.exit_code == 0
    assert "\tops\tclient\t" in listed.output
    assert raw not in listed.output


def test_keys_create_admin_and_revoke(app: Quart) -> None:
    assert invoke(app, "keys", "create", "boss", "--admin").exit_code == 0
    assert "\tboss\tadmin\t" in invoke(app, "keys", "list").output
    revoked = invoke(app, "keys", "revoke", "boss", "--yes")
    assert revoked.exit_code == 0, revoked.output
    assert "boss" not in invoke(app, "keys", "list").output


def test_revoking_an_unknown_key_is_one_error_line(app: Quart) -> None:
    result = invoke(app, "keys", "revoke", "nobody", "--yes")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "Error: no key is named 'nobody'"


def test_db_current_then_upgrade(app: Quart) -> None:
    before = invoke(app, "db", "current")
    assert before.exit_code == 0, before.output
    assert "pending 0001_initial" in before.output
    upgraded = invoke(app, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "applied 0001_initial" in upgraded.output
    after = invoke(app, "db", "current")
    assert "pending" not in after.output
    assert "applied 0001_initial" in after.output


def test_plugins_list_shows_builtins(app: Quart) -> None:
    text = invoke(app, "plugins", "list")
    assert text.exit_code == 0, text.output
    assert "models: demo" in text.output
    as_json = invoke(app, "plugins", "list", "--json")
    names = [plugin["name"] for plugin in json.loads(as_json.output)["plugins"]]
    assert any(name.endswith("demo") for name in names)


def test_skills_list_shows_plugin_and_rest_skills(app: Quart) -> None:
    settings: Settings = app.extensions["quartet"].settings

    async def seed() -> None:
        await init_db(settings.database_url)
        key = await ApiKey.create(name="author", key_hash="z" * 64, lookup_id="w" * 16)
        await Skill.create(owner_id=key.id, name="haiku", keywords=["poem", "haiku"])
        await close_db()

    asyncio.run(seed())
    result = invoke(app, "skills", "list")
    assert result.exit_code == 0, result.output
    assert "haiku\trest:author\tpoem, haiku" in result.output.splitlines()


def test_sessions_export_writes_json_lines(app: Quart, tmp_path: Path) -> None:
    settings: Settings = app.extensions["quartet"].settings

    async def seed() -> str:
        await init_db(settings.database_url)
        key = await ApiKey.create(name="k", key_hash="x" * 64, lookup_id="y" * 16)
        session = await Session.create(owner_id=key.id, title="exported")
        await Message.create(session_id=session.id, role="user", content="hi", turn_id="t1")
        frame = {"type": "final_answer", "seq": 1, "content": "hello"}
        await Event.create(
            session_id=session.id, seq=1, type="final_answer", frame=json.dumps(frame)
        )
        await close_db()
        return session.id

    session_id = asyncio.run(seed())
    out = tmp_path / "export.jsonl"
    result = invoke(app, "sessions", "export", session_id, "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["session", "message", "event"]
    assert lines[0]["title"] == "exported"
    assert lines[1]["content"] == "hi"
    assert lines[2]["frame"]["content"] == "hello"
    missing = invoke(app, "sessions", "export", "nope")
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: no session 'nope'"


def test_protocol_docs_regenerates_the_tables(app: Quart, tmp_path: Path) -> None:
    doc = tmp_path / "protocol.md"
    doc.write_text(f"# Protocol\n\n{DOCS_BEGIN}\nstale\n{DOCS_END}\n\nafter\n")
    assert invoke(app, "protocol-docs", "--path", str(doc), "--check").exit_code == 1
    result = invoke(app, "protocol-docs", "--path", str(doc))
    assert result.exit_code == 0, result.output
    text = doc.read_text()
    assert "stale" not in text and "| `final_answer` |" in text and text.endswith("after\n")
    assert invoke(app, "protocol-docs", "--path", str(doc), "--check").exit_code == 0


def test_the_repository_protocol_doc_is_current(app: Quart) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
    assert invoke(app, "protocol-docs", "--path", str(docs), "--check").exit_code == 0


def test_protocol_docs_without_a_generated_section_fails(app: Quart, tmp_path: Path) -> None:
    doc = tmp_path / "plain.md"
    doc.write_text("nothing generated\n")
    result = invoke(app, "protocol-docs", "--path", str(doc))
    assert result.exit_code == 1
    assert "has no generated section" in result.output
