"""No input from one session may stall the others.

While one client sends something hostile, a client of another session pings
back to back; every ping must be answered well within a second. This is a
liveness check, not a benchmark: the bound is generous, and before the fixes
each of these held the event loop for seconds to minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.e2e.conftest import connect, create_session_via_api, is_type, recv_until, send

#: A ping answered later than this means the event loop was held.
LIVE = 1.0
TWO_MIB = 2 * 1024 * 1024


def tool(expression: str) -> dict:
    return {"type": "message", "content": f'[[tool:calculator {{"expression": "{expression}"}}]]'}


# Each hostile input: what the attacker sends, and the frame type that shows it was handled.
HOSTILE_FRAMES = {
    "calculator round(1, -2*10**7)": (tool("round(1, -2*10**7)"), "final_answer"),
    "calculator round(1, -10**8)": (tool("round(1, -10**8)"), "final_answer"),
    "calculator 9**9**9": (tool("9**9**9"), "final_answer"),
    "demo directive regex": ({"type": "message", "content": "[[a:" * 8192}, "final_answer"),
    "5,000-deep JSON": ('{"type": "ping", "x": ' + "[" * 5000 + "]" * 5000 + "}", "error"),
    "2 MiB of JSON values": (
        '{"type": "ping", "x": [' + "0," * (TWO_MIB // 2 - 20) + "0]}",
        "error",
    ),
    "2 MiB of escaped quotes": (
        '{"type": "message", "content": "' + '\\"' * (TWO_MIB // 2 - 20) + '"}',
        "error",
    ),
}


class Pinger:
    """Pings one session back to back, keeping each round trip, until stopped."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.round_trips: list[float] = []
        self.rounds = asyncio.Condition()
        self._stop = False

    async def run(self) -> None:
        while not self._stop:
            started = time.perf_counter()
            await send(self.ws, {"type": "ping"})
            await recv_until(self.ws, is_type("pong"), timeout=30)
            async with self.rounds:
                self.round_trips.append(time.perf_counter() - started)
                self.rounds.notify_all()

    async def wait_for_rounds(self, count: int) -> None:
        async with self.rounds:
            await self.rounds.wait_for(lambda: len(self.round_trips) >= count)

    def stop(self) -> None:
        self._stop = True


async def while_pinging(ws_helper, api_client, attack: Callable[[], Awaitable[None]]) -> Pinger:
    """Run *attack* while another session is pinged; return the pinger's record."""
    observer, _ = await connect(ws_helper, create_session_via_api(api_client))
    async with observer:
        pinger = Pinger(observer)
        pinging = asyncio.create_task(pinger.run())
        try:
            await pinger.wait_for_rounds(1)
            before = len(pinger.round_trips)
            await attack()
            # At least one full round after the attack was handled.
            await pinger.wait_for_rounds(before + 2)
        finally:
            pinger.stop()
            await asyncio.wait_for(pinging, 30)
    return pinger


def assert_live(pinger: Pinger) -> None:
    slowest = max(pinger.round_trips)
    assert slowest < LIVE, f"another session's ping took {slowest:.2f} s"


@pytest.mark.parametrize(("frame", "handled"), HOSTILE_FRAMES.values(), ids=HOSTILE_FRAMES.keys())
async def test_other_sessions_stay_live_during_a_hostile_frame(
    ws_helper, api_client, frame, handled
) -> None:
    attacker, _ = await connect(ws_helper, create_session_via_api(api_client))

    async def attack() -> None:
        await send(attacker, frame)
        last = (await recv_until(attacker, is_type("final_answer", "error"), timeout=60))[-1]
        assert last["type"] == handled, last

    async with attacker:
        pinger = await while_pinging(ws_helper, api_client, attack)
    assert_live(pinger)


async def test_other_sessions_stay_live_during_a_reply_of_trailing_spaces(
    ws_helper, api_client
) -> None:
    """A human reply ends up in the answer text, where the tokenizer used to backtrack."""
    attacker, _ = await connect(ws_helper, create_session_via_api(api_client))

    async def attack() -> None:
        await send(attacker, {"type": "message", "content": "Hi [[ask:Your name?]]"})
        asked = (await recv_until(attacker, is_type("ask_human")))[-1]
        reply = {"type": "human_reply", "request_id": asked["request_id"]}
        await send(attacker, reply | {"content": "Ada" + " " * 30_000})
        final = (await recv_until(attacker, is_type("final_answer", "error"), timeout=60))[-1]
        assert final["type"] == "final_answer", final

    async with attacker:
        pinger = await while_pinging(ws_helper, api_client, attack)
    assert_live(pinger)


async def test_other_sessions_stay_live_during_a_deep_rest_body(
    ws_helper, api_client, quartet_server
) -> None:
    body = ('{"metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}").encode()

    async def attack() -> None:
        async with httpx.AsyncClient(base_url=quartet_server.base_url) as client:
            response = await client.post(
                "/api/v1/sessions",
                content=body,
                headers={"X-API-Key": quartet_server.api_key, "Content-Type": "application/json"},
            )
        assert response.status_code == 400, response.text
        assert json.loads(response.text)["error"]["code"] == "bad_request"

    pinger = await while_pinging(ws_helper, api_client, attack)
    assert_live(pinger)
