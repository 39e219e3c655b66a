"""Turns: one at a time per session, owned by the server, not by a connection.

A turn runs in its own task, so it survives its client's disconnect. Every
frame it produces goes through the session's channel; the turn's end (the
``final_answer`` or ``error`` frame) is published in the same step that frees
the session, so a client that reacts to it can start the next turn at once.

How a turn ends is a small state machine: ``running`` until the answer is
complete or the turn is cancelled, failed or interrupted, then ``ending``
(the ending is chosen and nothing can change it: a cancel arriving now gets
``no_active_turn``), then ``ended`` once its one terminal frame is out. The
ending runs in its own task, shielded, so a second cancel (a client that
leaves, a shutdown) cannot cut it short. Every write goes through the event
log's writer, in order: the user message first, the assistant row last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from agent import logs, metrics
from agent.bus import EventBus, SessionChannel
from agent.eventlog import StorageUnavailable, written
from agent.loop import AgentLoop, TurnError
from agent.protocol import Error as ErrorEvent
from agent.protocol import ErrorCode, FinalAnswer, ServerEvent, TeamDissolved
from models import Event, Message, MessageStatus, PendingRequest, RequestStatus
from plugins.llm import ChatMessage, ModelError, Usage
from plugins.manager import PluginHost
from plugins.skills import SessionContext

log = logging.getLogger(__name__)

HISTORY_MESSAGES = 50
#: How long a message waits for a turn it cancelled on another process to end.
CANCEL_PATIENCE_S = 5.0


def unavailable_error() -> ErrorEvent:
    return ErrorEvent(
        code=ErrorCode.unavailable,
        message="storage is failing; the turn was stopped and will be kept when it recovers. "
        "Send the message again shortly",
        retryable=True,
    )


def interrupted_error() -> ErrorEvent:
    return ErrorEvent(
        code=ErrorCode.interrupted,
        message="the server stopped while this turn ran; send the message again",
        retryable=True,
    )


class TurnRejected(Exception):
    """A client asked for something the turn state does not allow."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: Sending the same frame again later may succeed.
        self.retryable = code is ErrorCode.unavailable


def storage_failing() -> TurnRejected:
    return TurnRejected(ErrorCode.unavailable, "storage is failing; send the message again shortly")


@dataclass
class Turn:
    id: str
    session: SessionContext
    content: str
    channel: SessionChannel
    mode: Literal["team"] | None = None
    #: ``running``, then ``ending`` once its ending is chosen, then ``ended``.
    state: Literal["running", "ending", "ended"] = "running"
    #: The user message's row, queued before the turn's task starts.
    user_row: asyncio.Future[Message] | None = None
    parts: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    cancelling: bool = False
    interrupted: bool = False
    usage: Usage | None = None
    #: A team gave the answer (``convene_team``); the loop stops there.
    answered: bool = False

    def count(self, usage: Usage) -> None:
        """Add a model call's tokens to the turn's."""
        self.usage = self.usage + usage if self.usage else usage

    def emit(self, event: ServerEvent) -> ServerEvent:
        """Publish *event* as part of this turn; it comes back numbered."""
        event.turn_id = self.id
        metrics.turn_emitted(self.id, event)
        return self.channel.publish(event)

    @property
    def answer(self) -> str:
        return "".join(self.parts)


