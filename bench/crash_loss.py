"""What a kill -9 costs: frames a client saw that the log lost, and whether any seq repeats.

    .venv/bin/python bench/crash_loss.py [--rounds 5] [--words 50000] [--kill-after 5000]

Each round starts a real server (SQLite, default settings unless given with
--env NAME=VALUE), streams a fast demo answer to one client, SIGKILLs the
server group once the client has seen --kill-after frames' worth of seqs,
restarts it, replays the session's log from seq 0 and sends one more message.
Printed per round: seqs the client saw, seqs stored, words the client saw that
the log lost, and whether the restart numbered above everything seen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.server import QuartetServer

KEY = "crash-loss-key-0123456789"


async def stream_until_killed(server: QuartetServer, sid: str, words: int, kill_after: int):
    url = f"{server.base_ws_url}/api/v1/chat/ws/{sid}?api_key={KEY}"
    seen: list[dict] = []
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"go [[lorem:{words}]]"}))
        while not seen or seen[-1]["seq"] < kill_after:
            seen.append(json.loads(await ws.recv()))
        await asyncio.to_thread(server.kill)
        try:
            while True:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except ConnectionClosed:
            pass
    return seen


async def replay_and_chat(server: QuartetServer, sid: str):
    url = f"{server.base_ws_url}/api/v1/chat/ws/{sid}?api_key={KEY}&last_seq=0"
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        connected = json.loads(await ws.recv())
        replay = [json.loads(await ws.recv()) for _ in range(connected["resumed"])]
        await ws.send(json.dumps({"type": "message", "content": "after"}))
        after = []
        while not after or after[-1]["type"] not in ("final_answer", "error"):
            after.append(json.loads(await ws.recv()))
    return replay, after


def one_round(words: int, kill_after: int, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = QuartetServer(Path(tmp), api_key=KEY, env=env).start()
        headers = {"X-API-Key": KEY}
        sid = httpx.post(f"{server.base_url}/api/v1/sessions", json={}, headers=headers).json()
        sid = sid["id"]
        seen = asyncio.run(stream_until_killed(server, sid, words, kill_after))
        server = QuartetServer(Path(tmp), api_key=KEY, env=env).start()
        try:
            replay, after = asyncio.run(replay_and_chat(server, sid))
        finally:
            server.stop()
    seen_text = "".join(f["content"] for f in seen if f["type"] == "token")
    stored_text = "".join(f["content"] for f in replay if f["type"] == "token")
    end = replay[-1]
    return {
        "top_seen": max(f["seq"] for f in seen),
        "top_stored": max((f["seq"] for f in replay[:-1]), default=0),
        "lost_words": len(seen_text[len(stored_text) :].split())
        if seen_text.startswith(stored_text)
        else -1,
        "no_reuse": end["seq"] > max(f["seq"] for f in seen)
        and min(f["seq"] for f in after) > end["seq"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--words", type=int, default=50_000)
    parser.add_argument("--kill-after", type=int, default=5_000)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    print(f"settings: {env or 'defaults'}")
    print("round  seen-seq  stored-seq  lost-words  no-reuse")
    for n in range(args.rounds):
        r = one_round(args.words, args.kill_after, env)
        print(
            f"{n + 1:5}  {r['top_seen']:8}  {r['top_stored']:10}  {r['lost_words']:10}"
            f"  {r['no_reuse']}"
        )


if __name__ == "__main__":
    main()
