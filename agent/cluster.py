"""Several server processes as one service, through Redis.

With ``QUARTET_REDIS_URL`` set, every process (hypercorn worker or host) joins:

- **Live events.** The process that runs a turn publishes each logged frame
  on ``quartet:events:<session>``; every other process relays it to its own
  clients of that session, under the same seq. A relayed frame that skips
  seqs (a message Redis dropped, or a client that joined mid-stream) is
  preceded by the missing frames, read from the event log once the turn's
  process has flushed them.
- **The turn lease.** ``quartet:turn:<session>`` (``SET NX`` with a TTL that
  a running turn keeps renewing) is the one-turn-per-session rule across
  processes. Releasing it also records the session's last seq, so the next
  turn, on any process, numbers on from there. A process that dies leaves
  its leases to expire; any process then closes those turns (``interrupted``).
- **Control.** ``quartet:control`` carries what a client sent to one process
  for a turn that runs on another (``cancel``, replies to open requests), and
  skill changes, so every process routes with the same skills.

Publishing goes through one task and one connection in order, so a turn's
frames, and the release of its lease after its last frame, reach Redis in
the order they happened; the frames of a session queued together go as one
message, so a fast stream costs Redis (and every listener) far fewer messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import redis.asyncio as redis

log = logging.getLogger(__name__)

EVENTS = "quartet:events:"
CONTROL = "quartet:control"
LEASE = "quartet:turn:"
LAST_SEQ = "quartet:seq:"
#: How long a process that wants the lease keeps trying (a turn that just
#: ended on another process releases it right after its last frame).
ACQUIRE_PATIENCE_S = 0.2

# Compare-and-delete: only the holder releases a lease, and records the last seq.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
    redis.call('set', KEYS[2], ARGV[2])
    return 1
end
return 0
"""
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

EventHandler = Callable[[str, str], Awaitable[None]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Cluster:
    """This process's membership: publishing, relaying, leases and control messages.

    :param lease_s: how long a lease outlives a process that stopped renewing it.
    """

    def __init__(self, url: str, *, lease_s: float = 10.0) -> None:
        self.url = url
        self.lease_s = lease_s
        self.node = uuid.uuid4().hex[:12]
        self.redis = redis.from_url(url, decode_responses=True)
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self._leases: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, on_event: EventHandler, on_control: ControlHandler) -> None:
        await self.redis.ping()
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        # Subscribed before start() returns: nothing published after it is missed.
        await pubsub.psubscribe(f"{EVENTS}*")
        await pubsub.subscribe(CONTROL)
        self._tasks = [
            asyncio.create_task(self._listen(pubsub, on_event, on_control), name="cluster-listen"),
            asyncio.create_task(self._publish_loop(), name="cluster-publish"),
            asyncio.create_task(self._renew_loop(), name="cluster-renew"),
        ]

    async def stop(self) -> None:
        # Let queued frames and releases go out before closing, unless Redis is gone.
        try:
            await asyncio.wait_for(self._queue.join(), 5)
        except TimeoutError:
            log.warning("Redis took the last %d messages too long; closing", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        await self.redis.aclose()

    # ── live events ──

    def forward(self, session_id: str, seq: int, frame: str) -> None:
        """Publish a logged frame to the other processes (in order, without waiting).

        The session's last seq is recorded with it: a process whose client
        joins now numbers its view from there, not from the log written behind.
        """
        self._queue.put_nowait(("publish", (session_id, seq, frame)))

    async def _listen(
        self, pubsub: Any, on_event: EventHandler, on_control: ControlHandler
    ) -> None:
        async for message in pubsub.listen():
            try:
                if message["channel"] == CONTROL:
                    payload = json.loads(message["data"])
                    if payload.pop("node") != self.node:
                        await on_control(payload)
                    continue
                node, _, frames = message["data"].partition("\n")
                if node != self.node:
                    session_id = message["channel"].removeprefix(EVENTS)
                    for frame in frames.split("\n"):
                        await on_event(session_id, frame)
            except Exception:
                log.exception("failed to handle a cluster message on %s", message.get("channel"))

    async def _publish_loop(self) -> None:
        while True:
            commands = [await self._queue.get()]
            while not self._queue.empty():
                commands.append(self._queue.get_nowait())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    self._pipeline(pipe, commands)
                    await pipe.execute()
            except Exception:
                log.exception("could not publish %d messages to Redis", len(commands))
            finally:
                for _ in commands:
                    self._queue.task_done()

    def _pipeline(self, pipe: Any, commands: list[tuple[str, tuple[Any, ...]]]) -> None:
        """One message per session for the frames queued together (a frame is one line of
        JSON), each release after the frames queued before it."""
        frames: dict[str, list[str]] = {}
        last_seq: dict[str, int] = {}

        def flush() -> None:
            for session_id, batch in frames.items():
                pipe.set(f"{LAST_SEQ}{session_id}", last_seq[session_id])
                pipe.publish(f"{EVENTS}{session_id}", "\n".join([self.node, *batch]))
            frames.clear()

        for kind, args in commands:
            if kind == "publish":
                session_id, seq, frame = args
                frames.setdefault(session_id, []).append(frame)
                last_seq[session_id] = seq
            else:
                flush()
                pipe.eval(RELEASE, 2, *args)
        flush()

    # ── control ──

    async def control(self, kind: str, **fields: Any) -> None:
        """Tell the other processes: ``cancel``, ``reply`` or ``skill``."""
        await self.redis.publish(CONTROL, json.dumps({"kind": kind, "node": self.node, **fields}))

    # ── the turn lease ──

    async def acquire(self, session_id: str, turn_id: str, *, patience_s: float = 0) -> bool:
        """Take the session's turn lease; ``False`` when another turn holds it."""
        token = f"{self.node}:{turn_id}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(patience_s, ACQUIRE_PATIENCE_S)
        while True:
            if await self.redis.set(f"{LEASE}{session_id}", token, nx=True, px=self._ttl_ms):
                self._leases[session_id] = token
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)

    def release(self, session_id: str, last_seq: int) -> None:
        """Give the lease back after the turn's last frame, recording the session's last seq."""
        token = self._leases.pop(session_id, None)
        if token is not None:
            keys = (f"{LEASE}{session_id}", f"{LAST_SEQ}{session_id}")
            self._queue.put_nowait(("release", (*keys, token, last_seq)))

    async def holder(self, session_id: str) -> str | None:
        """Who runs the session's turn (``node:turn_id``), or ``None``."""
        return await self.redis.get(f"{LEASE}{session_id}")

    async def last_seq(self, session_id: str) -> int:
        """The last seq any process published for the session; 0 when none did."""
        return int(await self.redis.get(f"{LAST_SEQ}{session_id}") or 0)

    @property
    def _ttl_ms(self) -> int:
        return int(self.lease_s * 1000)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for session_id, token in list(self._leases.items()):
                try:
                    renewed = await self.redis.eval(
                        RENEW, 1, f"{LEASE}{session_id}", token, self._ttl_ms
                    )
                except Exception:
                    log.exception("could not renew the turn lease of session %s", session_id)
                    continue
                if not renewed and self._leases.get(session_id) == token:
                    log.error("lost the turn lease of session %s", session_id)
