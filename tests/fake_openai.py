"""A scriptable OpenAI-compatible Chat Completions server on loopback, for tests.

A real HTTP server (the standard library's, in a thread) that speaks the
streaming format: each request takes the next queued :class:`Script` and
plays it as server-sent events. Requests are recorded, and a client that
hangs up mid-stream is noticed (``disconnected``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """One scripted answer.

    :param status: the HTTP status; anything but 200 is sent as an error body.
    :param deltas: the ``delta`` objects to stream, one chunk each.
    :param usage: ``(prompt_tokens, completion_tokens)``, sent in a last chunk.
    :param delay_s: pause before each chunk.
    :param stall_after: after this many chunks, send nothing until the client leaves.
    :param error_after: after this many chunks, send an error event and stop.
    :param match: answer only a request whose messages contain this text (for
        concurrent requests, such as a team's experts, that arrive in any order).
    """

    status: int = 200
    deltas: list[dict[str, Any]] = field(default_factory=list)
    usage: tuple[int, int] | None = None
    delay_s: float = 0.0
    stall_after: int | None = None
    error_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    match: str | None = None

    def answers(self, body: dict[str, Any]) -> bool:
        return self.match is None or self.match in json.dumps(body.get("messages", []))


def text(answer: str, *, usage: tuple[int, int] | None = (10, 5), **options: Any) -> Script:
    """Stream *answer* word by word."""
    words = answer.split(" ")
    deltas = [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
    return Script(deltas=[{"role": "assistant", **deltas[0]}, *deltas[1:]], usage=usage, **options)


def tool_calls(*calls: tuple[str, dict[str, Any]], pieces: int = 3, **options: Any) -> Script:
    """Call tools, each call's arguments split over *pieces* chunks, calls interleaved."""
    deltas: list[dict[str, Any]] = []
    encoded = [json.dumps(arguments) for _, arguments in calls]
    for index, (name, _) in enumerate(calls):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": f"call_{index}_{name}",
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )
    for piece in range(pieces):
        for index, args in enumerate(encoded):
            size = -(-len(args) // pieces)
            chunk = args[piece * size : (piece + 1) * size]
            if chunk:
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": chunk}}]})
    return Script(deltas=deltas, usage=(20, 8), finish_reason="tool_calls", **options)


def status(code: int, **headers: str) -> Script:
    return Script(status=code, headers=headers)


class FakeOpenAI:
    def __init__(self) -> None:
        self.scripts: deque[Script] = deque()
        self.requests: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def quartet_env(self, **extra: str) -> dict[str, str]:
        """Settings for a Quartet server whose model is this fake."""
        return {
            "QUARTET_MODEL": "openai:fake-model",
            "QUARTET_OPENAI_BASE_URL": self.base_url,
            "QUARTET_OPENAI_API_KEY": "sk-test",
            **extra,
        }

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self.scripts.extend(scripts)

    def reset(self) -> None:
        with self._lock:
            self.scripts.clear()
            self.requests.clear()
        self.disconnected.clear()

    def _next(self, body: dict[str, Any]) -> Script | None:
        with self._lock:
            self.requests.append(body)
            script = next((s for s in self.scripts if s.answers(body)), None)
            if script is not None:
                self.scripts.remove(script)
            return script

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                script = fake._next(body)
                if script is None:
                    self._error(500, "the fake server has no script for this request")
                elif script.status != 200:
                    self._error(script.status, f"scripted {script.status}", script.headers)
                else:
                    try:
                        self._stream(script, body.get("model", "fake"))
                    except (BrokenPipeError, ConnectionResetError):
                        fake.disconnected.set()

            def _error(
                self, code: int, message: str, headers: dict[str, str] | None = None
            ) -> None:
                payload = json.dumps({"error": {"message": message, "type": "server_error"}})
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload.encode())

            def _event(self, data: dict[str, Any] | str) -> None:
                line = data if isinstance(data, str) else json.dumps(data)
                payload = f"data: {line}\n\n".encode()
                self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                self.wfile.flush()

            def _stream(self, script: Script, model: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
                base["created"] = int(time.time())
                for n, delta in enumerate(script.deltas):
                    if n == script.stall_after:
                        self._wait_for_hangup()
                        return
                    if n == script.error_after:
                        self._event(
                            {"error": {"message": "upstream exploded", "type": "server_error"}}
                        )
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    time.sleep(script.delay_s)
                    choice = {"index": 0, "delta": delta, "finish_reason": None}
                    self._event({**base, "choices": [choice]})
                finish = {"index": 0, "delta": {}, "finish_reason": script.finish_reason}
                self._event({**base, "choices": [finish]})
                if script.usage:
                    prompt, completion = script.usage
                    usage = {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    }
                    self._event({**base, "choices": [], "usage": usage})
                self._event("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _wait_for_hangup(self) -> None:
                # Poll with keep-alive comments until the client closes the connection.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    payload = b": keep-alive\n\n"
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.02)

        return Handler
