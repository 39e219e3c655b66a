"""Quart blueprints, one per resource; handlers stay thin."""

from __future__ import annotations

from quart import current_app

from agent.runtime import Runtime


def runtime() -> Runtime:
    """The app's services (see :mod:`agent.runtime`)."""
    return current_app.extensions["quartet"]
