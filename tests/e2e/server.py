"""Start a real Quartet server (hypercorn) on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Running on"


class QuartetServer:
    """A hypercorn process serving ``app:app`` on a socket bound before it starts.

    Binding the socket here and handing hypercorn its descriptor means the port
    is ours before the server exists: no race for a "free" port.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        api_key: str | None = "",
        env: dict[str, str] | None = None,
        app: str = "app:app",
        launcher: str = "hypercorn",
        args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.api_key = secrets.token_urlsafe(16) if api_key == "" else api_key
        self.extra_env = env or {}
        self.app = app
        #: The module run with ``python -m``: ``hypercorn``, or ``serve`` (hypercorn, supervised).
        self.launcher = launcher
        self.args = args
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> QuartetServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        env = {
            **os.environ,
            "QUARTET_DATA_DIR": str(self.data_dir),
            "QUARTET_DATABASE_URL": f"sqlite://{self.data_dir}/quartet.db",
            **self.extra_env,
        }
        env.pop("QUARTET_API_KEY", None)
        if self.api_key is not None:
            env["QUARTET_API_KEY"] = self.api_key
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.launcher,
                *self.args,
                "--bind",
                f"fd://{sock.fileno()}",
                "--backlog",
                "2048",
                self.app,
            ],
            cwd=ROOT,
            env=env,
            pass_fds=[sock.fileno()],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        sock.close()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines[-40:]))
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY_LINE in line:
                self._ready.set()
        self._ready.set()  # the process ended; start() checks poll()

    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """End the server abruptly, as a crash would: SIGKILL to hypercorn and its workers."""
        assert self.proc is not None
        # hypercorn serves from a worker process; killing only the parent would
        # leave the worker running, so kill the whole process group.
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
