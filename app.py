"""Quartet's application factory; ``hypercorn app:app`` serves the default app."""

from __future__ import annotations

from pydantic import ValidationError
from quart import Quart

import cli
from agent import logs
from agent.runtime import Runtime
from blueprints import (
    apidocs,
    chat,
    health,
    json_body,
    keys,
    metrics,
    plugins,
    sessions,
    skills,
    ui,
)
from blueprints.errors import register_error_handlers
from plugins.manager import PluginError, build_plugin_host
from settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    extra_plugins: list[object] | None = None,
    entry_points: bool = True,
) -> Quart:
    """Build the app: settings, plugins, services, blueprints.

    :param settings: defaults to :class:`Settings` read from the environment.
    :param extra_plugins: plugin objects registered after all others (for tests).
    :param entry_points: load the installed ``quartet.plugins`` entry points.
    :raises PluginError: a plugin cannot be loaded; the message names it.
    """
    settings = settings or Settings()
    app = Quart(__name__)
    # Bodies larger than this are refused with 413 before they are read.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    apidocs.init_app(app)
    host = build_plugin_host(
        settings.plugins_file,
        extra=extra_plugins,
        entry_points=entry_points,
        trace=settings.trace_plugins,
    )
    runtime = Runtime(settings, host)
    app.extensions["quartet"] = runtime

    async def configure_logging() -> None:
        logs.configure(settings.log_format, settings.log_level)

    # Logging is set up when serving starts, not on import: commands and tests keep theirs.
    app.before_serving(configure_logging)
    app.before_serving(runtime.startup)
    app.after_serving(runtime.shutdown)
    register_error_handlers(app)
    json_body.init_app(app)
    cli.init_app(app)
    for blueprint in (health.bp, keys.bp, sessions.bp, skills.bp, plugins.bp, chat.bp, ui.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(metrics.bp)
    return app


def serving_app() -> Quart:
    """The app for hypercorn, from the environment.

    A bad ``QUARTET_*`` setting stops the process with one line that names it, not a traceback.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SystemExit(f"quartet: refusing to start: {describe_settings_error(exc)}") from None
    try:
        return create_app(settings)
    except PluginError as exc:
        raise SystemExit(f"quartet: refusing to start: {exc}") from None


def describe_settings_error(exc: ValidationError) -> str:
    return "; ".join(
        f"QUARTET_{'_'.join(str(part) for part in error['loc']).upper()}: "
        + error["msg"].removeprefix("Value error, ")
        for error in exc.errors()
    )


# hypercorn looks the app up with eval(), so it must exist at import time.
app = serving_app()
