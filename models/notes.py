"""Notes the built-in ``save_note`` tool keeps for a session."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from models.chat import Session


class Note(Model):
    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="notes", on_delete=fields.CASCADE
    )
    text = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notes"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Note({self.id})"
