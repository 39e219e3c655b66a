"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

from quart import Blueprint
from tortoise import Tortoise

from blueprints import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
async def readyz() -> tuple[dict, int]:
    """The process can serve: its database answers and its writes succeed."""
    eventlog = runtime().eventlog
    if not eventlog.healthy:
        return {"status": "unavailable", "reason": "storage is failing; writes are retried"}, 503
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:
        return {"status": "unavailable", "reason": str(exc)}, 503
    return {"status": "ready"}, 200
