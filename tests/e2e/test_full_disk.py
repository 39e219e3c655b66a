"""A real full disk under a real server: the data dir on a small tmpfs that fills up.

Needs root and permission to mount tmpfs (the build machine has both); skips,
loudly, where mounting is refused.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import WSChatHelper, connect, is_type, recv_until, send
from tests.e2e.server import QuartetServer

KEY = "full-disk-key-0123456789"
TURN_END = is_type("final_answer", "error")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"FULL-DISK TEST NOT RUN: cannot mount a tmpfs here: {done.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; the file that did it is returned, to be freed."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


def wait_ready(client: httpx.Client, timeout_s: float = 30) -> None:
    """Poll /readyz until the writer has caught up (there is no event to await over REST)."""
    deadline = time.monotonic() + timeout_s
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "storage never recovered"
        time.sleep(0.1)


def test_a_full_disk_ends_turns_retryably_and_the_log_recovers(small_disk: Path) -> None:
    server = QuartetServer(small_disk, api_key=KEY).start()
    client = httpx.Client(base_url=server.base_url, headers={"X-API-Key": KEY}, timeout=30)
    helper = WSChatHelper(server.base_ws_url, KEY)
    try:
        sid = client.post("/api/v1/sessions", json={}).json()["id"]

        async def chat(content: str) -> list[dict]:
            ws, _ = await connect(helper, sid)
            async with ws:
                await send(ws, {"type": "message", "content": content})
                return await recv_until(ws, TURN_END, timeout=60)

        assert asyncio.run(chat("before"))[-1]["type"] == "final_answer"

        async def fill_mid_turn() -> tuple[list[dict], dict, Path]:
            ws, _ = await connect(helper, sid)
            async with ws:
                await send(ws, {"type": "message", "content": "[[lorem:50000]] during"})
                frames = await recv_until(ws, is_type("token"))
                filler = await asyncio.to_thread(fill, small_disk)
                frames += await recv_until(ws, TURN_END, timeout=60)
                # While storage fails, a new message is refused, retryably.
                await send(ws, {"type": "message", "content": "refused"})
                refused = (await recv_until(ws, is_type("error")))[-1]
            return frames, refused, filler

        during, refused_turn, filler = asyncio.run(fill_mid_turn())
        end = during[-1]
        assert (end["type"], end["code"], end["retryable"]) == ("error", "unavailable", True), (
            server.output()[-4000:]
        )
        assert end["turn_id"] == during[0]["turn_id"]
        assert refused_turn == refused_turn | {"code": "unavailable", "retryable": True}
        assert "turn_id" not in refused_turn
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        refused = client.post("/api/v1/sessions", json={})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "unavailable"

        filler.unlink()
        wait_ready(client)
        after = asyncio.run(chat("after"))
        assert after[-1]["type"] == "final_answer"
        messages = client.get(f"/api/v1/sessions/{sid}/messages").json()["items"]
        events = client.get(f"/api/v1/sessions/{sid}/events", params={"limit": 10_000}).json()
    finally:
        client.close()
        server.stop()
    # The stopped turn is kept, user row first, with status error; nothing else half written.
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "error"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    stored_end = [e for e in events["items"] if e.get("turn_id") == end["turn_id"]][-1]
    assert stored_end == end
    seqs = [e["seq"] for e in events["items"]]
    assert seqs == sorted(set(seqs))
    log = server.output()
    assert log.count("agent.eventlog: storage failed") == 1, log[-3000:]
    assert "storage recovered" in log
    assert "Task exception was never retrieved" not in log
    assert "UNIQUE constraint failed" not in log
