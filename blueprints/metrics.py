"""``GET /metrics``: Prometheus' text format (see :mod:`agent.metrics`)."""

from __future__ import annotations

import ipaddress

from quart import Blueprint, Response, request

from agent import metrics
from blueprints import runtime
from blueprints.auth import authenticate
from blueprints.errors import Forbidden

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
async def serve_metrics() -> Response:
    """Every `quartet_*` metric, in Prometheus' text format."""
    await _check_access()
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


async def _check_access() -> None:
    """As ``QUARTET_METRICS_ACCESS`` says: loopback or the admin key, the admin key, or anyone.

    :raises Unauthorized: a key is needed and none, or a bad one, came.
    :raises Forbidden: the key is not the admin key.
    """
    access = runtime().settings.metrics_access
    if access == "open" or (access == "loopback" and _from_loopback()):
        return
    key = await authenticate(request.headers, request.args)
    if not key.is_admin:
        raise Forbidden("metrics need the admin key, or a request from this host")


def _from_loopback() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
