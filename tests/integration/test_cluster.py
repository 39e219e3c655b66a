"""Cluster membership against a real Redis: leases, ordered publishing, control messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from agent.cluster import Cluster
from tests.services import RedisServer


class Node:
    """A cluster member that records what reaches it."""

    def __init__(self, url: str, lease_s: float = 1.0) -> None:
        self.cluster = Cluster(url, lease_s=lease_s)
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.controls: asyncio.Queue[dict] = asyncio.Queue()

    async def on_event(self, session_id: str, frame: str) -> None:
        await self.events.put((session_id, frame))

    async def on_control(self, message: dict) -> None:
        await self.controls.put(message)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    cleaner = Cluster(redis_server.url)
    await cleaner.redis.flushdb()
    await cleaner.redis.aclose()
    pair = (Node(redis_server.url), Node(redis_server.url))
    for node in pair:
        await node.cluster.start(node.on_event, node.on_control)
    yield pair
    for node in pair:
        await node.cluster.stop()


async def test_one_lease_per_session_released_with_the_last_seq(nodes) -> None:
    a, b = nodes
    assert await a.cluster.acquire("s1", "turn-a")
    assert not await b.cluster.acquire("s1", "turn-b")
    assert await b.cluster.holder("s1") == f"{a.cluster.node}:turn-a"
    assert await b.cluster.acquire("s2", "turn-b")  # another session is free

    a.cluster.release("s1", 41)
    # The release travels behind a's queued frames; b gets the lease once it lands.
    assert await b.cluster.acquire("s1", "turn-b", patience_s=5)
    assert await b.cluster.last_seq("s1") == 41


async def test_a_running_turn_keeps_its_lease_past_the_ttl(nodes) -> None:
    a, b = nodes
    assert await a.cluster.acquire("s1", "turn-a")
    ttl_ms = await a.cluster.redis.pttl("quartet:turn:s1")
    assert 0 < ttl_ms <= 1000
    # Renewed every third of the TTL: after three TTLs it is still a's.
    assert not await b.cluster.acquire("s1", "turn-b", patience_s=3)
    assert await b.cluster.holder("s1") == f"{a.cluster.node}:turn-a"


async def test_a_dead_nodes_lease_expires(nodes, redis_server) -> None:
    _, b = nodes
    dead = Cluster(redis_server.url, lease_s=0.3)
    assert await dead.acquire("s1", "turn-dead")  # never started, so never renewed
    assert await b.cluster.acquire("s1", "turn-b", patience_s=3)
    await dead.redis.aclose()


async def test_frames_reach_the_other_node_in_order_and_not_their_own(nodes) -> None:
    a, b = nodes
    for seq in range(1, 201):
        a.cluster.forward("s1", seq, json.dumps({"seq": seq}))
    received = [await asyncio.wait_for(b.events.get(), 5) for _ in range(200)]
    assert [json.loads(frame)["seq"] for _, frame in received] == list(range(1, 201))
    assert {session for session, _ in received} == {"s1"}
    assert await b.cluster.last_seq("s1") == 200
    assert a.events.empty()


async def test_control_messages_reach_the_others_only(nodes) -> None:
    a, b = nodes
    await a.cluster.control("cancel", session_id="s1")
    assert await asyncio.wait_for(b.controls.get(), 5) == {"kind": "cancel", "session_id": "s1"}
    await b.cluster.control("skill", owner_id=1, name="x")
    assert await asyncio.wait_for(a.controls.get(), 5) == {
        "kind": "skill",
        "owner_id": 1,
        "name": "x",
    }
    assert a.controls.empty() and b.controls.empty()
