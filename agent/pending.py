"""Requests a turn puts to the human: tool confirmations and ``ask_human`` questions.

A turn opens a request by publishing its frame (so it is logged and reaches
every client of the session) and then waits for the first reply from any of
those clients, for the timeout, or for a cancel. Each request is stored as a
:class:`~models.PendingRequest` row that records how it ended.

Replies are matched in memory, in one synchronous step, so of two replies to
the same request exactly one wins and the other gets ``unknown_request``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from agent.eventlog import StorageUnavailable
from agent.protocol import (
    AskHuman,
    ConfirmationReply,
    ConfirmationRequest,
    ConfirmationResult,
    ErrorCode,
    HumanReply,
    ProtocolError,
)
from models import PendingRequest, RequestKind, RequestStatus

if TYPE_CHECKING:
    from agent.turns import Turn

Reply = ConfirmationReply | HumanReply
REPLY_FRAME = {RequestKind.confirmation: "confirmation_reply", RequestKind.question: "human_reply"}


@dataclass(frozen=True, slots=True)
class Decision:
    """How a confirmation ended."""

    approved: bool
    by: Literal["user", "timeout", "cancel"]
    reason: str | None = None


@dataclass(slots=True)
class _Open:
    session_id: str
    kind: RequestKind
    event: ConfirmationRequest | AskHuman
    future: asyncio.Future[Reply]


class PendingRequests:
    """The open requests of this process's turns."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._open: dict[str, _Open] = {}

    def open_events(self, session_id: str) -> list[ConfirmationRequest | AskHuman]:
        """The frames of the session's unanswered requests, oldest first.

        A client that connects while a turn waits gets these after ``connected``.
        """
        events = [
            entry.event
            for entry in self._open.values()
            if entry.session_id == session_id and not entry.future.done()
        ]
        return sorted(events, key=lambda event: event.seq)

    def answer(self, session_id: str, reply: Reply) -> None:
        """Hand a client's reply to the waiting turn.

        :raises ProtocolError: ``unknown_request`` when no request with that id
            is open in this session (never opened, already answered, timed out
            or cancelled); ``bad_request`` when the reply is of the wrong kind.
        """
        entry = self._open.get(reply.request_id)
        if entry is None or entry.session_id != session_id or entry.future.done():
            raise ProtocolError(
                ErrorCode.unknown_request,
                f"no open request with id {reply.request_id!r} in this session; "
                "it was never opened, or was already answered, timed out or cancelled",
            )
        check_reply_kind(entry.kind, reply)
        entry.future.set_result(reply)

    async def confirm(
        self, turn: Turn, *, tool: str, arguments: dict[str, Any], reason: str
    ) -> Decision:
        """Ask the human to approve a tool call; a ``confirmation_result`` always follows."""
        request = ConfirmationRequest(
            request_id=new_request_id(),
            tool=tool,
            arguments=arguments,
            reason=reason,
            timeout_s=self.timeout_s,
        )
        try:
            reply = await self._wait(
                turn, RequestKind.confirmation, request, tool=tool, arguments=arguments
            )
        except (asyncio.CancelledError, StorageUnavailable):
            turn.emit(
                ConfirmationResult(request_id=request.request_id, approved=False, by="cancel")
            )
            _resolve(turn, request.request_id, RequestStatus.cancelled)
            raise
        if reply is None:
            decision = Decision(approved=False, by="timeout")
            status = RequestStatus.timeout
        else:
            assert isinstance(reply, ConfirmationReply)
            decision = Decision(approved=reply.approved, by="user", reason=reply.reason)
            status = RequestStatus.approved if reply.approved else RequestStatus.denied
        turn.emit(
            ConfirmationResult(
                request_id=request.request_id, approved=decision.approved, by=decision.by
            )
        )
        _resolve(turn, request.request_id, status, decision.reason)
        return decision

    async def ask(self, turn: Turn, question: str) -> str | None:
        """Ask the human *question*; returns the reply, or ``None`` on timeout."""
        request = AskHuman(request_id=new_request_id(), question=question, timeout_s=self.timeout_s)
        try:
            reply = await self._wait(turn, RequestKind.question, request)
        except (asyncio.CancelledError, StorageUnavailable):
            _resolve(turn, request.request_id, RequestStatus.cancelled)
            raise
        if reply is None:
            _resolve(turn, request.request_id, RequestStatus.timeout)
            return None
        assert isinstance(reply, HumanReply)
        _resolve(turn, request.request_id, RequestStatus.answered, reply.content)
        return reply.content

    async def _wait(
        self,
        turn: Turn,
        kind: RequestKind,
        request: ConfirmationRequest | AskHuman,
        **row: Any,
    ) -> Reply | None:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        # Registered before the frame goes out, so that no reply can outrun it.
        self._open[request.request_id] = _Open(turn.session.session_id, kind, request, future)
        try:
            turn.emit(request)
            await turn.channel.log.write(
                lambda: PendingRequest.create(
                    id=request.request_id,
                    session_id=turn.session.session_id,
                    turn_id=turn.id,
                    kind=kind,
                    seq=request.seq,
                    prompt=request.reason
                    if isinstance(request, ConfirmationRequest)
                    else request.question,
                    timeout_s=self.timeout_s,
                    **row,
                )
            )
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                return None
        finally:
            del self._open[request.request_id]


def check_reply_kind(kind: RequestKind, reply: Reply) -> None:
    """:raises ProtocolError: ``bad_request`` when *reply* is not the frame that answers *kind*."""
    if (kind is RequestKind.confirmation) != isinstance(reply, ConfirmationReply):
        raise ProtocolError(
            ErrorCode.bad_request,
            f"request {reply.request_id!r} is answered with a {REPLY_FRAME[kind]!r} frame",
        )


def new_request_id() -> str:
    return uuid.uuid4().hex


def _resolve(turn: Turn, request_id: str, status: RequestStatus, answer: str | None = None) -> None:
    """Record how a request ended, queued behind its row; nothing waits for it."""
    resolved_at = datetime.now(UTC)
    turn.channel.log.submit(
        lambda: PendingRequest.filter(id=request_id).update(
            status=status, answer=answer, resolved_at=resolved_at
        )
    )
