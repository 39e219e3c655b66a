"""Serve Quartet: hypercorn's command line, with its worker processes watched.

``python -m serve --config hypercorn.toml [-w N] app:app`` takes every option
``hypercorn`` takes. It differs in two ways:

- **Workers that die are noticed.** hypercorn 0.18 exits 0, logging nothing,
  when a worker is killed (SIGKILL, the OOM killer) or fails to start. Here
  a worker killed by a signal is logged and replaced, up to
  :data:`MAX_RESTARTS` times in :data:`RESTART_WINDOW_S`; past that, or when
  a worker exits with an error of its own (it could not start), the service
  logs why and stops with a non-zero exit code, for its supervisor
  (systemd, Kubernetes) to act on.
- **Vanished clients are dropped.** The listening sockets get
  ``TCP_USER_TIMEOUT`` (``QUARTET_TCP_USER_TIMEOUT_S``), which accepted
  connections inherit: data a client has not acknowledged for that long, a
  server ping included, ends its connection, as does a client that stops
  reading and leaves its receive window shut. With hypercorn's
  ``websocket_ping_interval`` this reaps half-open WebSockets.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from multiprocessing import get_context
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

import hypercorn.__main__ as hypercorn_cli
from hypercorn.config import Config, Sockets
from hypercorn.run import run as hypercorn_run
from hypercorn.typing import WorkerFunc
from prometheus_client import multiprocess
from pydantic import ValidationError

from agent import logs
from settings import Settings

log = logging.getLogger("quartet.serve")

#: Killed workers replaced within :data:`RESTART_WINDOW_S` before the service gives up.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
#: Exit code when workers keep being killed.
EXIT_WORKERS_KILLED = 3


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings()
        logs.configure(settings.log_format, settings.log_level)
    except ValidationError:
        logs.configure()  # the workers say what is wrong, in one line
    # hypercorn's CLI parses its options into a Config and ends with run(config);
    # supervise() takes run's place and keeps the CLI whole.
    hypercorn_cli.run = supervise
    return hypercorn_cli.main(argv)


def supervise(config: Config) -> int:
    """hypercorn's ``run``, with the workers watched (see the module docstring)."""
    try:
        user_timeout_s = Settings().tcp_user_timeout_s
    except ValidationError:
        # The workers say what is wrong, in one line, when they import the app.
        user_timeout_s = 0
    if config.workers == 0 or config.use_reloader:
        # One process (or hypercorn's reloader, for development): nothing to watch.
        return hypercorn_run(config)
    sockets = config.create_sockets()
    set_user_timeout(sockets, user_timeout_s)
    try:
        return Supervisor(config, sockets).run()
    finally:
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            sock.close()


def set_user_timeout(sockets: Sockets, timeout_s: float) -> None:
    """Give TCP listening sockets ``TCP_USER_TIMEOUT``; sockets they accept inherit it."""
    if timeout_s <= 0 or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout_s * 1000))


def worker_function(config: Config) -> WorkerFunc:
    if config.worker_class == "asyncio":
        from hypercorn.asyncio.run import asyncio_worker

        return asyncio_worker
    if config.worker_class == "uvloop":
        from hypercorn.asyncio.run import uvloop_worker

        return uvloop_worker
    if config.worker_class == "trio":
        from hypercorn.trio.run import trio_worker

        return trio_worker
    raise ValueError(f"No worker of class {config.worker_class} exists")


def verdict(exitcode: int, restarts_in_window: int) -> str:
    """What to do when a worker ends and no one asked it to.

    :returns: ``"restart"``, ``"give_up"`` (killed too often) or ``"fail"`` (it exited with
        an error of its own, which another start would repeat).
    """
    if exitcode > 0:
        return "fail"
    if exitcode < 0 and restarts_in_window >= MAX_RESTARTS:
        return "give_up"
    # Killed by a signal, or ended cleanly by itself (hypercorn's max_requests).
    return "restart"


def describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Supervisor:
    """Runs ``config.workers`` worker processes and keeps that many running until told to stop."""

    def __init__(self, config: Config, sockets: Sockets) -> None:
        self.config = config
        self.sockets = sockets
        self.worker_func = worker_function(config)
        self.ctx = get_context("spawn")
        self.shutdown_event = self.ctx.Event()
        self.workers: list[BaseProcess] = []
        self.restarts: deque[float] = deque()
        self.stopping = False
        self.reloading = False

    def run(self) -> int:
        # Workers inherit an ignored SIGINT, so Ctrl+C reaches only this process,
        # which then stops them in order through the shutdown event.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _ in range(self.config.workers):
            self._start_worker()
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGHUP, self._reload)
        exitcode = 0
        while not self.stopping:
            if self.reloading:
                self._replace_all()
            # A timeout, so that a signal's flag is seen without a worker ending.
            wait([worker.sentinel for worker in self.workers], timeout=0.5)
            for worker in [w for w in self.workers if w.exitcode is not None]:
                exitcode = self._ended(worker) or exitcode
            if exitcode:
                break
        self._stop_all()
        return exitcode

    def _ended(self, worker: BaseProcess) -> int:
        """Handle a worker that ended; returns the service's exit code if it must stop."""
        worker.join()
        self.workers.remove(worker)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Its live gauges (open WebSockets) no longer count.
            multiprocess.mark_process_dead(worker.pid)
        code = worker.exitcode
        assert code is not None
        if self.stopping:
            return 0
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
            self.restarts.popleft()
        match verdict(code, len(self.restarts)):
            case "fail":
                log.error("worker %d %s; stopping the service", worker.pid, describe_exit(code))
                return code
            case "give_up":
                log.error(
                    "worker %d %s, after %d others in %.0f s; stopping the service",
                    worker.pid,
                    describe_exit(code),
                    len(self.restarts),
                    RESTART_WINDOW_S,
                )
                return EXIT_WORKERS_KILLED
        if code != 0:
            self.restarts.append(now)
            log.error("worker %d %s; starting another", worker.pid, describe_exit(code))
        self._start_worker()
        return 0

    def _start_worker(self) -> None:
        worker = self.ctx.Process(  # type: ignore[attr-defined]
            target=self.worker_func,
            kwargs={
                "config": self.config,
                "shutdown_event": self.shutdown_event,
                "sockets": self.sockets,
            },
        )
        worker.daemon = self.config.daemon
        worker.start()
        self.workers.append(worker)
        log.info("worker %d started", worker.pid)

    def _stop(self, *_: Any) -> None:
        self.stopping = True
        self.shutdown_event.set()

    def _reload(self, *_: Any) -> None:
        self.reloading = True

    def _replace_all(self) -> None:
        """SIGHUP, as in hypercorn: stop every worker gracefully, then start new ones."""
        self.reloading = False
        log.info("reloading: replacing %d workers", len(self.workers))
        self._stop_all()
        self.shutdown_event.clear()
        for _ in range(self.config.workers):
            self._start_worker()

    def _stop_all(self) -> None:
        """Ask every worker to stop; terminate the ones still running after the grace time."""
        self.shutdown_event.set()
        deadline = time.monotonic() + self.config.graceful_timeout + 10
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.exitcode is None:
                log.warning("worker %d did not stop in time; terminating it", worker.pid)
                worker.terminate()
                worker.join(5)
        self.workers.clear()


if __name__ == "__main__":
    sys.exit(main())
