"""Streaming and ping throughput: Quartet against a minimal Quart+hypercorn app, same run.

    .venv/bin/python bench/bench_stream.py [--tokens 20000] [--pings 2000] [--rounds 3]
        [--backend sqlite|postgres+redis]

Both servers run under hypercorn on loopback with the same client (websockets).
Quartet streams a demo answer of N words with event persistence on
(write-behind) in SQLite, or in PostgreSQL with every frame also published
to Redis (servers started for the run, as the tests do); the baseline sends
N token-shaped frames. Reported: the median over rounds, and Quartet / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.server import QuartetServer
from tests.services import PostgresServer, RedisServer


async def stream_quartet(server: QuartetServer, session_id: str, tokens: int) -> tuple[float, int]:
    url = f"{server.base_ws_url}/api/v1/chat/ws/{session_id}?api_key={server.api_key}"
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        await ws.recv()
        frames = 0
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": f"go [[lorem:{tokens}]]"}))
        while True:
            frame = json.loads(await ws.recv())
            frames += 1
            if frame["type"] in ("final_answer", "error"):
                assert frame["type"] == "final_answer", frame
                return time.perf_counter() - start, frames


async def stream_baseline(server: QuartetServer, tokens: int) -> tuple[float, int]:
    async with websockets.connect(f"{server.base_ws_url}/ws", compression=None) as ws:
        await ws.recv()
        frames = 0
        start = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "n": tokens}))
        while True:
            frame = json.loads(await ws.recv())
            frames += 1
            if frame["type"] == "final_answer":
                return time.perf_counter() - start, frames


async def pings(url: str, count: int) -> float:
    async with websockets.connect(url, compression=None) as ws:
        await ws.recv()
        start = time.perf_counter()
        for _ in range(count):
            await ws.send('{"type":"ping"}')
            while json.loads(await ws.recv())["type"] != "pong":
                pass
        return count / (time.perf_counter() - start)


def create_session(quartet: QuartetServer) -> str:
    with httpx.Client(base_url=quartet.base_url, headers={"X-API-Key": quartet.api_key}) as http:
        return http.post("/api/v1/sessions", json={}).json()["id"]


async def run(
    args: argparse.Namespace, quartet: QuartetServer, baseline: QuartetServer, session_id: str
) -> dict:
    q_url = f"{quartet.base_ws_url}/api/v1/chat/ws/{session_id}?api_key={quartet.api_key}"
    results: dict[str, list[float]] = {
        k: [] for k in ("q_tok", "b_tok", "q_frames", "q_ping", "b_ping")
    }
    for _ in range(args.rounds):
        elapsed, frames = await stream_quartet(quartet, session_id, args.tokens)
        results["q_tok"].append(args.tokens / elapsed)
        results["q_frames"].append(frames)
        elapsed, _ = await stream_baseline(baseline, args.tokens)
        results["b_tok"].append(args.tokens / elapsed)
        results["q_ping"].append(await pings(q_url, args.pings))
        results["b_ping"].append(await pings(f"{baseline.base_ws_url}/ws", args.pings))
    return {k: statistics.median(v) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres+redis"], default="sqlite")
    args = parser.parse_args()
    env = {"QUARTET_PLUGINS_FILE": "none.toml"}
    services: list[PostgresServer | RedisServer] = []
    if args.backend == "postgres+redis":
        postgres, redis = PostgresServer(), RedisServer()
        for service in (postgres, redis):
            if reason := service.unavailable():
                sys.exit(reason)
            services.append(service.start())
        env["QUARTET_DATABASE_URL"] = postgres.create_database("bench")
        env["QUARTET_REDIS_URL"] = redis.url
    with tempfile.TemporaryDirectory() as tmp:
        quartet = QuartetServer(Path(tmp) / "q", env=env)
        baseline = QuartetServer(Path(tmp) / "b", app="bench.baseline_app:app")
        (Path(tmp) / "q").mkdir()
        (Path(tmp) / "b").mkdir()
        quartet.start()
        baseline.start()
        try:
            r = asyncio.run(run(args, quartet, baseline, create_session(quartet)))
        finally:
            quartet.stop()
            baseline.stop()
            for service in services:
                service.stop()
    print(
        f"backend: {args.backend}, tokens per turn: {args.tokens}, pings: {args.pings}, "
        f"rounds: {args.rounds} (medians)"
    )
    rows = [
        ("stream tokens/s", r["q_tok"], r["b_tok"]),
        ("ping round trips/s", r["q_ping"], r["b_ping"]),
    ]
    print("| measure | Quartet | baseline | ratio |")
    print("|---|---|---|---|")
    for name, ours, base in rows:
        print(f"| {name} | {ours:,.0f} | {base:,.0f} | {ours / base:.2f} |")
    print(f"| frames for {args.tokens} tokens | {r['q_frames']:,.0f} | {args.tokens + 1:,} | |")


if __name__ == "__main__":
    main()
