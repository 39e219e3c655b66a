"""API key authentication: ``X-API-Key``, ``Authorization: Bearer`` or ``?api_key=``."""

from __future__ import annotations

from collections.abc import Mapping

from quart import g, request

from blueprints.errors import Forbidden, Unauthorized
from models import ApiKey


def presented_key(headers: Mapping[str, str], args: Mapping[str, str]) -> str | None:
    if key := headers.get("X-API-Key"):
        return key
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return args.get("api_key") or None


async def authenticate(headers: Mapping[str, str], args: Mapping[str, str]) -> ApiKey:
    """The key a request presents.

    :raises Unauthorized: no key, or one that is not known.
    """
    raw = presented_key(headers, args)
    if raw is None:
        raise Unauthorized("an API key is required (X-API-Key, Authorization: Bearer, ?api_key=)")
    key = await ApiKey.lookup(raw)
    if key is None:
        raise Unauthorized("the API key is not valid")
    return key


async def load_key() -> None:
    """``before_request`` hook for blueprints that need a key; sets ``g.api_key``."""
    g.api_key = await authenticate(request.headers, request.args)


def current_key() -> ApiKey:
    return g.api_key


def require_admin() -> ApiKey:
    key = current_key()
    if not key.is_admin:
        raise Forbidden("this needs the admin key")
    return key
