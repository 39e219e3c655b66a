"""Running Quartet with `python -m serve`: dead workers, refused settings, server pings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.raw_ws import RawWebSocket
from tests.e2e.server import ROOT, QuartetServer

WORKER_STARTED = re.compile(r"worker (\d+) started")


def wait_for(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_worker_is_logged_and_replaced_and_the_service_stays_up(tmp_path: Path) -> None:
    # Migrated beforehand: two workers starting on a new SQLite file would race to make it.
    migrate = "import asyncio, sys; from models.db import init_db, close_db\n"
    migrate += "async def main():\n    await init_db(sys.argv[1])\n    await close_db()\n"
    migrate += "asyncio.run(main())"
    subprocess.run(
        [sys.executable, "-c", migrate, f"sqlite://{tmp_path}/quartet.db"],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    server = QuartetServer(
        tmp_path, launcher="serve", args=("--config", "hypercorn.toml", "-w", "2")
    ).start()
    try:
        wait_for(lambda: server.output().count("Running on") == 2, what="two workers")
        first, second = (int(pid) for pid in WORKER_STARTED.findall(server.output()))
        headers = {"X-API-Key": server.api_key}
        session = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers)
        assert session.status_code == 201

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: server.output().count("Running on") == 3, what="a new worker")
        assert f"worker {first} was killed by SIGKILL; starting another" in server.output()
        assert server.proc is not None and server.proc.poll() is None
        pids = [int(pid) for pid in WORKER_STARTED.findall(server.output())]
        assert len(pids) == 3 and second in pids and first in pids
        for _ in range(10):  # whichever worker answers
            got = httpx.get(f"{server.base_url}/api/v1/sessions", headers=headers)
            assert got.status_code == 200 and got.json()["total"] == 1
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.output()


def test_a_service_whose_workers_cannot_start_exits_non_zero_with_one_clear_line(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "QUARTET_DATA_DIR": str(tmp_path),
        "QUARTET_DATABASE_URL": f"sqlite://{tmp_path}/quartet.db",
        "QUARTET_API_KEY": "a",
    }
    done = subprocess.run(
        [sys.executable, "-m", "serve", "--bind", "127.0.0.1:0", "-w", "1", "app:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output
    refusals = [line for line in output.splitlines() if "refusing to start" in line]
    assert refusals == [
        "quartet: refusing to start: QUARTET_API_KEY: an admin key must have at least "
        "16 characters (this one has 1)"
    ]
    assert re.search(r"worker \d+ exited with code 1; stopping the service", output)


@pytest.fixture
def pinging_server(tmp_path: Path):
    server = QuartetServer(
        tmp_path,
        launcher="serve",
        args=("--config", "hypercorn.toml", "--websocket-ping-interval", "1"),
    ).start()
    yield server
    server.stop()


def test_the_server_pings_a_websocket_that_says_nothing(pinging_server: QuartetServer) -> None:
    server = pinging_server
    headers = {"X-API-Key": server.api_key}
    session_id = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()[
        "id"
    ]
    ws = RawWebSocket.connect(server.port, f"/api/v1/chat/ws/{session_id}?api_key={server.api_key}")
    try:
        assert ws.status == 101
        started = time.monotonic()
        frames = [ws.read_frame(timeout=10)]
        while [opcode for opcode, _ in frames].count(RawWebSocket.PING) < 3:
            frames.append(ws.read_frame(timeout=5))
        texts = [payload for opcode, payload in frames if opcode == RawWebSocket.TEXT]
        assert len(texts) == 1 and b'"connected"' in texts[0]
        # A client that answers (browsers, websockets) never notices; one that has
        # vanished leaves the ping unacknowledged, and TCP_USER_TIMEOUT drops it.
        assert time.monotonic() - started < 5  # one at accept, then one a second
    finally:
        ws.close()
