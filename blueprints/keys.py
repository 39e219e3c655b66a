"""API keys: the admin key issues keys for clients."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import validate_request, validate_response

from blueprints import runtime
from blueprints.auth import load_key, require_admin
from blueprints.errors import KEYED, document_errors

bp = Blueprint("keys", __name__, url_prefix="/api/v1/keys")
bp.before_request(load_key)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    admin: bool = False


class KeyCreated(BaseModel):
    id: int
    name: str
    admin: bool
    created_at: datetime
    key: str = Field(description="The raw key. It is shown only this once.")


@bp.post("")
@validate_request(KeyCreate)
@validate_response(KeyCreated, 201)
@document_errors(400, 403, 413, *KEYED)
async def create_key(data: KeyCreate) -> tuple[KeyCreated, int]:
    """Issue a new API key (admin only)."""
    require_admin()
    record, raw = await runtime().keys.issue(data.name, is_admin=data.admin)
    created = KeyCreated(
        id=record.id, name=record.name, admin=record.is_admin, created_at=record.created_at, key=raw
    )
    return created, 201
