"""JSON request bodies: strict UTF-8, bounded nesting, and a 400 that says what is wrong.

Quart's own ``get_json`` decodes the body with ``bytes.decode`` and parses it
with ``json.loads``, so a body that is not UTF-8 raises ``UnicodeDecodeError``
and a 5,000-deep one raises ``RecursionError``: both ended as 500s. This
request class parses with :func:`agent.json_limits.loads` instead, and every
body that cannot be read becomes :class:`~blueprints.errors.ApiError` (400).
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Request

from agent import json_limits
from blueprints.errors import ApiError


class JSONBodyRequest(Request):
    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        raw = await self.get_data(cache=cache, as_text=False)
        try:
            result = json_limits.loads(raw.decode("utf-8"))
        except ValueError as error:  # UnicodeDecodeError is one too
            if not silent:
                raise ApiError(_describe(error)) from None
            result = None
        if cache:
            self._cached_json[silent] = result
        return result


def _describe(error: ValueError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"the request body is not valid UTF-8 (byte {error.start})"
    if isinstance(error, json_limits.JSONLimitError):
        return f"the request body is refused: {error}"
    return f"the request body is not valid JSON: {error}"


def init_app(app: Quart) -> None:
    """Make every request of *app* read its JSON body this way."""
    app.request_class = JSONBodyRequest
