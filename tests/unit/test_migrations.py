"""The schema comes from the migrations in models/migrations, and they match the models."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tortoise import Tortoise, connections
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from models import ApiKey, Message
from models.auth import KeyHasher
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
    # Raw SQL: the models describe the newest schema, this database has 0001's,
    # whose keys were stored as plain SHA-256.
    raw_key = "qk_a-key-from-session-1"
    await connection.execute_query(
        "INSERT INTO api_keys (id, name, key_hash, is_admin, created_at) "
        "VALUES (7, 'old', ?, 0, '2026-11-01 00:00:00+00:00')",
        [hashlib.sha256(raw_key.encode()).hexdigest()],
    )
    session_id = "kept-session"
    await connection.execute_query(
        "INSERT INTO sessions (id, owner_id, title, metadata, created_at, updated_at) "
        "VALUES (?, 7, 'kept', '{}', '2026-11-01 00:00:00+00:00', '2026-11-01 00:00:00+00:00')",
        [session_id],
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
        # The old key still opens its session, and is stored keyed from then on.
        hasher = KeyHasher(b"the-new-server-secret")
        key = await ApiKey.lookup(raw_key, hasher)
        assert key is not None and key.id == 7
        assert (await ApiKey.get(id=7)).key_hash == hasher.digest(raw_key)
        # A second start changes nothing.
        await migrate(config)
    finally:
        await close_db()
