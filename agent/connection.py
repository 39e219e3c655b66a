"""One client's WebSocket connection to a session, independent of the web framework.

Shape (as in Quart's chat example): a receive task parses and dispatches
client frames; a send task drains the connection's bounded outbox; when
either ends, or the outbox overflows, the other is cancelled and awaited.
An overflow ends the connection at once, even while a send is blocked on a
client that stopped reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent.bus import Outgoing, SessionChannel, Subscriber, coalesce
from agent.eventlog import StorageUnavailable
from agent.limits import RateLimited
from agent.protocol import (
    Cancel,
    ClientFrame,
    ConfirmationReply,
    Connected,
    Error,
    ErrorCode,
    HumanReply,
    Ping,
    Pong,
    ProtocolError,
    UserMessage,
    parse_client_frame,
    server_event_adapter,
)
from agent.runtime import Runtime
from agent.turns import TurnRejected
from models import PendingRequest, RequestStatus
from plugins.skills import SessionContext

log = logging.getLogger(__name__)

#: Close code for a client that fell too far behind; it should reconnect with last_seq.
CLOSE_TOO_SLOW = 4008


class Outbox(Subscriber):
    """A connection's subscriber that also wakes it when it overflows."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.overflow = asyncio.Event()

    def offer(self, item: Outgoing) -> None:
        Subscriber.offer(self, item)
        if self.overflowed and not self.overflow.is_set():
            self.overflow.set()


class ChatConnection:
    def __init__(
        self,
        runtime: Runtime,
        session: SessionContext,
        channel: SessionChannel,
        send: Callable[[str], Awaitable[None]],
        receive: Callable[[], Awaitable[str | bytes]],
    ) -> None:
        self.runtime = runtime
        self.session = session
        self.channel = channel
        self._send = send
        self._receive = receive
        self.outbox = Outbox(runtime.settings.client_queue_size)

    async def serve(self, last_seq: int | None = None) -> tuple[int, str] | None:
        """Run until the client leaves; returns a close code and reason to send, if any.

        :param last_seq: the last seq the client has; every stored event after
            it is replayed after ``connected``, before live events.
        """
        # Subscribing and noting the channel's seq happen in one step: live
        # events after `upto` queue in the outbox while the replay is read, so
        # the client gets everything exactly once.
        self.channel.subscribers.add(self.outbox)
        upto = self.channel.last_seq
        tasks: list[asyncio.Task[None]] = []
        try:
            replay = await self._replay(last_seq, upto)
            connected = Connected(
                session_id=self.session.session_id,
                seq=upto,
                last_seq=upto,
                model=self.runtime.settings.model,
                resumed=len(replay),
            )
            replayed = asyncio.Event()
            sender = asyncio.create_task(self._send_loop([connected.to_json(), *replay], replayed))
            receiver = asyncio.create_task(self._receive_loop(replayed))
            overflow = asyncio.create_task(self.outbox.overflow.wait())
            tasks = [sender, receiver, overflow]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.outbox.overflowed:
                return CLOSE_TOO_SLOW, "client too slow; reconnect with last_seq"
            if sender.done():
                sender.result()  # a failed send ends the connection with its error
            return None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.channel.subscribers.discard(self.outbox)
            self.runtime.bus.release(
                self.session.session_id,
                busy=self.runtime.turns.is_running(self.session.session_id),
            )

    async def _replay(self, last_seq: int | None, upto: int) -> list[Outgoing]:
        """What follows ``connected``: the stored events after *last_seq*, tokens merged.

        Without *last_seq*, the session's unanswered requests, so that a client
        joining a waiting turn can answer it.
        """
        session_id = self.session.session_id
        eventlog = self.runtime.eventlog
        if last_seq is None:
            if self.runtime.cluster is None:
                waiting = self.runtime.pending.open_events(session_id)
                return [Outgoing(event, event.to_json()) for event in waiting]
            # The turn may run on another process: its open requests are in the database.
            seqs = await PendingRequest.filter(
                session_id=session_id, status=RequestStatus.open, seq__lte=upto
            ).values_list("seq", flat=True)
            frames = await eventlog.read_seqs(session_id, list(seqs))
            return [Outgoing(server_event_adapter.validate_json(f), f) for f in frames]
        if self.runtime.cluster is not None:
            # Frames this process relayed may still be in the other process's write buffer.
            await eventlog.wait_stored(session_id, upto)
        frames = await eventlog.read(session_id, after=last_seq, upto=upto)
        return coalesce([Outgoing(server_event_adapter.validate_json(f), f) for f in frames])

    async def _send_loop(self, first: list[str | Outgoing], replayed: asyncio.Event) -> None:
        """Send *first* (``connected`` and the replay), then the outbox, until it overflows."""
        for item in first:
            await self._send(item if isinstance(item, str) else item.frame)
        replayed.set()
        while True:
            items = await self.outbox.drain()
            if self.outbox.overflowed:
                return
            for item in coalesce(items):
                await self._send(item.frame)

    async def _receive_loop(self, replayed: asyncio.Event) -> None:
        settings = self.runtime.settings
        # The client's frames are read once it has the replay, which they may answer.
        await replayed.wait()
        while True:
            raw = await self._receive()
            try:
                frame = parse_client_frame(
                    raw, max_chars=settings.max_message_chars, max_bytes=settings.max_frame_bytes
                )
                await self._dispatch(frame)
            except ProtocolError as exc:
                self._reply(Error(code=exc.code, message=exc.message))
            except TurnRejected as exc:
                self._reply(Error(code=exc.code, message=exc.message, retryable=exc.retryable))
            except StorageUnavailable as exc:
                # Redis away (a cancel or a reply for a turn on another process).
                self._reply(Error(code=ErrorCode.unavailable, message=str(exc), retryable=True))
            except RateLimited as exc:
                self._reply(
                    Error(
                        code=ErrorCode.rate_limited,
                        message=exc.message,
                        retryable=True,
                        retry_after=round(exc.retry_after, 3),
                    )
                )
            except Exception:
                log.exception("failed to handle a frame in session %s", self.session.session_id)
                self._reply(
                    Error(code=ErrorCode.internal, message="the server failed on that frame")
                )

    def _reply(self, event: Error | Pong) -> None:
        self.channel.send_to(self.outbox, event)

    async def _dispatch(self, frame: ClientFrame) -> None:
        match frame:
            case Ping():
                self._reply(Pong())
            case UserMessage(content=content, mode=mode):
                self.runtime.limits.messages.check(self.session.owner_id)
                await self.runtime.turns.start(self.session, content, mode)
            case Cancel():
                await self.runtime.turns.cancel_anywhere(self.session.session_id)
            case ConfirmationReply() | HumanReply():
                await self.runtime.answer(self.session.session_id, frame)
