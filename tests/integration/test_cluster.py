"""Cluster membership against a real Redis: leases, ordered publishing, control messages,
and a Redis that restarts under them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import agent.cluster as cluster_module
from agent.cluster import Cluster, ClusterUnavailable, LeaseGrace, compact
from tests.services import RedisServer


class Node:
    """A cluster member that records what reaches it."""

    def __init__(self, url: str, lease_s: float = 1.0) -> None:
        self.cluster = Cluster(url, lease_s=lease_s)
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.controls: asyncio.Queue[dict] = asyncio.Queue()
        self.rejoined = asyncio.Event()

    async def start(self) -> Node:
        await self.cluster.start(self.on_event, self.on_control, self.on_rejoin)
        return self

    async def on_event(self, session_id: str, frame: str) -> None:
        await self.events.put((session_id, frame))

    async def on_control(self, message: dict) -> None:
        await self.controls.put(message)

    async def on_rejoin(self) -> None:
        self.rejoined.set()

    async def seqs_until(self, last: int, timeout: float = 10) -> list[int]:
        """The seqs of the frames that reach this node, up to *last*."""
        seqs: list[int] = []
        while not seqs or seqs[-1] < last:
            _, frame = await asyncio.wait_for(self.events.get(), timeout)
            seqs.append(json.loads(frame)["seq"])
        return seqs


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    cleaner = Cluster(redis_server.url)
    await cleaner.redis.flushdb()
    await cleaner.redis.aclose()
    pair = (await Node(redis_server.url).start(), await Node(redis_server.url).start())
    yield pair
    for node in pair:
        await node.cluster.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to restart without disturbing the others."""
    server = RedisServer()
    if reason := server.unavailable():
        pytest.skip(f"NO REDIS: {reason}")
    yield server.start()
    server.stop()


