"""Real PostgreSQL and Redis servers on loopback, started for the tests and stopped after.

Installed by ``scripts/install-services.sh`` (``make test``). When a server
cannot be started here, :func:`unavailable` says why and the tests that need
it skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; run the server as the postgres user.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = Path(found[-1]) if found else None
        self.port = free_port()
        self.dir: Path | None = None

    def unavailable(self) -> str | None:
        if self.bin is None:
            return "PostgreSQL is not installed (scripts/install-services.sh installs it as root)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "runuser is missing: cannot start PostgreSQL as its own user"
        return None

    def start(self) -> PostgresServer:
        assert self.bin is not None
        self.dir = Path(tempfile.mkdtemp(prefix="quartet-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        subprocess.run(
            _as_postgres(
                [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--no-sync"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            _as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"),
                 "-w", "-t", "60", "-o", options, "start"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        assert self.bin is not None
        subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-c", f'CREATE DATABASE "{name}"'],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.url(name)

    def stop(self) -> None:
        if self.dir is None or self.bin is None:
            return
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast",
                          "-w", "stop"]),
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """``redis-server`` on a free port, with no persistence.

    :meth:`stop` (SIGTERM) or :meth:`kill` (SIGKILL) it, then :meth:`start` it
    again: it comes back on the same port, empty, as a restarted Redis does.
    """

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def unavailable(self) -> str | None:
        if self.binary is None:
            return "redis-server is not installed (scripts/install-services.sh installs it as root)"
        return None

    def start(self, timeout: float = 10) -> RedisServer:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Ready when it answers PING; redis-server has no readiness signal of its own.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """End it as a crash would: no shutdown, its clients' connections reset."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
