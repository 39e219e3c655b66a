"""API keys on requests: who is asking (``X-API-Key``, ``Authorization: Bearer`` or
``?api_key=``), and the per-key limits every request and new session is held to."""

from __future__ import annotations

from collections.abc import Mapping

from quart import Response, g, request

from agent.limits import RateLimited
from blueprints import runtime
from blueprints.errors import Conflict, Forbidden, Unauthorized, error_response
from models import ApiKey, Session


class SessionLimitReached(Conflict):
    code = "session_limit"


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
    key = await runtime().keys.find(raw)
    if key is None:
        raise Unauthorized("the API key is not valid")
    return key


def rate_limited_response(exc: RateLimited) -> tuple[Response, int]:
    """429 in the error envelope, with ``Retry-After``."""
    response, status = error_response("rate_limited", exc.message, 429)
    response.headers["Retry-After"] = exc.retry_after_header
    return response, status


async def load_key() -> tuple[Response, int] | None:
    """``before_request`` hook for blueprints that need a key; sets ``g.api_key``.

    A key over its request rate is answered 429 here, before the view runs.
    """
    g.api_key = await authenticate(request.headers, request.args)
    try:
        runtime().limits.requests.check(g.api_key.id)
    except RateLimited as exc:
        return rate_limited_response(exc)
    return None


def current_key() -> ApiKey:
    return g.api_key


def require_admin() -> ApiKey:
    key = current_key()
    if not key.is_admin:
        raise Forbidden("this needs the admin key")
    return key


async def check_session_quota(key: ApiKey) -> None:
    """Call before creating a session for *key*.

    Concurrent requests of one key may together pass the limit by as many as are in flight.

    :raises SessionLimitReached: the key holds ``QUARTET_MAX_SESSIONS_PER_KEY`` sessions.
    """
    limit = runtime().limits.max_sessions
    if limit and await Session.filter(owner_id=key.id).count() >= limit:
        raise SessionLimitReached(
            f"this key holds {limit} sessions, the most it may (QUARTET_MAX_SESSIONS_PER_KEY); "
            "delete some first"
        )
