"""The ``save_note`` and ``list_notes`` tools: a session's notes, kept in the database.

Saving writes to the server, so ``save_note`` asks the human to approve each call.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models import Note
from plugins.hookspecs import hookimpl
from plugins.tools import Tool, ToolContext

MAX_NOTE_CHARS = 10_000
LIST_LIMIT = 100


class SaveNoteArgs(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="The note to keep.")


class ListNotesArgs(BaseModel):
    pass


async def save_note(args: SaveNoteArgs, ctx: ToolContext) -> dict[str, Any]:
    note = await Note.create(session_id=ctx.session.session_id, text=args.text)
    return {"id": note.id, "saved": True}


async def list_notes(args: ListNotesArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    notes = await Note.filter(session_id=ctx.session.session_id).order_by("id").limit(LIST_LIMIT)
    return [{"id": n.id, "text": n.text, "created_at": n.created_at.isoformat()} for n in notes]


@hookimpl
def register_tools() -> list[Tool]:
    return [
        Tool(
            name="save_note",
            description="Save a note for this chat session.",
            arguments=SaveNoteArgs,
            run=save_note,
            requires_confirmation=True,
            confirmation_reason="Saving a note writes to this session's stored notes.",
        ),
        Tool(
            name="list_notes",
            description=f"List this chat session's notes (the first {LIST_LIMIT}).",
            arguments=ListNotesArgs,
            run=list_notes,
        ),
    ]
