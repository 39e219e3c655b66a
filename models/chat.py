"""Chat sessions, their messages and their event log."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from models.auth import ApiKey


def new_session_id() -> str:
    return uuid.uuid4().hex


class Session(Model):
    id = fields.CharField(max_length=36, primary_key=True, default=new_session_id)
    owner: fields.ForeignKeyRelation[ApiKey] = fields.ForeignKeyField(
        "models.ApiKey", related_name="sessions", on_delete=fields.CASCADE
    )
    title = fields.CharField(max_length=200, default="")
    metadata = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    seq_reserved = fields.IntField(
        default=0,
        db_default=0,
        description="Seqs up to this may have reached a client: a turn numbers on above it.",
    )

    messages: fields.ReverseRelation[Message]
    events: fields.ReverseRelation[Event]

    class Meta:
        table = "sessions"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Session({self.id})"


class MessageStatus(StrEnum):
    complete = "complete"
    cancelled = "cancelled"
    error = "error"


class Message(Model):
    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="messages", on_delete=fields.CASCADE
    )
    turn_id = fields.CharField(max_length=36, null=True)
    role = fields.CharField(max_length=16)
    content = fields.TextField()
    status = fields.CharEnumField(MessageStatus, default=MessageStatus.complete)
    usage = fields.JSONField(
        null=True, description="An assistant message's tokens: input_tokens, output_tokens."
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Message({self.id}, {self.role})"


class Event(Model):
    """One logged server frame, stored as the exact JSON the clients received."""

    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="events", on_delete=fields.CASCADE
    )
    seq = fields.IntField()
    type = fields.CharField(max_length=32)
    turn_id = fields.CharField(max_length=36, null=True)
    frame = fields.TextField()

    class Meta:
        table = "events"
        unique_together = (("session", "seq"),)
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"Event({self.session_id}#{self.seq} {self.type})"


class RequestKind(StrEnum):
    confirmation = "confirmation"
    question = "question"


class RequestStatus(StrEnum):
    open = "open"
    approved = "approved"
    denied = "denied"
    answered = "answered"
    timeout = "timeout"
    cancelled = "cancelled"


class PendingRequest(Model):
    """A confirmation or question a turn put to the human, and how it ended.

    ``seq`` is the seq of the ``confirmation_request`` / ``ask_human`` event.
    """

    id = fields.CharField(max_length=36, primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="requests", on_delete=fields.CASCADE
    )
    turn_id = fields.CharField(max_length=36)
    kind = fields.CharEnumField(RequestKind)
    seq = fields.IntField()
    tool = fields.CharField(max_length=64, null=True)
    arguments = fields.JSONField(null=True)
    prompt = fields.TextField(description="The question, or the reason a confirmation is needed.")
    timeout_s = fields.FloatField()
    status = fields.CharEnumField(RequestStatus, default=RequestStatus.open)
    answer = fields.TextField(null=True, description="The human's reply, or a denial's reason.")
    created_at = fields.DatetimeField(auto_now_add=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pending_requests"
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"PendingRequest({self.id}, {self.kind}, {self.status})"
