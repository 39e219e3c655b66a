"""Database lifecycle for the app: init on startup, close on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import OperationalError
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from models import MODEL_MODULES

log = logging.getLogger(__name__)

FIRST_MIGRATION = "0001_initial"
#: The advisory lock key under which one process at a time migrates ("quartet" in ASCII).
MIGRATION_LOCK_ID = 0x71756172746574


def tortoise_config(database_url: str) -> dict:
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(database_url: str) -> None:
    """Connect and bring the schema up to date with the migrations in ``models/migrations``.

    The context is made the process-wide fallback because hypercorn serves
    requests in tasks that do not inherit the startup task's context.
    """
    _make_sqlite_dir(database_url)
    config = tortoise_config(database_url)
    await Tortoise.init(config=config, _enable_global_fallback=True)
    await migrate(config)


def _make_sqlite_dir(database_url: str) -> None:
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)


async def migrate(config: dict) -> None:
    """Apply the migrations the database has not had yet.

    A database made before Quartet had migrations (its tables were created
    directly, as in 0001) is marked as having 0001 first.
    """
    connection = connections.get("default")
    async with _migration_lock(connection):
        executor = MigrationExecutor(connection, config["apps"])
        if await _predates_migrations(connection):
            log.warning("database made before migrations; marking %s as applied", FIRST_MIGRATION)
            await executor.migrate([MigrationTarget("models", FIRST_MIGRATION)], fake=True)
        await executor.migrate()


@asynccontextmanager
async def _migration_lock(connection: BaseDBAsyncClient) -> AsyncIterator[None]:
    """On PostgreSQL, one process at a time migrates; the others wait, then find nothing to do.

    A session-level advisory lock, held on one pooled connection while the
    migrations run on others. SQLite serves one host, and its writes lock the file.
    """
    if connection.capabilities.dialect != "postgres":
        yield
        return
    async with connection.acquire_connection() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            yield
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)


async def _predates_migrations(connection: BaseDBAsyncClient) -> bool:
    """Quartet's tables exist but the migration history does not."""
    try:
        await connection.execute_query("SELECT 1 FROM sessions LIMIT 1")
    except OperationalError:
        return False
    try:
        await connection.execute_query("SELECT 1 FROM tortoise_migrations LIMIT 1")
    except OperationalError:
        return True
    return False


async def close_db() -> None:
    await Tortoise.close_connections()
    # Tortoise caches each model's INSERT by connection name, not by backend;
    # forget them so the next init_db may be another database (tests use
    # SQLite and PostgreSQL in one process).
    EXECUTOR_CACHE.clear()


#: For the ``tortoise`` CLI: ``python -m tortoise -c models.db.TORTOISE_ORM makemigrations``.
TORTOISE_ORM = tortoise_config("sqlite://./data/quartet.db")


async def connect_db(database_url: str) -> None:
    """Connect without migrating (for commands that only read the migration state)."""
    _make_sqlite_dir(database_url)
    await Tortoise.init(config=tortoise_config(database_url))


@dataclass(frozen=True)
class MigrationState:
    """Which of ``models/migrations`` a database has had, and which it lacks."""

    applied: list[str]
    pending: list[str]


async def migration_state(database_url: str) -> MigrationState:
    """The migration state of the connected database (see :func:`connect_db`)."""
    executor = MigrationExecutor(connections.get("default"), tortoise_config(database_url)["apps"])
    applied = await executor.recorder.applied_migrations()
    plan = await executor.plan()
    return MigrationState(
        applied=[key.name for key in applied],
        pending=[step.migration.name for step in plan if not step.backward],
    )
