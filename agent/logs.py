"""Logging for operators: configured when the app starts serving, never at import.

``QUARTET_LOG_FORMAT=json`` writes one JSON object a line. Records made while
a session or a turn is being served carry its ``session_id``, ``turn_id`` and
``key`` (the key's name, never the key), taken from context variables that
the WebSocket handler and the turn's task set with :func:`bind`.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

#: What the records of the current task are about.
_context: ContextVar[dict[str, Any] | None] = ContextVar("quartet_log_context", default=None)

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def bind(**fields: Any) -> None:
    """Add *fields* (session_id, turn_id, key...) to every record of this task from now on.

    A task started afterwards inherits them; the caller's own context is untouched
    when this runs in a task of its own.
    """
    current = _context.get() or {}
    _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def context() -> dict[str, Any]:
    """The fields :func:`bind` set for this task."""
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the bound fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _ContextFilter(logging.Filter):
    """Text format: append the bound fields as ``key=value``."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = context()
        record.context = (" " + " ".join(f"{k}={v}" for k, v in bound.items())) if bound else ""
        return True


class _QuartetHandler(logging.StreamHandler):
    """The handler :func:`configure` installs; found again and replaced on the next call."""


def configure(
    fmt: Literal["text", "json"] = "text", level: str | int = "INFO", stream: IO[str] | None = None
) -> None:
    """Send every record at *level* and above to *stream* (standard error), as text or JSON lines.

    Calling it again replaces the handler it installed before (tests and
    reloads do), leaving other handlers alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _QuartetHandler)]:
        root.removeHandler(handler)
    handler = _QuartetHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_ContextFilter())
        handler.setFormatter(logging.Formatter(TEXT_FORMAT + "%(context)s"))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # hypercorn logs through its own handlers; stop its records being printed twice.
    logging.getLogger("hypercorn").propagate = False
