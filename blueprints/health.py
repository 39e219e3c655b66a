"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from quart import Blueprint
from tortoise import Tortoise

from blueprints import runtime

bp = Blueprint("health", __name__)

#: How long one readiness check may take before it counts as failing.
CHECK_TIMEOUT_S = 2.0


@bp.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
async def readyz() -> tuple[dict, int]:
    """The process can serve: its database answers, its writes succeed, Redis (if used) answers.

    ``checks`` gives each check's state: ``ok``, or why it fails.
    """
    rt = runtime()
    checks = {
        "database": await _check(
            lambda: Tortoise.get_connection("default").execute_query("SELECT 1")
        ),
        "storage": "ok"
        if rt.eventlog.healthy
        else "failing: storage is failing; writes are retried",
    }
    if rt.cluster is not None:
        checks["redis"] = await _check(rt.cluster.redis.ping)
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        reason = "; ".join(f"{name} {state}" for name, state in failing.items())
        return {"status": "unavailable", "reason": reason, "checks": checks}, 503
    return {"status": "ready", "checks": checks}, 200


async def _check(probe: Callable[[], Awaitable[object]]) -> str:
    """``ok``, or ``failing: …`` when *probe* raises or takes over :data:`CHECK_TIMEOUT_S`."""
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except Exception as exc:
        return f"failing: {type(exc).__name__}: {exc}"
    return "ok"
