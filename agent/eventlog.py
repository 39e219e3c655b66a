"""The durable event log, written behind the stream in batches.

Writing each token as it is sent would cap streaming near the database's
insert rate (~2,000/s on SQLite); one ``bulk_create`` per interval costs a
fraction of that, so persistence never sets the token rate.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from models import Event

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, flush_interval_s: float) -> None:
        self.flush_interval_s = flush_interval_s
        self._pending: list[Event] = []
        self._pending_last_seq: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def append(
        self, session_id: str, seq: int, type_: str, turn_id: str | None, frame: str
    ) -> None:
        """Queue one logged frame for the next flush."""
        self._pending.append(
            Event(session_id=session_id, seq=seq, type=type_, turn_id=turn_id, frame=frame)
        )
        self._pending_last_seq[session_id] = seq

    async def flush(self) -> None:
        """Write everything queued so far. Safe to call concurrently."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                await Event.bulk_create(batch, batch_size=1000)
            except Exception:
                # Keep the batch for the next flush rather than lose it.
                self._pending[:0] = batch
                raise
            for event in batch:
                if self._pending_last_seq.get(event.session_id) == event.seq:
                    del self._pending_last_seq[event.session_id]

    def discard(self, session_id: str) -> None:
        """Drop a deleted session's queued events."""
        self._pending = [e for e in self._pending if e.session_id != session_id]
        self._pending_last_seq.pop(session_id, None)

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
        await self.flush()
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
        """Stored frames (JSON text) with ``after < seq <= upto``, in order."""
        await self.flush()
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

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("event log flush failed; will retry")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="eventlog-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