@pytest.fixture
async def restartable(own_redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    pair = (await Node(own_redis.url).start(), await Node(own_redis.url).start())
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
    assert await b.cluster.acquire("s1", "turn-b")
    # A cancel goes to the process whose turn holds the lease.
    await a.cluster.control("cancel", session_id="s1")
    assert await asyncio.wait_for(b.controls.get(), 5) == {"kind": "cancel", "session_id": "s1"}
    # With no turn running anywhere, there is nobody to tell.
    await a.cluster.control("cancel", session_id="s2")
    await b.cluster.control("skill", owner_id=1, name="x")
    assert await asyncio.wait_for(a.controls.get(), 5) == {
        "kind": "skill",
        "owner_id": 1,
        "name": "x",
    }
    assert a.controls.empty() and b.controls.empty()


# ── Redis restarts ──


async def test_after_a_restart_both_subscriptions_come_back(
    restartable, own_redis: RedisServer
) -> None:
    a, b = restartable
    a.cluster.forward("s1", 1, json.dumps({"seq": 1}))
    assert await b.seqs_until(1) == [1]
    own_redis.stop()
    own_redis.start()
    # Each node subscribes again and says so (the bus then catches its clients up).
    await asyncio.wait_for(asyncio.gather(a.rejoined.wait(), b.rejoined.wait()), 10)
    a.cluster.forward("s1", 2, json.dumps({"seq": 2}))
    assert await b.seqs_until(2) == [2]
    await b.cluster.control("skill", owner_id=1, name="x")
    assert await asyncio.wait_for(a.controls.get(), 5) == {
        "kind": "skill",
        "owner_id": 1,
        "name": "x",
    }
    assert await acquire_after_the_grace(a, "s1")
    await b.cluster.control("cancel", session_id="s1")
    assert await asyncio.wait_for(a.controls.get(), 5) == {"kind": "cancel", "session_id": "s1"}


async def test_what_was_published_while_redis_was_down_goes_out_after(
    restartable, own_redis: RedisServer
) -> None:
    a, b = restartable
    assert await a.cluster.acquire("s1", "turn-a")
    a.cluster.forward("s1", 1, json.dumps({"seq": 1}))
    assert await b.seqs_until(1) == [1]
    own_redis.kill()
    for seq in range(2, 501):
        a.cluster.forward("s1", seq, json.dumps({"seq": seq}))
    a.cluster.release("s1", 500)
    own_redis.start()
    # Sent once Redis is back: the session's last seq is recorded, the lease released.
    await asyncio.wait_for(a.cluster._queue.join(), 10)
    assert await b.cluster.last_seq("s1") == 500
    assert await acquire_after_the_grace(b, "s1")
    # The frames were kept as the last one only (the others are in the log): a node
    # subscribed again by then relays it, and fills the gap from the log.
    await asyncio.wait_for(b.rejoined.wait(), 10)
    a.cluster.forward("s2", 1, json.dumps({"seq": 1}))
    received = await b.seqs_until(1)
    assert received in ([1], [500, 1]), received


async def acquire_after_the_grace(node: Node, session_id: str, timeout: float = 5) -> bool:
    """Ask for the lease until the grace is over (nothing announces its end; poll it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await node.cluster.acquire(session_id, "turn-late")
        except LeaseGrace:
            assert time.monotonic() < deadline, "the grace never ended"
            await asyncio.sleep(0.05)


async def test_a_lease_a_restarted_redis_lost_goes_back_to_its_holder(
    restartable, own_redis: RedisServer
) -> None:
    a, b = restartable
    assert await a.cluster.acquire("s1", "turn-a")
    own_redis.stop()
    own_redis.start()
    # b asks first: for a lease TTL no lease is given, while a takes its own back.
    started = time.monotonic()
    with pytest.raises(LeaseGrace):
        await b.cluster.acquire("s1", "turn-b")
    assert not await acquire_after_the_grace(b, "s1")
    assert 0.5 < time.monotonic() - started < 3, time.monotonic() - started
    assert await b.cluster.holder("s1") == f"{a.cluster.node}:turn-a"
    # Other sessions are free again once the grace is over.
    assert await b.cluster.acquire("s2", "turn-b")
    # And a keeps renewing it.
    assert not await b.cluster.acquire("s1", "turn-b", patience_s=2)


async def test_a_process_that_joins_a_restarted_redis_first_does_not_cancel_the_grace(
    restartable, own_redis: RedisServer
) -> None:
    a, b = restartable
    assert await a.cluster.acquire("s1", "turn-a")
    own_redis.stop()
    own_redis.start()
    newcomer = await Node(own_redis.url).start()  # makes the new epoch, knowing no older one
    try:
        with pytest.raises(LeaseGrace):
            await b.cluster.acquire("s1", "turn-b")
        assert not await acquire_after_the_grace(b, "s1")
        assert await b.cluster.holder("s1") == f"{a.cluster.node}:turn-a"
        assert not await newcomer.cluster.acquire("s1", "turn-c")
    finally:
        await newcomer.cluster.stop()


async def test_while_redis_is_down_callers_are_told_soon_and_nothing_crashes(
    restartable, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.cluster")
    a, b = restartable
    assert await a.cluster.acquire("s1", "turn-a")
    own_redis.stop()
    a.cluster.forward("s1", 1, json.dumps({"seq": 1}))  # queued, never raises
    for call in (
        lambda: b.cluster.acquire("s2", "turn-b"),
        lambda: b.cluster.holder("s1"),
        lambda: b.cluster.control("cancel", session_id="s1"),
    ):
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable):
            await call()
        assert time.monotonic() - started < 2
    assert await b.cluster.last_seq("s1") == 0  # the log and the database know better
    await b.cluster.control("skill", owner_id=1, name="x")  # stored already: a warning only
    own_redis.start()
    await asyncio.wait_for(asyncio.gather(a.rejoined.wait(), b.rejoined.wait()), 10)
    await asyncio.wait_for(a.cluster._queue.join(), 10)
    assert await b.cluster.last_seq("s1") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], messages
    for node in (a, b):
        assert node.cluster._down_since is None
    assert sum(m.startswith("Redis unreachable") for m in messages) == 2, messages
    assert sum(m.startswith("Redis reachable again") for m in messages) == 2, messages


def test_compact_keeps_every_release_and_each_runs_last_frame() -> None:
    commands = [
        ("publish", ("s1", 1, "f1")),
        ("publish", ("s2", 1, "g1")),
        ("publish", ("s1", 2, "f2")),
        ("release", ("s1", "t1", 2)),
        ("publish", ("s1", 3, "f3")),
        ("publish", ("s1", 4, "f4")),
        ("publish", ("s2", 2, "g2")),
    ]
    assert compact(commands) == [
        ("publish", ("s1", 2, "f2")),
        ("release", ("s1", "t1", 2)),
        ("publish", ("s1", 4, "f4")),
        ("publish", ("s2", 2, "g2")),
    ]


class Proxy:
    """A TCP proxy to Redis whose open connections can be made to go silent, as a
    host that vanished does: nothing more passes, and nothing says so."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silenced: list[asyncio.Event] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    def silence(self) -> None:
        for silent in self.silenced:
            silent.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]
        silent = asyncio.Event()
        self.silenced.append(silent)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if silent.is_set():
                    continue  # swallowed
                dst.write(data)
                await dst.drain()

        with contextlib.suppress(OSError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def test_a_subscription_that_goes_silent_is_noticed_and_made_again(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster_module, "PING_EVERY_S", 0.2)
    proxy = await Proxy(own_redis.port).start()
    a, b = await Node(own_redis.url).start(), await Node(proxy.url).start()
    try:
        proxy.silence()  # b's connections now lead nowhere, and do not close
        await asyncio.wait_for(b.rejoined.wait(), 5)  # a ping went unanswered
        a.cluster.forward("s1", 1, json.dumps({"seq": 1}))
        assert await b.seqs_until(1) == [1]
    finally:
        await a.cluster.stop()
        await b.cluster.stop()
        await proxy.stop()
