"""The probes: /readyz reports each check's state."""

from __future__ import annotations

from pathlib import Path

from app import create_app
from settings import Settings


async def test_readyz_reports_each_check(tmp_path: Path) -> None:
    app = create_app(
        Settings(
            database_url=f"sqlite://{tmp_path}/quartet.db",
            data_dir=tmp_path,
            plugins_file=tmp_path / "none.toml",
        )
    )
    async with app.test_app():
        client = app.test_client()
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert await ready.get_json() == {
            "status": "ready",
            "checks": {"database": "ok", "storage": "ok"},
        }
        # Storage failing: the writer has been retrying since this (monotonic) time.
        app.extensions["quartet"].eventlog.failing_since = 0.0
        try:
            failing = await client.get("/readyz")
            body = await failing.get_json()
        finally:
            app.extensions["quartet"].eventlog.failing_since = None
        assert failing.status_code == 503
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["storage"].startswith("failing")
        assert "storage" in body["reason"]
