"""Prometheus metrics: what Quartet counts, and the text ``GET /metrics`` serves.

The metrics are process-wide (prometheus-client's registry is). With
``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, every worker
writes its values to files in that directory and ``/metrics`` adds up all
workers' (prometheus-client's multiprocess mode); the directory must be
emptied before the service starts.

The engine reports through the functions below (one call at each place
something happens); a turn's clocks live here, keyed by turn id, so the
turn code only says when a turn starts, emits and ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

if TYPE_CHECKING:
    from agent.protocol import ServerEvent
    from plugins.llm import Usage

#: Seconds: from a quick demo token to a slow model's first token or a long turn.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

WEBSOCKETS_OPEN = Gauge(
    "quartet_websocket_connections",
    "Chat WebSockets open now.",
    multiprocess_mode="livesum",
)
WEBSOCKETS_CLOSED = Counter(
    "quartet_websocket_closed",
    "Chat WebSockets closed, by close code (1000: the client left; 4008: too slow).",
    ["code"],
)
TURNS = Counter(
    "quartet_turns",
    "Turns ended, by outcome: complete, or the error code that ended them.",
    ["outcome"],
)
TOKENS_STREAMED = Counter("quartet_tokens_streamed", "token frames sent by turns.")
MODEL_TOKENS = Counter(
    "quartet_model_tokens", "Tokens the models reported using, by kind (input, output).", ["kind"]
)
FIRST_TOKEN_SECONDS = Histogram(
    "quartet_first_token_seconds",
    "From a turn's start to its first token frame.",
    buckets=LATENCY_BUCKETS,
)
TURN_SECONDS = Histogram(
    "quartet_turn_duration_seconds",
    "From a turn's start to its terminal frame.",
    buckets=LATENCY_BUCKETS,
)
MODEL_CALLS = Counter("quartet_model_calls", "Model rounds started, by model.", ["model"])
MODEL_ERRORS = Counter("quartet_model_errors", "Model rounds that failed, by model.", ["model"])
TOOL_CALLS = Counter(
    "quartet_tool_calls",
    "Tool calls that ran or failed, by tool and outcome (ok, or the error code).",
    ["tool", "outcome"],
)
CONFIRMATIONS = Counter(
    "quartet_confirmations",
    "Confirmations answered, by outcome (approved, denied, timeout, cancel).",
    ["outcome"],
)
OUTBOX_OVERFLOWS = Counter(
    "quartet_outbox_overflows",
    "Connections closed because the client fell a whole outbox behind.",
)
EVENTLOG_FLUSH_SECONDS = Histogram(
    "quartet_eventlog_flush_seconds",
    "Time to write one batch of frames (or one queued row) to the database.",
    buckets=FLUSH_BUCKETS,
)
EVENTLOG_FLUSH_FAILURES = Counter(
    "quartet_eventlog_flush_failures", "Event-log writes that failed (each is retried)."
)
RELAY_LAG_SECONDS = Histogram(
    "quartet_redis_relay_lag_seconds",
    "From a frame's timestamp on the process that made it to its delivery here via Redis.",
    buckets=FLUSH_BUCKETS,
)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (multiprocess mode; a no-op otherwise)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# ── connections ──


@dataclass
class OpenSocket:
    #: The close code the server sends; 1000 when the client left first.
    code: int = 1000


@contextmanager
def websocket_open() -> Iterator[OpenSocket]:
    """Count a chat WebSocket while it is open, and its close code once it ends."""
    socket = OpenSocket()
    WEBSOCKETS_OPEN.inc()
    try:
        yield socket
    finally:
        WEBSOCKETS_OPEN.dec()
        WEBSOCKETS_CLOSED.labels(code=str(socket.code)).inc()
        if socket.code == CLOSE_TOO_SLOW:
            OUTBOX_OVERFLOWS.inc()


CLOSE_TOO_SLOW = 4008


# ── turns ──


@dataclass
class _TurnClock:
    started: float
    first_token: bool = False


_turns: dict[str, _TurnClock] = {}


def turn_started(turn_id: str) -> None:
    _turns[turn_id] = _TurnClock(time.monotonic())


def turn_emitted(turn_id: str | None, event: ServerEvent) -> None:
    """Count what a turn's frame says: tokens, tool results, confirmations."""
    kind = event.type
    if kind == "token":
        TOKENS_STREAMED.inc()
        clock = _turns.get(turn_id or "")
        if clock is not None and not clock.first_token:
            clock.first_token = True
            FIRST_TOKEN_SECONDS.observe(time.monotonic() - clock.started)
    elif kind == "step" and getattr(event, "kind", None) == "tool_result":
        error = getattr(event, "error", None)
        outcome = "ok" if error is None else str(getattr(error.code, "value", error.code))
        TOOL_CALLS.labels(tool=getattr(event, "tool", "") or "", outcome=outcome).inc()
    elif kind == "confirmation_result":
        by = getattr(event, "by", "user")
        outcome = (
            ("approved" if getattr(event, "approved", False) else "denied") if by == "user" else by
        )
        CONFIRMATIONS.labels(outcome=outcome).inc()


def turn_ended(turn_id: str, terminal: ServerEvent, usage: Usage | None) -> None:
    """Count a turn by outcome, and how long it ran."""
    if terminal.type == "final_answer":
        outcome = "complete"
    else:
        code = getattr(terminal, "code", "internal")
        outcome = str(getattr(code, "value", code))
    TURNS.labels(outcome=outcome).inc()
    clock = _turns.pop(turn_id, None)
    if clock is not None:
        TURN_SECONDS.observe(time.monotonic() - clock.started)
    if usage is not None:
        MODEL_TOKENS.labels(kind="input").inc(getattr(usage, "input_tokens", 0) or 0)
        MODEL_TOKENS.labels(kind="output").inc(getattr(usage, "output_tokens", 0) or 0)


# ── models, storage, relay ──


def model_called(model: str) -> None:
    MODEL_CALLS.labels(model=model).inc()


def model_failed(model: str) -> None:
    MODEL_ERRORS.labels(model=model).inc()


def eventlog_flushed(seconds: float) -> None:
    EVENTLOG_FLUSH_SECONDS.observe(seconds)


def eventlog_failed() -> None:
    EVENTLOG_FLUSH_FAILURES.inc()


def relayed(event: ServerEvent) -> None:
    """A frame arrived from another process: how long after it was made."""
    ts = getattr(event, "ts", None)
    if isinstance(ts, datetime):
        RELAY_LAG_SECONDS.observe(max(0.0, (datetime.now(UTC) - ts).total_seconds()))
