"""serve.py: what becomes of a worker that ends, and the sockets' TCP_USER_TIMEOUT."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import pytest
from hypercorn.config import Config

from serve import (
    MAX_RESTARTS,
    describe_exit,
    set_user_timeout,
    verdict,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("exitcode", "restarts", "expected"),
    [
        (-9, 0, "restart"),  # kill -9, the OOM killer
        (-15, MAX_RESTARTS - 1, "restart"),
        (-9, MAX_RESTARTS, "give_up"),  # killed again and again: something is wrong
        (0, MAX_RESTARTS, "restart"),  # ended by itself (max_requests): not a failure
        (1, 0, "fail"),  # could not start: another start would fail the same way
    ],
)
def test_verdict(exitcode: int, restarts: int, expected: str) -> None:
    assert verdict(exitcode, restarts) == expected


def test_exits_are_described_by_signal_name() -> None:
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def test_hypercorn_toml_pings_websockets() -> None:
    config = Config.from_toml(ROOT / "hypercorn.toml")
    assert config.websocket_ping_interval is not None and config.websocket_ping_interval <= 60


def test_accepted_sockets_inherit_the_user_timeout_and_a_client_that_stops_reading_is_dropped() -> (
    None
):
    config = Config()
    config.bind = ["127.0.0.1:0"]
    sockets = config.create_sockets()
    listener = sockets.insecure_sockets[0]
    set_user_timeout(sockets, 0.5)
    listener.listen()  # as a worker's asyncio.start_server does
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        client.connect(listener.getsockname())
        accepted, _ = listener.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 500
        # The client never reads: once its window is shut, the kernel gives up on it.
        accepted.setblocking(False)
        deadline = time.monotonic() + 30
        with pytest.raises(TimeoutError):
            while time.monotonic() < deadline:
                try:
                    accepted.send(b"x" * 65536)
                except BlockingIOError:
                    select.select([], [accepted], [], 0.1)
        assert time.monotonic() < deadline
        accepted.close()
    finally:
        client.close()
        listener.close()
