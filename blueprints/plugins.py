"""What is loaded: plugins, their hooks, skills and models."""

from __future__ import annotations

from quart import Blueprint

from blueprints import runtime
from blueprints.auth import load_key
from blueprints.errors import KEYED, document_errors

bp = Blueprint("plugins", __name__, url_prefix="/api/v1/plugins")
bp.before_request(load_key)


@bp.get("")
@document_errors(*KEYED)
async def list_plugins() -> dict:
    """List the loaded plugins with their hooks, skills, tools, experts and models."""
    rt = runtime()
    return {"plugins": rt.plugins.describe(), "model": rt.settings.model}
