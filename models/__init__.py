"""Tortoise models: everything Quartet stores.

Modules, one per concern: :mod:`models.auth` (API keys), :mod:`models.chat`
(sessions, messages, the event log, requests to the human),
:mod:`models.skills` (REST skills) and :mod:`models.notes` (the notes tools).
"""

from models.auth import ApiKey
from models.chat import (
    Event,
    Message,
    MessageStatus,
    PendingRequest,
    RequestKind,
    RequestStatus,
    Session,
)
from models.notes import Note
from models.skills import Skill

MODEL_MODULES = ["models.auth", "models.chat", "models.skills", "models.notes"]

__all__ = [
    "MODEL_MODULES",
    "ApiKey",
    "Event",
    "Message",
    "MessageStatus",
    "Note",
    "PendingRequest",
    "RequestKind",
    "RequestStatus",
    "Session",
    "Skill",
]
