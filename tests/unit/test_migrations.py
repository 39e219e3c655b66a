"""The schema comes from the migrations in models/migrations, and they match the models."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise, connections
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from models import ApiKey, Message, Session
from models.db import FIRST_MIGRATION, close_db, init_db, migrate, tortoise_config


async def test_the_migrations_describe_the_models(db) -> None:
    config = tortoise_config("sqlite://:memory:")
    changes = await MigrationAutodetector(Tortoise.apps, config["apps"]).changes()
    assert changes == [], "run: python -m tortoise -c models.db.TORTOISE_ORM makemigrations"


async def test_a_database_made_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    # What session 1 left on disk: the 0001 tables, made directly, with data and
    # no migration history.
    url = f"sqlite://{tmp_path}/old.db"
    config = tortoise_config(url)
    await Tortoise.init(config=config, _enable_global_fallback=True)
    connection = connections.get("default")
    await MigrationExecutor(connection, config["apps"]).migrate(
        [MigrationTarget("models", FIRST_MIGRATION)]
    )
    key, _ = await ApiKey.issue("old")
    # Raw SQL: the models describe the newest schema, this database has 0001's.
    session_id = "kept-session"
    await connection.execute_query(
        "INSERT INTO sessions (id, owner_id, title, metadata, created_at, updated_at) "
        "VALUES (?, ?, 'kept', '{}', '2026-11-01 00:00:00+00:00', '2026-11-01 00:00:00+00:00')",
        [session_id, key.id],
    )
    await connection.execute_query(
        "INSERT INTO messages (session_id, role, content, status, created_at) "
        "VALUES (?, 'user', 'old words', 'complete', '2026-11-01 00:00:00+00:00')",
        [session_id],
    )
    await connection.execute_query("DROP TABLE tortoise_migrations")
    await close_db()

    await init_db(url)
    try:
        old = await Message.get(session_id=session_id)
        assert (old.content, old.usage) == ("old words", None)
        await Message.create(
            session_id=session_id,
            role="assistant",
            content="new",
            usage={"input_tokens": 1, "output_tokens": 2},
        )
        assert await Message.filter(session_id=session_id).count() == 2
        # A second start changes nothing.
        await migrate(config)
    finally:
        await close_db()
