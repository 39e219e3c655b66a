"""The baseline: a minimal Quart WebSocket app served by the same hypercorn.

It answers a `message` with as many `token`-shaped JSON frames as asked and a
`final_answer`, and a `ping` with a `pong`, doing nothing else, so the ratio
Quartet / baseline isolates what Quartet adds (routing, turns, seq, event log).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from quart import Quart, websocket

app = Quart(__name__)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.websocket("/ws")
async def ws() -> None:
    await websocket.accept()
    await websocket.send(json.dumps({"type": "connected"}))
    while True:
        frame = json.loads(await websocket.receive())
        if frame["type"] == "ping":
            await websocket.send(json.dumps({"type": "pong"}))
            continue
        n = int(frame["n"])
        for seq in range(1, n + 1):
            await websocket.send(
                json.dumps(
                    {
                        "type": "token",
                        "session_id": "0" * 32,
                        "seq": seq,
                        "ts": datetime.now(UTC).isoformat(),
                        "turn_id": "1" * 32,
                        "content": " lorem",
                    }
                )
            )
        await websocket.send(json.dumps({"type": "final_answer", "seq": n + 1}))
