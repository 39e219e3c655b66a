"""Operators' commands, registered on the app: ``quart --app app COMMAND``.

Each command reads the app's settings (the ``QUARTET_*`` environment), opens
the database for as long as it runs, and on failure prints one ``Error:`` line
and exits non-zero.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from quart import Quart
from quart.cli import ScriptInfo

from agent import protocol
from agent.keys import KeyStore
from agent.runtime import Runtime
from models import ApiKey, Event, Message, Session, Skill
from models.db import close_db, connect_db, init_db, migration_state

T = TypeVar("T")


def init_app(app: Quart) -> None:
    """Register the operators' commands on *app*."""
    for command in (keys, db, plugins, skills, sessions, protocol_docs):
        app.cli.add_command(command)


def _runtime() -> Runtime:
    app: Quart = click.get_current_context().ensure_object(ScriptInfo).load_app()
    return app.extensions["quartet"]


def _run(work: Awaitable[T]) -> T:
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except (OSError, ConnectionError) as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None


@asynccontextmanager
async def _database(rt: Runtime, *, migrate: bool = True) -> AsyncIterator[None]:
    """The app's database, brought up to date unless *migrate* is false."""
    if migrate:
        await init_db(rt.settings.database_url)
    else:
        await connect_db(rt.settings.database_url)
    try:
        yield
    finally:
        await close_db()


# ── keys ──


@click.group()
def keys() -> None:
    """Issue, list and revoke API keys."""


@keys.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="The key may issue keys and read every plugin.")
def keys_create(name: str, admin: bool) -> None:
    """Issue a key named NAME and print it. It is shown only this once."""
    rt = _runtime()

    async def create() -> str:
        async with _database(rt):
            store = KeyStore(rt.settings)
            store.load_secret()
            _, raw = await store.issue(name, is_admin=admin)
            return raw

    if not name.strip() or len(name) > 200:
        raise click.ClickException("a key name has 1 to 200 characters")
    click.echo(_run(create()))


@keys.command("list")
def keys_list() -> None:
    """List the keys: id, name, admin or not, creation time. Keys themselves are not stored."""
    rt = _runtime()

    async def rows() -> list[ApiKey]:
        async with _database(rt):
            return await ApiKey.all().order_by("id")

    for key in _run(rows()):
        role = "admin" if key.is_admin else "client"
        click.echo(f"{key.id}\t{key.name}\t{role}\t{key.created_at.isoformat()}")


@keys.command("revoke")
@click.argument("name")
@click.confirmation_option(
    prompt="Revoking deletes the key with its sessions and skills. Go on?",
    help="Do not ask for confirmation.",
)
def keys_revoke(name: str) -> None:
    """Delete every key named NAME, with its sessions and skills."""
    rt = _runtime()

    async def revoke() -> int:
        async with _database(rt):
            return await ApiKey.filter(name=name).delete()

    deleted = _run(revoke())
    if not deleted:
        raise click.ClickException(f"no key is named {name!r}")
    click.echo(f"revoked {deleted} key(s) named {name!r}")


# ── db ──


@click.group()
def db() -> None:
    """The database schema (tortoise-orm migrations in models/migrations)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations the database lacks (the server also does this at start)."""
    rt = _runtime()

    async def upgrade() -> tuple[list[str], list[str]]:
        async with _database(rt, migrate=False):
            before = await migration_state(rt.settings.database_url)
        async with _database(rt):
            after = await migration_state(rt.settings.database_url)
        return before.pending, after.applied

    applied_now, applied = _run(upgrade())
    for name in applied_now:
        click.echo(f"applied {name}")
    click.echo(f"at {applied[-1] if applied else 'nothing'}")


@db.command("current")
def db_current() -> None:
    """Show the migrations applied and those still pending."""
    rt = _runtime()

    async def current() -> tuple[list[str], list[str]]:
        async with _database(rt, migrate=False):
            state = await migration_state(rt.settings.database_url)
            return state.applied, state.pending

    applied, pending = _run(current())
    for name in applied:
        click.echo(f"applied {name}")
    for name in pending:
        click.echo(f"pending {name}")


# ── plugins and skills ──


