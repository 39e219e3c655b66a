"""Operators' logs: set up at start-up, not on import; JSON lines with the turn's ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from agent import logs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured():
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logs._QuartetHandler)]:
        root.removeHandler(handler)


def test_importing_the_app_configures_no_logging() -> None:
    code = (
        "import logging, app; root = logging.getLogger(); "
        "print(len(root.handlers), logging.getLevelName(root.level))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["0", "WARNING"]


async def test_json_lines_carry_the_bound_session_and_turn(captured: io.StringIO) -> None:
    logs.configure("json", "INFO", captured)
    log = logging.getLogger("quartet.test")

    async def turn() -> None:
        logs.bind(session_id="s1", turn_id="t1", key="ops")
        log.info("inside %s", "the turn")

    await asyncio.create_task(turn())
    log.warning("outside")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["inside the turn", "outside", "failed"]
    inside, outside, failed = lines
    assert (inside["session_id"], inside["turn_id"], inside["key"]) == ("s1", "t1", "ops")
    assert inside["level"] == "INFO" and inside["logger"] == "quartet.test"
    # The task's fields stayed in the task.
    assert "session_id" not in outside
    assert "ValueError: boom" in failed["exc"]


def test_text_format_and_reconfiguring_replaces_the_handler(captured: io.StringIO) -> None:
    logs.configure("text", "INFO", captured)
    logs.configure("text", "WARNING", captured)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logs._QuartetHandler)]
    assert len(handlers) == 1
    logging.getLogger("quartet.test").info("hidden")
    logging.getLogger("quartet.test").warning("shown")
    assert captured.getvalue() == "WARNING quartet.test: shown\n"