class TurnRunner:
    def __init__(self, plugins: PluginHost, bus: EventBus, loop: AgentLoop) -> None:
        self.plugins = plugins
        self.bus = bus
        self.cluster = bus.cluster
        self.loop = loop
        self._active: dict[str, Turn] = {}
        # Sessions whose turn on another process this one asked to cancel, and when.
        self._cancelled_elsewhere: dict[str, float] = {}
        # A turn frees its session before its task ends (it still flushes and
        # calls on_turn_end), so shutdown waits for the tasks, not the turns.
        self._tasks: set[asyncio.Task[None]] = set()

    def is_running(self, session_id: str) -> bool:
        return session_id in self._active

    async def start(
        self, session: SessionContext, content: str, mode: Literal["team"] | None = None
    ) -> Turn:
        """Start a turn for *content*; ``mode="team"`` has a team of experts answer it.

        :raises TurnRejected: ``busy`` while the session's previous turn runs.
        """
        session_id = session.session_id
        channel = await self.bus.channel(session_id)
        running = self._active.get(session_id)
        if running is not None and running.cancelling and running.task is not None:
            # A message right after a cancel waits for the cancelled turn to close.
            # asyncio.wait, not gather: a client leaving now must not cancel that turn again.
            await asyncio.wait({running.task})
        if session_id in self._active:
            raise TurnRejected(ErrorCode.busy, "a turn is already running in this session")
        if not self.bus.log.healthy:
            raise storage_failing()
        turn = Turn(
            id=uuid.uuid4().hex, session=session, content=content, channel=channel, mode=mode
        )
        self._active[session_id] = turn
        try:
            if self.cluster is not None:
                await self._lease(turn)
            channel.last_seq = await self.bus.log.reserve(session_id, channel.last_seq)
        except StorageUnavailable:
            self._free(turn)
            raise storage_failing() from None
        except BaseException:
            self._free(turn)
            raise
        # Queued before anything can cancel the turn: its user message is stored first.
        turn.user_row = self.bus.log.submit(
            lambda: Message.create(
                session_id=session_id, turn_id=turn.id, role="user", content=content
            )
        )
        turn.task = asyncio.create_task(self._run(turn), name=f"turn-{turn.id}")
        self._tasks.add(turn.task)
        turn.task.add_done_callback(lambda task: (self._free(turn), self._tasks.discard(task)))
        # Let the task enter its try block, so that a cancel arriving right after
        # this still finds a turn that can record how it ended.
        await asyncio.sleep(0)
        return turn

    async def _lease(self, turn: Turn) -> None:
        """Hold the session's lease across processes, and number on from the last turn's seq."""
        assert self.cluster is not None
        session_id = turn.session.session_id
        asked = self._cancelled_elsewhere.pop(session_id, None)
        # A message right after a cancel sent to another process's turn waits for that turn.
        patience_s = (
            CANCEL_PATIENCE_S if asked and time.monotonic() - asked < CANCEL_PATIENCE_S else 0
        )
        try:
            acquired = await self.cluster.acquire(session_id, turn.id, patience_s=patience_s)
        except BaseException:
            self._free(turn)
            raise
        if not acquired:
            self._free(turn)
            raise TurnRejected(ErrorCode.busy, "a turn is already running in this session")
        turn.channel.last_seq = max(turn.channel.last_seq, await self.bus.last_seq(session_id))

    async def cancel_anywhere(self, session_id: str) -> None:
        """Cancel the session's turn, on this process or, through Redis, on another.

        :raises TurnRejected: ``no_active_turn`` when no process runs one.
        """
        try:
            self.cancel(session_id)
            return
        except TurnRejected:
            if self.cluster is None:
                raise
            holder = await self.cluster.holder(session_id)
            if holder is None or holder.startswith(f"{self.cluster.node}:"):
                raise
        await self.cluster.control("cancel", session_id=session_id)
        self._cancelled_elsewhere[session_id] = time.monotonic()

    def cancel(self, session_id: str) -> Turn:
        """Cancel the running turn; it ends with ``error`` ``cancelled``.

        :raises TurnRejected: ``no_active_turn`` when nothing runs.
        """
        turn = self._active.get(session_id)
        if (
            turn is None
            or turn.task is None
            or turn.task.done()
            or turn.cancelling
            or turn.state != "running"
        ):
            raise TurnRejected(ErrorCode.no_active_turn, "there is no running turn to cancel")
        # Cancel once only: a second cancel could interrupt the first one's cleanup.
        turn.cancelling = True
        turn.task.cancel()
        return turn

    async def cancel_and_wait(self, session_id: str) -> None:
        turn = self._active.get(session_id)
        if turn is None or turn.task is None:
            return
        if not turn.cancelling and turn.state == "running":
            self.cancel(session_id)
        await asyncio.wait({turn.task})

    async def shutdown(self) -> None:
        """Stop every running turn (``error`` ``interrupted``) and wait for them to end."""
        for turn in list(self._active.values()):
            turn.interrupted = True
            await self.cancel_and_wait(turn.session.session_id)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    # ── the turn itself ──

    async def _run(self, turn: Turn) -> None:
        metrics.turn_started(turn.id)
        logs.bind(session_id=turn.session.session_id, turn_id=turn.id)
        cancelled = False
        try:
            status, error = await self._answer(turn)
        except asyncio.CancelledError:
            cancelled = True
            if turn.interrupted:
                status, error = MessageStatus.error, interrupted_error()
            else:
                status = MessageStatus.cancelled
                error = ErrorEvent(code=ErrorCode.cancelled, message="turn cancelled")
        # The ending is chosen, with no await since: from here a cancel is refused.
        turn.state = "ending"
        ending = asyncio.ensure_future(self._finish(turn, status, error))
        while not ending.done():
            try:
                await asyncio.shield(ending)
            except asyncio.CancelledError:
                cancelled = True  # once the turn has ended, as it must
        ending.result()
        if cancelled:
            raise asyncio.CancelledError

    async def _answer(self, turn: Turn) -> tuple[MessageStatus, ErrorEvent | None]:
        """Run the turn until it has its answer; how it ended, and the error frame if it failed.

        :raises asyncio.CancelledError: the turn was cancelled or interrupted.
        """
        try:
            assert turn.user_row is not None
            await written(turn.user_row)
            await self.plugins.call_each(
                "on_turn_start", session=turn.session, turn_id=turn.id, message=turn.content
            )
            await self.loop.run(turn, await self._history(turn))
            return MessageStatus.complete, None
        except ModelError as exc:
            error = ErrorEvent(code=exc.code, message=str(exc), retryable=exc.retryable)
        except TurnError as exc:
            error = ErrorEvent(code=exc.code, message=exc.message, retryable=exc.retryable)
        except StorageUnavailable:
            error = unavailable_error()
        except Exception:
            log.exception("turn %s failed", turn.id)
            error = ErrorEvent(
                code=ErrorCode.internal, message="the turn failed; see the server log"
            )
        return MessageStatus.error, error

    async def _finish(self, turn: Turn, status: MessageStatus, error: ErrorEvent | None) -> None:
        """Store the assistant row, send the one terminal frame, free the session."""
        session_id = turn.session.session_id
        eventlog = self.bus.log
        # Read when the writer runs the row, so a row still queued takes the final status.
        final = {"status": status}
        row = eventlog.submit(
            lambda: Message.create(
                session_id=session_id,
                turn_id=turn.id,
                role="assistant",
                content=turn.answer,
                status=final["status"],
                usage=dataclasses.asdict(turn.usage) if turn.usage else None,
            )
        )
        try:
            # Stored before the terminal frame: a client that reacts to it finds the row.
            stored = await written(row)
        except StorageUnavailable:
            stored, failure = None, unavailable_error()
        except Exception:
            log.exception("storing the answer of turn %s failed", turn.id)
            stored = None
            failure = ErrorEvent(code=ErrorCode.internal, message="the answer was not stored")
        terminal: ServerEvent
        if error is not None:
            terminal = error
        elif stored is not None:
            terminal = FinalAnswer(content=turn.answer, message_id=stored.id)
        else:
            # A row still queued is written with this status when storage is back.
            final["status"] = status = MessageStatus.error
            terminal = failure
        self._end(turn, terminal)
        turn.state = "ended"
        eventlog.settle(session_id, turn.channel.last_seq)
        await self.plugins.call_each(
            "on_turn_end",
            session=turn.session,
            turn_id=turn.id,
            status=status.value,
            answer=turn.answer,
        )
        self.bus.release(session_id, busy=self.is_running(session_id))

    async def _history(self, turn: Turn) -> list[ChatMessage]:
        rows = (
            await Message.filter(session_id=turn.session.session_id)
            .order_by("-id")
            .limit(HISTORY_MESSAGES)
            .values_list("role", "content")
        )
        return [ChatMessage(role=role, content=content) for role, content in reversed(rows)]

    async def close_interrupted(self) -> int:
        """Close the turns a previous process left running when it died.

        Each gets its partial answer (the tokens in the event log) stored with
        status ``error``, ``team_dissolved`` ``failed`` for a team it left
        open, and an ``error`` ``interrupted`` event at the end of its
        session's log; its open requests are marked cancelled.

        :returns: how many turns were closed.
        """
        answered = Message.filter(role="assistant", turn_id__isnull=False).values("turn_id")
        orphans = await Message.filter(role="user").exclude(turn_id__in=Subquery(answered))
        closed = 0
        for message in orphans:
            session_id, turn_id = message.session_id, message.turn_id
            if session_id in self._active:
                continue  # a turn of this process, between its start and its user message
            if self.cluster is not None and not await self.cluster.acquire(
                session_id, f"closing-{turn_id}"
            ):
                continue  # alive on another process, or being closed by one
            if self.cluster is not None and await Message.exists(role="assistant", turn_id=turn_id):
                self.cluster.release(session_id, 0)  # it ended while this process waited
                continue
            closed += 1
            frames = [
                json.loads(frame)
                for frame in await Event.filter(
                    turn_id=turn_id, type__in=("token", "team_formed", "team_dissolved")
                )
                .order_by("seq")
                .values_list("frame", flat=True)
            ]
            # The answer is the turn's own tokens; an expert's are its team's business.
            partial = "".join(
                f["content"] for f in frames if f["type"] == "token" and not f.get("expert")
            )
            await self.bus.log.write(
                lambda: _close_rows(session_id, turn_id, partial),  # noqa: B023 (awaited here)
                timeout_s=None,  # at start-up, or in the reaper: nobody waits on it
            )
            channel = await self.bus.channel(session_id)
            # The dead process may have sent frames it never logged (the log is
            # written behind): its reservation is above every seq a client saw.
            channel.last_seq = await self.bus.log.reserve(
                session_id, await self.bus.last_seq(session_id)
            )
            teams = [f["team_id"] for f in frames if f["type"] == "team_formed"]
            ended = {f["team_id"] for f in frames if f["type"] == "team_dissolved"}
            events: list[ServerEvent] = [
                TeamDissolved(team_id=team, reason="failed") for team in teams if team not in ended
            ]
            for event in [*events, interrupted_error()]:
                event.turn_id = turn_id
                channel.publish(event)
            self.bus.log.settle(session_id, channel.last_seq)
            if self.cluster is not None:
                self.cluster.release(session_id, channel.last_seq)
            self.bus.release(session_id, busy=session_id in self._active)
            log.warning(
                "closed turn %s of session %s, interrupted by a restart", turn_id, session_id
            )
        await self.bus.log.flush()
        return closed

    def _free(self, turn: Turn) -> None:
        session_id = turn.session.session_id
        if self._active.get(session_id) is turn:
            del self._active[session_id]
            if self.cluster is not None:
                # Queued behind the turn's last frame, so other processes see that first.
                self.cluster.release(session_id, turn.channel.last_seq)

    def _end(self, turn: Turn, event: ServerEvent) -> None:
        # Publish the last frame and free the session with no await in between:
        # a client that reacts to the frame finds the session free.
        turn.emit(event)
        metrics.turn_ended(turn.id, event, turn.usage)
        self._free(turn)


async def _close_rows(session_id: str, turn_id: str, partial: str) -> None:
    """A dead turn's assistant row, and its open requests marked cancelled."""
    async with in_transaction():
        await Message.create(
            session_id=session_id,
            turn_id=turn_id,
            role="assistant",
            content=partial,
            status=MessageStatus.error,
        )
        await PendingRequest.filter(turn_id=turn_id, status=RequestStatus.open).update(
            status=RequestStatus.cancelled, resolved_at=datetime.now(UTC)
        )
