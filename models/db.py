"""Database lifecycle for the app: init on startup, close on shutdown."""

from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise

from models import MODEL_MODULES


def tortoise_config(database_url: str) -> dict:
    return {
        "connections": {"default": database_url},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(database_url: str) -> None:
    """Connect and create missing tables.

    The context is made the process-wide fallback because hypercorn serves
    requests in tasks that do not inherit the startup task's context.
    """
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    await Tortoise.generate_schemas(safe=True)


async def close_db() -> None:
    await Tortoise.close_connections()
