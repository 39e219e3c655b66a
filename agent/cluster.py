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
- **Control.** ``quartet:control:<node>`` carries what a client sent to one
  process for a turn that runs on another (``cancel``, replies to open
  requests), to the process that holds the turn's lease; ``quartet:control``
  carries skill changes to all, so every process routes with the same skills.

Publishing goes through one task and one connection in order, so a turn's
frames, and the release of its lease after its last frame, reach Redis in
the order they happened; the frames of a session queued together go as one
message, so a fast stream costs Redis (and every listener) far fewer messages.

**When Redis goes away** (a restart, a lost network), nothing here gives up:

- Turns go on; their frames are logged as ever, and what could not be
  published is kept (each session's last frame, and every lease release) and
  sent once Redis is back. Other processes fill the frames between from the log.
- The subscription is made again, on a new connection, with backoff (redis-py's
  ``PubSub`` does not reconnect a ``listen()`` that failed). Once it is, the
  ``on_rejoin`` callback delivers from the log what this process's clients
  missed meanwhile, and the leases this process holds are renewed at once.
- A Redis that restarted without its data has lost every lease. The first
  process to notice (each process knows the ``quartet:epoch`` it joined) opens
  a grace of one lease TTL, ``quartet:lease-grace``: holders take their leases
  back, and nobody else takes one meanwhile (``acquire`` raises
  :class:`LeaseGrace`), so a turn still running is never closed as dead nor
  joined by a second one.
- A lease, a holder or a control message asked for while Redis cannot be
  reached raises :class:`ClusterUnavailable` once :data:`REDIS_PATIENCE_S`
  has passed. The outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent.eventlog import StorageUnavailable

log = logging.getLogger(__name__)

EVENTS = "quartet:events:"
CONTROL = "quartet:control"
LEASE = "quartet:turn:"
LAST_SEQ = "quartet:seq:"
#: Set by the first process to use a Redis; gone when Redis lost its data.
EPOCH = "quartet:epoch"
#: While it lives, a Redis that lost its data gives leases back only to their holders.
GRACE = "quartet:lease-grace"
#: How long a process that wants the lease keeps trying (a turn that just
#: ended on another process releases it right after its last frame).
ACQUIRE_PATIENCE_S = 0.2
#: How long a caller waits for an unreachable Redis before ClusterUnavailable.
REDIS_PATIENCE_S = 1.0
#: How long a subscription may take to be confirmed before it is made again.
SUBSCRIBE_PATIENCE_S = 5.0
#: An idle subscription pings Redis this often, and is made again when a ping goes unanswered.
PING_EVERY_S = 5.0
#: Retries while Redis is unreachable start at the first and double to the second.
BACKOFF_S = (0.05, 0.5)

#: What an unreachable Redis raises (refused, reset, timed out).
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

# Every lease script starts here: KEYS[1] the epoch, KEYS[2] the grace;
# ARGV[1] the epoch this process knows ('' at its start), ARGV[2] a new epoch
# id, ARGV[3] the lease TTL in ms. An epoch is "<id>:<ms it was made>".
_EPOCH = """
local now = redis.call('time')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[3])
local epoch = redis.call('get', KEYS[1])
if not epoch then
    epoch = ARGV[2] .. ':' .. now_ms
    redis.call('set', KEYS[1], epoch)
    if ARGV[1] ~= '' then
        -- Redis lost its data since this process joined, and every lease with it.
        redis.call('set', KEYS[2], epoch, 'PX', ttl)
    end
elseif ARGV[1] ~= '' and epoch ~= ARGV[1] then
    -- A process that joined since made the new epoch: the grace runs from then.
    local age = now_ms - tonumber(string.match(epoch, ':(%d+)$'))
    if age < ttl then
        redis.call('set', KEYS[2], epoch, 'NX', 'PX', ttl - age)
    end
end
"""
JOIN = _EPOCH + "return epoch"
# KEYS[3] the lease, ARGV[4] the token. Returns {epoch, 1 taken | 0 held | -1 grace, grace ms}.
ACQUIRE = (
    _EPOCH
    + """
local grace = redis.call('pttl', KEYS[2])
if grace > 0 then
    return {epoch, -1, grace}
end
if redis.call('set', KEYS[3], ARGV[4], 'NX', 'PX', ttl) then
    return {epoch, 1, 0}
end
return {epoch, 0, 0}
"""
)
# Returns {epoch, 1 renewed | 2 taken back (Redis had lost it) | 0 another holds it}.
RENEW = (
    _EPOCH
    + """
local holder = redis.call('get', KEYS[3])
if holder == ARGV[4] then
    redis.call('pexpire', KEYS[3], ttl)
    return {epoch, 1}
end
if not holder then
    redis.call('set', KEYS[3], ARGV[4], 'PX', ttl)
    return {epoch, 2}
end
return {epoch, 0}
"""
)
# Only the holder deletes a lease; the last seq is recorded whoever holds it
# (a Redis that restarted has no lease left to match).
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
end
local seq = tonumber(ARGV[2])
if seq > tonumber(redis.call('get', KEYS[2]) or '0') then
    redis.call('set', KEYS[2], seq)
end
return 1
"""
# Record the session's last seq (never lowering it: a batch may be sent twice), then publish.
FORWARD = """
local seq = tonumber(ARGV[1])
if seq > tonumber(redis.call('get', KEYS[1]) or '0') then
    redis.call('set', KEYS[1], seq)
end
return redis.call('publish', ARGV[2], ARGV[3])
"""

EventHandler = Callable[[str, str], Awaitable[None]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]
RejoinHandler = Callable[[], Awaitable[None]]
Command = tuple[str, tuple[Any, ...]]
T = TypeVar("T")


class ClusterUnavailable(StorageUnavailable):
    """Redis cannot be reached: no lease, holder or control message until it is back."""


class LeaseGrace(ClusterUnavailable):
    """Redis came back without its data: no new lease until the holders have theirs back."""


class Cluster:
    """This process's membership: publishing, relaying, leases and control messages.

    :param lease_s: how long a lease outlives a process that stopped renewing it.
    """

    def __init__(self, url: str, *, lease_s: float = 10.0) -> None:
        self.url = url
        self.lease_s = lease_s
        self.node = uuid.uuid4().hex[:12]
        # One retry inside redis-py, at once: a pooled connection that a restart
        # closed is made again. Every caller here decides how long to wait beyond.
        self.redis = self._client(url, retries=1)
        # None for the subscription: a failed one must be seen, to be made again and
        # caught up (redis-py would subscribe again quietly and miss what was published).
        self._subscriber = self._client(url, retries=0)
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self._leases: dict[str, str] = {}
        self._lost: set[str] = set()  # leases another process took; logged once
        self._epoch = ""
        self._renew_now = asyncio.Event()
        self._down_since: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(
        self,
        on_event: EventHandler,
        on_control: ControlHandler,
        on_rejoin: RejoinHandler | None = None,
    ) -> None:
        """Join: subscribed before this returns, so nothing published after it is missed.

        :param on_rejoin: called once subscribed again after losing Redis, before
            any message that arrives since is handled.
        """
        self._epoch = await self.redis.eval(
            JOIN, 2, EPOCH, GRACE, "", self._new_epoch, self._ttl_ms
        )
        pubsub, early = await self._subscribe()
        self._tasks = [
            asyncio.create_task(
                self._listen(pubsub, early, on_event, on_control, on_rejoin),
                name="cluster-listen",
            ),
            asyncio.create_task(self._publish_loop(), name="cluster-publish"),
            asyncio.create_task(self._renew_loop(), name="cluster-renew"),
        ]

    async def stop(self) -> None:
        # Let queued frames and releases go out before closing, unless Redis is gone.
        try:
            await asyncio.wait_for(self._queue.join(), 5 if self._down_since is None else 1)
        except TimeoutError:
            log.warning("Redis took the last %d messages too long; closing", self._queue.qsize())
        self._closing = True
        for task in self._tasks:
            task.cancel()
        # A read of the subscription may not heed the cancel (redis-py can lose it,
        # redis/redis-py#2028): closing its connection ends that read too.
        await self._subscriber.connection_pool.disconnect()
        done, pending = await asyncio.wait(self._tasks, timeout=5) if self._tasks else ((), ())
        for task in pending:
            log.warning("task %s did not stop", task.get_name())
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("task %s failed: %r", task.get_name(), task.exception())
        await self.redis.aclose()
        await self._subscriber.aclose()

    @staticmethod
    def _client(url: str, *, retries: int) -> redis.Redis:
        return redis.from_url(
            url,
            decode_responses=True,
            retry=Retry(NoBackoff(), retries),
            socket_connect_timeout=REDIS_PATIENCE_S,
            socket_keepalive=True,
        )

    # ── Redis going away and coming back ──

    def _failing(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()
            log.warning(
                "Redis unreachable (%s): relays from other processes pause, turns go on here",
                exc or type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            down_s = asyncio.get_running_loop().time() - self._down_since
            self._down_since = None
            log.warning("Redis reachable again after %.1f s", down_s)

    async def _call(self, command: Callable[[], Awaitable[T]], patience_s: float) -> T:
        """Run a Redis command, trying again while Redis is unreachable.

        :raises ClusterUnavailable: still unreachable after *patience_s*.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_s
        delay = BACKOFF_S[0]
        while True:
            try:
                result = await command()
            except DOWN as exc:
                self._failing(exc)
                if loop.time() + delay > deadline:
                    raise ClusterUnavailable("Redis is unreachable; send it again shortly") from exc
                await asyncio.sleep(delay)
                delay = min(2 * delay, BACKOFF_S[1])
            else:
                self._recovered()
                return result

    @property
    def _new_epoch(self) -> str:
        return uuid.uuid4().hex[:12]

    # ── live events ──

    def forward(self, session_id: str, seq: int, frame: str) -> None:
        """Publish a logged frame to the other processes (in order, without waiting).

        The session's last seq is recorded with it: a process whose client
        joins now numbers its view from there, not from the log written behind.
        """
        self._queue.put_nowait(("publish", (session_id, seq, frame)))

    async def _subscribe(self) -> tuple[Any, list[dict[str, Any]]]:
        """A new subscription, in effect on return; with any message that came meanwhile."""
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.psubscribe(f"{EVENTS}*")
            await pubsub.subscribe(CONTROL, f"{CONTROL}:{self.node}")
            confirmed, early = 0, []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SUBSCRIBE_PATIENCE_S
            while confirmed < 3:
                if loop.time() >= deadline:
                    raise RedisTimeoutError("Redis did not confirm the subscription")
                message = await pubsub.get_message(timeout=deadline - loop.time())
                if message is None:
                    continue
                if message["type"] in ("subscribe", "psubscribe"):
                    confirmed += 1
                else:
                    early.append(message)
        except BaseException:
            with suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub, early

    async def _listen(
        self,
        pubsub: Any,
        early: list[dict[str, Any]],
        on_event: EventHandler,
        on_control: ControlHandler,
        on_rejoin: RejoinHandler | None,
    ) -> None:
        delay = BACKOFF_S[0]
        while True:
            try:
                if pubsub is None:
                    pubsub, early = await self._subscribe()
                    self._recovered()
                    delay = BACKOFF_S[0]
                    self._renew_now.set()  # take back leases a restarted Redis lost
                    if on_rejoin is not None:
                        try:
                            await on_rejoin()
                        except Exception:
                            log.exception("catching up after a Redis outage failed")
                for message in early:
                    await self._handle(message, on_event, on_control)
                early = []
                # A ping when idle: a connection that died without a word (a host that
                # went away) is noticed within two intervals, not hours later.
                pinged = False
                while True:
                    message = await pubsub.get_message(timeout=PING_EVERY_S)
                    if message is not None:
                        pinged = False
                        await self._handle(message, on_event, on_control)
                    elif pinged:
                        raise RedisTimeoutError("Redis did not answer a ping")
                    else:
                        await pubsub.ping()
                        pinged = True
            except DOWN as exc:
                if self._closing:
                    return
                self._failing(exc)
            except Exception:
                log.exception("the subscription to Redis failed; subscribing again")
            finally:
                if pubsub is not None:
                    with suppress(Exception):
                        await pubsub.aclose()
                    pubsub = None
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_S[1])

    async def _handle(
        self, message: dict[str, Any], on_event: EventHandler, on_control: ControlHandler
    ) -> None:
        if message["type"] not in ("message", "pmessage"):
            return
        try:
            channel = message["channel"]
            if channel.startswith(CONTROL):
                payload = json.loads(message["data"])
                if payload.pop("node") != self.node:
                    await on_control(payload)
                return
            node, _, frames = message["data"].partition("\n")
            if node != self.node:
                session_id = channel.removeprefix(EVENTS)
                for frame in frames.split("\n"):
                    await on_event(session_id, frame)
        except Exception:
            log.exception("failed to handle a cluster message on %s", message.get("channel"))

    async def _publish_loop(self) -> None:
        pending: list[Command] = []
        taken = 0  # queue items in pending or dropped from it, not yet marked done
        delay = BACKOFF_S[0]
        while True:
            if not pending:
                pending.append(await self._queue.get())
                taken += 1
            while not self._queue.empty():
                pending.append(self._queue.get_nowait())
                taken += 1
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    self._pipeline(pipe, pending)
                    await pipe.execute()
            except DOWN as exc:
                # Kept, in order, for when Redis is back; the frames only as many as needed.
                self._failing(exc)
                pending = compact(pending)
                await asyncio.sleep(delay)
                delay = min(2 * delay, BACKOFF_S[1])
                continue
            except Exception:
                log.exception("could not publish %d messages to Redis", len(pending))
            else:
                self._recovered()
            pending = []
            for _ in range(taken):
                self._queue.task_done()
            taken = 0
            delay = BACKOFF_S[0]

    def _pipeline(self, pipe: Any, commands: list[Command]) -> None:
        """One message per session for the frames queued together (a frame is one line of
        JSON), each release after the frames queued before it."""
        frames: dict[str, list[str]] = {}
        last_seq: dict[str, int] = {}

        def flush() -> None:
            for session_id, batch in frames.items():
                message = "\n".join([self.node, *batch])
                pipe.eval(
                    FORWARD,
                    1,
                    f"{LAST_SEQ}{session_id}",
                    last_seq[session_id],
                    f"{EVENTS}{session_id}",
                    message,
                )
            frames.clear()

        for kind, args in commands:
            if kind == "publish":
                session_id, seq, frame = args
                frames.setdefault(session_id, []).append(frame)
                last_seq[session_id] = seq
            else:
                flush()
                session_id, token, seq = args
                pipe.eval(RELEASE, 2, f"{LEASE}{session_id}", f"{LAST_SEQ}{session_id}", token, seq)
        flush()

    # ── control ──

    async def control(self, kind: str, **fields: Any) -> None:
        """Tell the other processes: ``cancel`` or ``reply`` (with ``session_id``), or ``skill``.

        A ``cancel`` or ``reply`` goes to the process that holds the session's
        lease, and is sent again until that process has it (it may be
        subscribing again after an outage); it is dropped when no process runs
        the session's turn. A ``skill`` change goes to every process, once.

        :raises ClusterUnavailable: Redis, or the process running the turn,
            could not be reached for a lease TTL.
        """
        message = json.dumps({"kind": kind, "node": self.node, **fields})
        if kind == "skill":
            try:
                await self._call(lambda: self.redis.publish(CONTROL, message), REDIS_PATIENCE_S)
            except ClusterUnavailable:
                # Stored already, but the others keep the version they have until they restart.
                log.warning("could not announce a change of skill %s to the others", fields)
            return
        session_id = fields["session_id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease_s + BACKOFF_S[1]
        delay = BACKOFF_S[0]
        while True:
            holder = await self.holder(session_id)
            if holder is None:
                return  # no turn runs: nothing to cancel or answer
            node = holder.partition(":")[0]
            if node == self.node:
                return  # ours: the caller found it was not (it ended meanwhile)
            try:
                received = await self.redis.publish(f"{CONTROL}:{node}", message)
            except DOWN as exc:
                self._failing(exc)
                received = 0
            if received:
                return
            if loop.time() >= deadline:
                raise ClusterUnavailable(f"the process running session {session_id} is unreachable")
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_S[1])

    # ── the turn lease ──

    async def acquire(self, session_id: str, turn_id: str, *, patience_s: float = 0) -> bool:
        """Take the session's turn lease; ``False`` when another turn holds it.

        :raises LeaseGrace: Redis came back without its data less than a lease
            TTL ago; its holders are taking their leases back.
        :raises ClusterUnavailable: Redis is unreachable.
        """
        token = f"{self.node}:{turn_id}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(patience_s, ACQUIRE_PATIENCE_S)
        while True:
            state, grace_ms = await self._lease_script(ACQUIRE, session_id, token)
            if state == 1:
                self._leases[session_id] = token
                self._lost.discard(session_id)
                return True
            if state == -1:
                raise LeaseGrace(
                    f"Redis restarted; turns start again in {grace_ms / 1000:.1f} s at most"
                )
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)

    def release(self, session_id: str, last_seq: int) -> None:
        """Give the lease back after the turn's last frame, recording the session's last seq."""
        token = self._leases.pop(session_id, None)
        self._lost.discard(session_id)
        if token is not None:
            self._queue.put_nowait(("release", (session_id, token, last_seq)))

    async def holder(self, session_id: str) -> str | None:
        """Who runs the session's turn (``node:turn_id``), or ``None``.

        During the grace after Redis lost its data, waits for the holder to
        take its lease back (or the grace to end).

        :raises ClusterUnavailable: Redis is unreachable.
        """
        while True:
            holder, grace_ms = await self._call(
                lambda: self._holder_and_grace(session_id), REDIS_PATIENCE_S
            )
            if holder is not None or grace_ms <= 0:
                return holder
            await asyncio.sleep(min(grace_ms / 1000, BACKOFF_S[0]))

    async def _holder_and_grace(self, session_id: str) -> tuple[str | None, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(f"{LEASE}{session_id}").pttl(GRACE)
            holder, grace_ms = await pipe.execute()
        return holder, grace_ms

    async def last_seq(self, session_id: str) -> int:
        """The last seq any process published for the session; 0 when none did.

        Also 0 when Redis is unreachable: the log and the database's seq
        reservations keep a new turn numbering above every seq sent.
        """
        try:
            value = await self._call(
                lambda: self.redis.get(f"{LAST_SEQ}{session_id}"), REDIS_PATIENCE_S
            )
        except ClusterUnavailable:
            return 0
        return int(value or 0)

    @property
    def _ttl_ms(self) -> int:
        return int(self.lease_s * 1000)

    async def _lease_script(self, script: str, session_id: str, token: str) -> tuple[int, int]:
        keys = (EPOCH, GRACE, f"{LEASE}{session_id}")
        result = await self._call(
            lambda: self.redis.eval(
                script, 3, *keys, self._epoch, self._new_epoch, self._ttl_ms, token
            ),
            REDIS_PATIENCE_S,
        )
        self._epoch = result[0]
        return int(result[1]), int(result[2]) if len(result) > 2 else 0

    async def _renew_loop(self) -> None:
        every_s = self.lease_s / 3
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), every_s)
            self._renew_now.clear()
            every_s = self.lease_s / 3
            for session_id, token in list(self._leases.items()):
                try:
                    state, _ = await self._lease_script(RENEW, session_id, token)
                except ClusterUnavailable:
                    # Logged once by _failing. Tried again soon: a Redis that comes back
                    # empty gives this process a lease TTL to take its leases back.
                    every_s = min(every_s, BACKOFF_S[1])
                    break
                except Exception:
                    log.exception("could not renew the turn lease of session %s", session_id)
                    continue
                if self._leases.get(session_id) != token:
                    continue  # released meanwhile
                if state == 2:
                    log.warning(
                        "took back the turn lease of session %s (Redis had lost it)", session_id
                    )
                elif state == 0 and session_id not in self._lost:
                    self._lost.add(session_id)
                    log.error("lost the turn lease of session %s", session_id)


def compact(commands: list[Command]) -> list[Command]:
    """What must still be sent after a failed attempt: every release, in order, and of
    each run of a session's frames the last one only (the others relay it after
    reading the frames before it from the log). Keeps memory bounded while Redis is away."""
    kept: list[Command] = []
    has_later: set[str] = set()  # sessions whose later frame is kept, with no release between
    for command in reversed(commands):
        kind, args = command
        session_id = args[0]
        if kind == "release":
            has_later.discard(session_id)
            kept.append(command)
        elif session_id not in has_later:
            has_later.add(session_id)
            kept.append(command)
    kept.reverse()
    return kept
