"""A WebSocket client on a bare socket, for tests that must control reading itself.

Unlike a client library it answers no ping and reads nothing unless asked,
so a test can be a client that vanished or one that stopped reading.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from pathlib import Path


class RawWebSocket:
    TEXT = 0x1
    CLOSE = 0x8
    PING = 0x9

    def __init__(self, sock: socket.socket, status: int, buffered: bytes) -> None:
        self.sock = sock
        self.status = status
        self._buffer = buffered

    @classmethod
    def connect(cls, port: int, path: str, *, receive_buffer: int | None = None) -> RawWebSocket:
        """Open a socket and send the upgrade request; :attr:`status` is the answer's status.

        :param receive_buffer: ``SO_RCVBUF`` to ask for, before connecting.
        """
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: nothing after the head is taken
            if not chunk:
                break
            head += chunk
        status = int(head.split(b" ", 2)[1]) if head else 0
        return cls(sock, status, b"")

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(n - len(self._buffer), 4096))
            if not chunk:
                raise ConnectionError("closed by the server")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def read_frame(self, timeout: float = 10) -> tuple[int, bytes]:
        """The next frame's opcode and payload (server frames are not masked)."""
        self.sock.settimeout(timeout)
        first, second = self._read_exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        return first & 0x0F, self._read_exactly(length)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x80 | self.TEXT])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def server_side_open(self) -> bool:
        """Whether the server's end of this connection is still a socket (Linux, same host).

        A connection the kernel gave up on sends nothing to the client, which
        cannot tell; the server's end is then gone from ``/proc/net/tcp``.
        """
        local, remote = self.sock.getsockname()[1], self.sock.getpeername()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            ours, theirs = (int(a.split(":")[1], 16) for a in fields[1:3])
            if (ours, theirs) == (remote, local):
                return True
        return False

    def close(self) -> None:
        self.sock.close()
