"""Fan-out cost: one turn watched by 1, 10 and 100 clients of the same session.

    .venv/bin/python bench/bench_fanout.py [--tokens 5000] [--clients 1,10,100] [--rounds 3]

One Quartet server (hypercorn, SQLite, event log on). For each client count,
that many WebSockets join one session, one of them sends a demo message of N
words, and the clock stops when every client has its ``final_answer`` (and
has checked that its tokens add up to it). Reported: the median over rounds
of the time per turn, the tokens per second the *turn* ran at, and that rate
relative to the one-client run of the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_stream import create_session
from tests.e2e.server import QuartetServer


async def watch(ws) -> tuple[int, float]:
    """Read one turn to its end; returns the frames it took and its length on the server.

    The server stamps every frame with ``ts`` when it publishes it, so the
    first and last frames' stamps time the turn itself, whatever the clients'
    speed.
    """
    frames, text, first = 0, "", None
    while True:
        frame = json.loads(await ws.recv())
        frames += 1
        first = first or datetime.fromisoformat(frame["ts"])
        if frame["type"] == "token":
            text += frame["content"]
        elif frame["type"] in ("final_answer", "error"):
            assert frame["type"] == "final_answer" and frame["content"] == text, frame
            return frames, (datetime.fromisoformat(frame["ts"]) - first).total_seconds()


async def one_turn(quartet: QuartetServer, clients: int, tokens: int) -> tuple[float, float, float]:
    session_id = create_session(quartet)
    url = f"{quartet.base_ws_url}/api/v1/chat/ws/{session_id}?api_key={quartet.api_key}"
    sockets = [
        await websockets.connect(url, compression=None, max_size=None) for _ in range(clients)
    ]
    try:
        for ws in sockets:
            await ws.recv()  # connected
        start = time.perf_counter()
        await sockets[0].send(json.dumps({"type": "message", "content": f"go [[lorem:{tokens}]]"}))
        watched = await asyncio.gather(*(watch(ws) for ws in sockets))
        delivered = time.perf_counter() - start
        return watched[0][1], delivered, statistics.mean(frames for frames, _ in watched)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def run(args: argparse.Namespace, quartet: QuartetServer) -> list[tuple[int, ...]]:
    rows = []
    for clients in args.clients:
        results = [await one_turn(quartet, clients, args.tokens) for _ in range(args.rounds)]
        rows.append(
            (clients, *(statistics.median(column) for column in zip(*results, strict=True)))
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument(
        "--clients", type=lambda s: [int(n) for n in s.split(",")], default=[1, 10, 100]
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "q"
        data.mkdir()
        quartet = QuartetServer(data, env={"QUARTET_PLUGINS_FILE": "none.toml"}).start()
        try:
            rows = asyncio.run(run(args, quartet))
        finally:
            quartet.stop()
    print(f"tokens per turn: {args.tokens}, rounds: {args.rounds} (medians)")
    print(
        "| clients | turn on the server (s) | turn tokens/s | vs 1 client "
        "| all clients done (s) | frames per client |"
    )
    print("|---|---|---|---|---|---|")
    base = args.tokens / rows[0][1]
    for clients, turn_s, delivered_s, frames in rows:
        rate = args.tokens / turn_s
        print(
            f"| {clients} | {turn_s:.2f} | {rate:,.0f} | {rate / base:.2f} "
            f"| {delivered_s:.2f} | {frames:,.0f} |"
        )


if __name__ == "__main__":
    main()
