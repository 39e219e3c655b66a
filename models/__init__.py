"""Tortoise models: everything Quartet stores.

Modules, one per concern: :mod:`models.auth` (API keys), :mod:`models.chat`
(sessions, messages, the event log) and :mod:`models.skills` (REST skills).
"""

from models.auth import ApiKey
from models.chat import Event, Message, MessageStatus, Session
from models.skills import Skill

MODEL_MODULES = ["models.auth", "models.chat", "models.skills"]

__all__ = ["MODEL_MODULES", "ApiKey", "Event", "Message", "MessageStatus", "Session", "Skill"]
