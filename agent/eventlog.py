"""The durable event log and the one writer task that owns every write of a turn.

Frames are published synchronously and written behind, in batches: writing
each token as it is sent would cap streaming near the database's insert rate
(~2,000/s on SQLite), while one batch per interval costs a fraction of that.

Every write a turn makes (its frames, its user and assistant messages, its
requests to the human) is queued here, in order, and performed by one writer
task. A caller that is cancelled stops *waiting*; the write itself goes on, so
no transaction is ever left half done by a client that went away.

The rules this module keeps (docs/reliability.md gives the figures):

- A batch of frames is idempotent on ``(session_id, seq)``: one that failed
  half way, or that an earlier process wrote, is written again without error.
- A failed write is retried with backoff until storage is back, in order;
  the outage is logged once when it starts and once when it ends.
- Seqs are reserved durably in blocks (``sessions.seq_reserved``): a turn
  starts numbering above every seq a crashed process could have handed out,
  and the writer extends the block as frames are stored. Producers wait in
  :meth:`EventLog.room` while ``high_water`` frames are unwritten, so what a
  crash can lose is bounded by ``high_water`` frames or one flush interval.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from agent import metrics
from models import Event, Session

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Backoff between retries of a failed write, doubling up to the maximum.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
#: How long a turn waits for one of its writes before it takes storage for failing.
WRITE_PATIENCE_S = 5.0
#: How long a read waits for queued frames to be written before it reads what is stored.
READ_PATIENCE_S = 2.0


class StorageUnavailable(Exception):
    """Storage is failing (a full disk, a lost database); the write waits in the queue."""


@dataclass(slots=True)
class _Batch:
    """Frames appended between two other writes, written in one transaction."""

    events: list[Event] = field(default_factory=list)
    #: Being written: frames appended from now on go to a new batch.
    sealed: bool = False


@dataclass(slots=True)
class _Job:
    """A write other than frames (a message, a request), run by the writer in its turn."""

    run: Callable[[], Awaitable[Any]]
    done: asyncio.Future[Any]


class EventLog:
    """The session event log and its writer.

    :param flush_interval_s: how long frames may wait before they are written.
    :param high_water: unwritten frames at which producers wait (:meth:`room`).
    :param seq_block: how many seqs a turn reserves ahead of what is stored;
        at least twice ``high_water``.
    """

    def __init__(
        self, flush_interval_s: float, *, high_water: int = 2_000, seq_block: int = 10_000
    ) -> None:
        if seq_block < 2 * high_water:
            raise ValueError("seq_block must be at least twice high_water")
        self.flush_interval_s = flush_interval_s
        self.high_water = high_water
        self.seq_block = seq_block
        self._queue: deque[_Batch | _Job] = deque()
        self._unwritten = 0
        self._pending_last_seq: dict[str, int] = {}
        #: The reservation this process holds per session: seqs up to it are safe to hand out.
        self._reserved: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: When the current outage began (monotonic), or ``None`` while writes succeed.
        self.failing_since: float | None = None

    @property
    def healthy(self) -> bool:
        """The last write succeeded."""
        return self.failing_since is None

    # ── producing ──

    def append(
        self, session_id: str, seq: int, type_: str, turn_id: str | None, frame: str
    ) -> None:
        """Queue one logged frame for the next flush."""
        tail = self._queue[-1] if self._queue else None
        if not isinstance(tail, _Batch) or tail.sealed:
            tail = _Batch()
            self._queue.append(tail)
        tail.events.append(
            Event(session_id=session_id, seq=seq, type=type_, turn_id=turn_id, frame=frame)
        )
        self._unwritten += 1
        self._pending_last_seq[session_id] = seq
        self._ensure_writer()
        if self._unwritten >= self.high_water:
            self._wake.set()

    def submit(self, run: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue a write behind everything queued so far; the future has its result.

        The write happens even if nobody awaits the future. A write that fails
        with anything but a storage failure (:func:`is_storage_failure`) fails
        the future; storage failures are retried.
        """
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_log_failure)
        self._queue.append(_Job(run, done))
        self._ensure_writer()
        self._wake.set()
        return done

    async def write(
        self, run: Callable[[], Awaitable[T]], *, timeout_s: float | None = WRITE_PATIENCE_S
    ) -> T:
        """:meth:`submit` and wait for the result (:func:`written`)."""
        return await written(self.submit(run), timeout_s)

    async def room(self) -> None:
        """Wait while too many frames are unwritten, so the log never falls far behind.

        :raises StorageUnavailable: storage is failing and the queue is full.
        """
        while self._unwritten >= self.high_water:
            if not self.healthy:
                raise StorageUnavailable("storage is failing; the event log is full")
            self._wake.set()
            await self._wait_progress()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far is written. Safe to cancel.

        :returns: ``False`` when *timeout_s* passed first (storage is failing).
        """
        if not self._queue:
            return True
        marker = self.submit(_nothing)
        try:
            await asyncio.wait_for(asyncio.shield(marker), timeout_s)
        except TimeoutError:
            return False
        return True

    def discard(self, session_id: str) -> None:
        """Drop a deleted session's queued frames."""
        for item in self._queue:
            if isinstance(item, _Batch):
                kept = [e for e in item.events if e.session_id != session_id]
                self._unwritten -= len(item.events) - len(kept)
                item.events = kept
        self._pending_last_seq.pop(session_id, None)
        self._reserved.pop(session_id, None)

    # ── seq reservations ──

    async def reserve(self, session_id: str, last_seq: int) -> int:
        """Reserve seqs for a turn that numbers on from *last_seq*.

        :returns: the seq to number on from: *last_seq*, or higher when a
            process crashed holding a reservation (its clients may have seen
            seqs up to it).
        """

        async def run() -> int:
            async with in_transaction():
                row = await Session.filter(id=session_id).first().values("seq_reserved")
                start = max(last_seq, row["seq_reserved"] if row else 0)
                await Session.filter(id=session_id).update(seq_reserved=start + self.seq_block)
            self._reserved[session_id] = start + self.seq_block
            return start

        return await self.write(run)

    def settle(self, session_id: str, last_seq: int) -> None:
        """Give back the unused part of a finished turn's reservation.

        Queued behind the turn's frames, so it runs once they are stored. The
        update applies only if no other process reserved since.
        """

        async def run() -> None:
            # Read when the turn's frames are written: their batches may have extended it.
            held = self._reserved.pop(session_id, None)
            if held is not None:
                await Session.filter(id=session_id, seq_reserved=held).update(seq_reserved=last_seq)

        self.submit(run)

    # ── reading ──

    async def last_seq(self, session_id: str) -> int:
        pending = self._pending_last_seq.get(session_id)
        if pending is not None:
            return pending
        top = (
            await Event.filter(session_id=session_id)
            .order_by("-seq")
            .first()
            .values_list("seq", flat=True)
        )
        return top or 0

    async def wait_stored(self, session_id: str, seq: int, timeout_s: float = 5.0) -> bool:
        """Wait until the log holds *seq* of the session, written by any process.

        Another process writes its turn's frames behind too; this waits out its
        flush interval. ``False`` after *timeout_s* (that process died).
        """
        await self.flush(timeout_s)
        if seq <= 0:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await Event.exists(session_id=session_id, seq__gte=seq):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.flush_interval_s)
        return True

    async def read(
        self, session_id: str, *, after: int, upto: int | None = None, limit: int | None = None
    ) -> list[str]:
        """Stored frames (JSON text) with ``after < seq <= upto``, in order.

        While storage fails, what is stored after a short wait: readers are not held.
        """
        await self.flush(READ_PATIENCE_S)
        query = Event.filter(session_id=session_id, seq__gt=after)
        if upto is not None:
            query = query.filter(seq__lte=upto)
        query = query.order_by("seq")
        if limit is not None:
            query = query.limit(limit)
        return await query.values_list("frame", flat=True)

    async def read_seqs(self, session_id: str, seqs: list[int]) -> list[str]:
        """The stored frames with these seqs, in order, once they are stored."""
        if not seqs:
            return []
        await self.wait_stored(session_id, max(seqs))
        query = Event.filter(session_id=session_id, seq__in=seqs).order_by("seq")
        return await query.values_list("frame", flat=True)

    # ── the writer ──

    def _ensure_writer(self) -> None:
        if self._task is None and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="eventlog-writer")

    def start(self) -> None:
        self._stopping = False
        self._ensure_writer()

    async def stop(self) -> None:
        """Write what is queued (while storage answers), then end the writer."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)
            self._task = None

    def _only_frames_below_high_water(self) -> bool:
        return self._unwritten < self.high_water and all(
            isinstance(item, _Batch) for item in self._queue
        )

    async def _wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    async def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                continue
            if self._only_frames_below_high_water():
                # Frames wait out the interval, so that many go in one transaction;
                # a write queued behind them, or a full queue, ends the wait.
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            try:
                started = time.monotonic()
                await self._write_head()
                metrics.eventlog_flushed(time.monotonic() - started)
            except Exception as exc:  # the writer outlives any failure; it retries
                metrics.eventlog_failed()
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    log.error("storage failed (%s); retrying the write until it succeeds", exc)
                self._progress.set()  # producers waiting for room learn that storage fails
                if self._stopping:
                    self._fail_all_on_stop()
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self.failing_since is not None:
                log.warning("storage recovered after %.1f s", time.monotonic() - self.failing_since)
                self.failing_since = None
            delay = RETRY_FIRST_S
            self._progress.set()

    def _fail_all_on_stop(self) -> None:
        """At shutdown with storage down, give up after one failed try: say what is lost."""
        lost = self._unwritten
        log.error("shutting down with storage failing: %d frames not written", lost)
        for item in self._queue:
            if isinstance(item, _Job) and not item.done.done():
                item.done.set_exception(StorageUnavailable("shut down with storage failing"))
        self._queue.clear()
        self._unwritten = 0

    async def _write_head(self) -> None:
        """Write the queue's first item; it leaves the queue only once written."""
        head = self._queue[0]
        if isinstance(head, _Job):
            if head.done.done():  # a marker nobody waits for any more
                self._queue.popleft()
                return
            try:
                result = await head.run()
            except Exception as exc:
                if is_storage_failure(exc):
                    raise  # stays at the head, retried
                self._queue.popleft()
                head.done.set_exception(exc)
                return
            self._queue.popleft()
            head.done.set_result(result)
            return
        # Merge the frames queued up to the next job into one transaction.
        batches: list[_Batch] = []
        for item in self._queue:
            if not isinstance(item, _Batch):
                break
            item.sealed = True
            batches.append(item)
        events = [event for batch in batches for event in batch.events]
        await self._write_events(events)
        for _ in batches:
            self._queue.popleft()
        self._unwritten -= len(events)
        for event in events:
            if self._pending_last_seq.get(event.session_id) == event.seq:
                del self._pending_last_seq[event.session_id]

    async def _write_events(self, events: list[Event]) -> None:
        if not events:
            return
        top: dict[str, int] = {}
        for event in events:
            top[event.session_id] = max(top.get(event.session_id, 0), event.seq)
        try:
            await self._insert(events, top)
        except IntegrityError:
            # A session was deleted while its frames waited: keep the others' frames.
            alive = set(await Session.filter(id__in=list(top)).values_list("id", flat=True))
            events[:] = [e for e in events if e.session_id in alive]
            await self._insert(events, {s: q for s, q in top.items() if s in alive})

    async def _insert(self, events: list[Event], top: dict[str, int]) -> None:
        """Insert *events* and keep each running turn's reservation ahead, in one transaction."""
        extended: dict[str, int] = {}
        async with in_transaction():
            await Event.bulk_create(events, batch_size=1000, ignore_conflicts=True)
            for session_id, seq in top.items():
                held = self._reserved.get(session_id)
                if held is not None and held - seq < 2 * self.high_water:
                    extended[session_id] = seq + self.seq_block
                    await Session.filter(id=session_id).update(seq_reserved=extended[session_id])
        # Only once committed: a batch that failed extends it again when retried.
        self._reserved.update(extended)


def is_storage_failure(exc: BaseException) -> bool:
    """Storage failed (a full disk, a lost connection), as opposed to a refused write.

    Drivers raise their own errors from some calls (SQLite's commit raises
    ``sqlite3.OperationalError``, not tortoise's), so both are recognised.
    """
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
        return False
    if isinstance(exc, OperationalError | sqlite3.OperationalError | OSError):
        return True
    return isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError) or (
        isinstance(exc, asyncpg.PostgresError)
        and getattr(exc, "sqlstate", "")[:2] in ("53", "57", "58", "08")
    )


async def written(done: asyncio.Future[T], timeout_s: float | None = WRITE_PATIENCE_S) -> T:
    """The result of a queued write; cancelling the caller does not stop the write.

    :raises StorageUnavailable: storage failed and *timeout_s* passed.
    """
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout_s)
    except TimeoutError:
        raise StorageUnavailable("storage is not answering; the write is queued") from None


async def _nothing() -> None:
    return None


def _log_failure(done: asyncio.Future[Any]) -> None:
    # Retrieved here, so a write nobody waits for still reports how it failed.
    if not done.cancelled() and done.exception() is not None:
        log.warning("a queued write failed: %r", done.exception())
