"""Live events: per-session channels that number, log and fan out frames.

Publishing is synchronous: a frame gets its seq, goes to the event log's
write-behind buffer and into every subscriber's bounded buffer without
yielding to the event loop, so no other coroutine can see a half-published
frame and seqs are handed out in the order frames are sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from agent import metrics
from agent.cluster import Cluster
from agent.eventlog import EventLog
from agent.protocol import ServerEvent, Token, server_event_adapter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outgoing:
    """A frame on its way to one client, with its JSON rendered once for all."""

    event: ServerEvent
    frame: str


class Subscriber:
    """One connection's bounded outbox.

    A client that falls more than ``maxsize`` frames behind is not waited for:
    its outbox is cleared and marked ``overflowed``, and its connection closes
    so that it can resume with ``last_seq`` instead of slowing everyone.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.overflowed = False
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()

    def offer(self, item: Outgoing) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self.maxsize:
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(item)
        self._ready.set()

    async def drain(self) -> list[Outgoing]:
        """Wait for frames, then take all of them."""
        await self._ready.wait()
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        return items


def coalesce(items: list[Outgoing]) -> list[Outgoing]:
    """Merge runs of ``token`` frames of one turn and speaker into one frame.

    A merged frame carries the joined text and the seq of the run's last token,
    so a client that fell behind catches up in fewer frames.
    """
    out: list[Outgoing] = []
    run: list[Token] = []

    def close_run() -> None:
        if len(run) == 1:
            out.append(Outgoing(run[0], run[0].to_json()))
        elif run:
            merged = run[-1].model_copy(update={"content": "".join(t.content for t in run)})
            out.append(Outgoing(merged, merged.to_json()))
        run.clear()

    for item in items:
        event = item.event
        if isinstance(event, Token):
            if run and (run[-1].turn_id, run[-1].expert) != (event.turn_id, event.expert):
                close_run()
            run.append(event)
            continue
        close_run()
        out.append(item)
    close_run()
    return out


class SessionChannel:
    def __init__(
        self, session_id: str, last_seq: int, log: EventLog, cluster: Cluster | None = None
    ) -> None:
        self.session_id = session_id
        self.last_seq = last_seq
        self.log = log
        self._cluster = cluster
        self.subscribers: set[Subscriber] = set()

    def publish(self, event: ServerEvent) -> ServerEvent:
        """Number *event* (if logged), log it, and hand it to every subscriber."""
        event.session_id = self.session_id
        if event.logged:
            self.last_seq += 1
            event.seq = self.last_seq
        else:
            event.seq = self.last_seq
        frame = event.to_json()
        if event.logged:
            self.log.append(self.session_id, event.seq, event.type, event.turn_id, frame)
            if self._cluster is not None:
                self._cluster.forward(self.session_id, event.seq, frame)
        self._deliver(Outgoing(event, frame))
        return event

    def relay(self, event: ServerEvent, frame: str) -> None:
        """A frame another process numbered and logged: deliver it as it is."""
        self.last_seq = event.seq
        self._deliver(Outgoing(event, frame))

    def _deliver(self, item: Outgoing) -> None:
        for sub in self.subscribers:
            sub.offer(item)

    def send_to(self, sub: Subscriber, event: ServerEvent) -> None:
        """An unlogged reply for one connection (pong, an error about its frame)."""
        event.session_id = self.session_id
        event.seq = self.last_seq
        sub.offer(Outgoing(event, event.to_json()))


class EventBus:
    """The in-process bus: one channel per session with live activity."""

    def __init__(self, log: EventLog, cluster: Cluster | None = None) -> None:
        self.log = log
        self.cluster = cluster
        self._channels: dict[str, SessionChannel] = {}

    async def channel(self, session_id: str) -> SessionChannel:
        channel = self._channels.get(session_id)
        if channel is None:
            last_seq = await self.last_seq(session_id)
            # Another coroutine may have made it while we awaited.
            channel = self._channels.setdefault(
                session_id, SessionChannel(session_id, last_seq, self.log, self.cluster)
            )
        return channel

    async def last_seq(self, session_id: str) -> int:
        """The session's last seq: in the log, or recorded by another process's last turn."""
        last_seq = await self.log.last_seq(session_id)
        if self.cluster is not None:
            # The log is written behind: another process's last frames may not be in it yet.
            last_seq = max(last_seq, await self.cluster.last_seq(session_id))
        return last_seq

    async def relay(self, session_id: str, frame: str) -> None:
        """Deliver a frame another process published to this process's clients."""
        channel = self._channels.get(session_id)
        if channel is None:
            return  # nobody here listens to that session
        event = server_event_adapter.validate_json(frame)
        metrics.relayed(event)
        if event.seq <= channel.last_seq:
            return  # already delivered, from the log
        if event.seq > channel.last_seq + 1:
            await self._fill_gap(channel, event.seq)
        if event.seq > channel.last_seq:
            channel.relay(event, frame)

    async def _fill_gap(self, channel: SessionChannel, seq: int) -> None:
        """Deliver the frames before *seq* this process has not seen, from the log."""
        # Once the frame itself is stored, every frame before it is too.
        if not await self.log.wait_stored(channel.session_id, seq):
            log.warning(
                "session %s: frames before seq %d never reached the log", channel.session_id, seq
            )
        for missed in await self.log.read(channel.session_id, after=channel.last_seq, upto=seq - 1):
            channel.relay(server_event_adapter.validate_json(missed), missed)

    async def catch_up(self) -> None:
        """After this process was cut off from Redis: deliver, from the log, what its
        clients missed of turns on other processes (up to each session's last seq)."""
        for channel in list(self._channels.values()):
            if not channel.subscribers:
                continue
            session_id = channel.session_id
            last_seq = await self.last_seq(session_id)
            if last_seq <= channel.last_seq:
                continue
            await self.log.wait_stored(session_id, last_seq)
            for missed in await self.log.read(session_id, after=channel.last_seq, upto=last_seq):
                event = server_event_adapter.validate_json(missed)
                if event.seq > channel.last_seq:  # not meanwhile relayed, or numbered here
                    channel.relay(event, missed)

    def release(self, session_id: str, *, busy: bool) -> None:
        """Forget an idle channel; its seq is recovered from the log next time."""
        channel = self._channels.get(session_id)
        if channel is not None and not busy and not channel.subscribers:
            del self._channels[session_id]

    def drop(self, session_id: str) -> SessionChannel | None:
        return self._channels.pop(session_id, None)