@click.group()
def plugins() -> None:
    """What plugins.toml and the installed packages loaded."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def plugins_list(as_json: bool) -> None:
    """Show each plugin with its hooks, skills, tools, experts and models."""
    host = _runtime().plugins
    described = host.describe()
    extra = {
        name: value
        for name in ("load_errors", "mcp_servers")
        if (value := getattr(host, name, None)) is not None
    }
    if as_json:
        click.echo(json.dumps({"plugins": described, **extra}, indent=2, default=str))
        return
    for plugin in described:
        package = f" ({plugin['package']})" if plugin.get("package") else ""
        click.echo(f"{plugin['name']}{package}")
        click.echo(f"  hooks: {', '.join(plugin['hooks']) or '-'}")
        for kind in ("skills", "tools", "experts"):
            names = [item["name"] for item in plugin.get(kind, [])]
            click.echo(f"  {kind}: {', '.join(names) or '-'}")
        click.echo(f"  models: {', '.join(plugin.get('models', [])) or '-'}")
    for name, value in extra.items():
        click.echo(f"{name.replace('_', ' ')}: {json.dumps(value, default=str)}")


@click.group()
def skills() -> None:
    """Keyword skills: from plugins, and registered over REST."""


@skills.command("list")
def skills_list() -> None:
    """List every skill: name, where it comes from, its keywords."""
    rt = _runtime()

    async def rest_skills() -> list[tuple[Skill, str]]:
        async with _database(rt):
            rows = await Skill.all().prefetch_related("owner")
            return [(row, row.owner.name) for row in rows]

    for name, skill in sorted(rt.plugins.plugin_skills.items()):
        click.echo(f"{name}\t{skill.source}\t{', '.join(skill.spec.keywords)}")
    for row, owner in _run(rest_skills()):
        click.echo(f"{row.name}\trest:{owner}\t{', '.join(row.keywords)}")


# ── sessions ──


@click.group()
def sessions() -> None:
    """Chat sessions."""


@sessions.command("export")
@click.argument("session_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def sessions_export(session_id: str, output: Path | None) -> None:
    """Write a session, its messages and its events as JSON lines.

    The first line is the session; then each message (``kind: message``), then
    each logged frame (``kind: event``, ``frame`` as the clients received it).
    """
    rt = _runtime()

    async def export() -> list[dict[str, Any]]:
        async with _database(rt):
            session = await Session.get_or_none(id=session_id).prefetch_related("owner")
            if session is None:
                raise click.ClickException(f"no session {session_id!r}")
            lines: list[dict[str, Any]] = [
                {
                    "kind": "session",
                    "id": session.id,
                    "owner": session.owner.name,
                    "title": session.title,
                    "metadata": session.metadata,
                    "created_at": session.created_at.isoformat(),
                }
            ]
            async for message in Message.filter(session_id=session_id).order_by("id"):
                lines.append(
                    {
                        "kind": "message",
                        "id": message.id,
                        "turn_id": message.turn_id,
                        "role": message.role,
                        "content": message.content,
                        "status": str(message.status),
                        "created_at": message.created_at.isoformat(),
                    }
                )
            async for event in Event.filter(session_id=session_id).order_by("seq"):
                lines.append({"kind": "event", "seq": event.seq, "frame": json.loads(event.frame)})
            return lines

    lines = _run(export())
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {len(lines)} lines to {output}", err=True)


# ── docs ──


@click.command("protocol-docs")
@click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/protocol.md"),
    show_default=True,
    help="The document whose generated section is rewritten.",
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if the file is out of date.")
def protocol_docs(path: Path, check: bool) -> None:
    """Regenerate the frame tables of docs/protocol.md from agent/protocol.py."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    if protocol.DOCS_BEGIN not in text or protocol.DOCS_END not in text:
        raise click.ClickException(f"{path} has no generated section to replace")
    updated = protocol.splice_docs(text)
    if check:
        if updated != text:
            raise click.ClickException(
                f"{path} is out of date: run `quart --app app protocol-docs`"
            )
        click.echo(f"{path} is up to date")
        return
    path.write_text(updated)
    click.echo(f"wrote {path}")
