"""The API's documents: ``/openapi.json``, ``/docs`` (Swagger UI) and the WebSocket protocol.

Swagger UI's scripts and styles come from the ``openapi-ui-bundles`` package
and are served from here, so ``/docs`` works with no network. quart-schema
builds the OpenAPI document from the routes; the protocol page is generated
from :mod:`agent.protocol`, the one definition of the wire frames.
"""

from __future__ import annotations

from typing import Any

from openapi_ui_bundles import swagger_ui
from quart import Blueprint, Quart, Response, send_from_directory
from quart_schema import QuartSchema, hide
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import Rule

from agent import protocol

bp = Blueprint("apidocs", __name__)

ASSETS_PATH = "/docs/assets"
PROTOCOL_PATH = "/docs/protocol"

#: Every way a request may present its key (any one is enough); quart-schema's
#: schemes take no description, so DESCRIPTION says what each is.
SECURITY_SCHEMES = {
    "header": {
        "type": "apiKey",
        "name": "X-API-Key",
        "in_": "header",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
    },
    "query": {
        "type": "apiKey",
        "name": "api_key",
        "in_": "query",
    },
}

DESCRIPTION = f"""\
Quartet: an async chat-agent server.

Chat clients talk to it over one WebSocket per session,
`/api/v1/chat/ws/{{session_id}}?api_key=KEY[&last_seq=N]`; its frames are
described on the [WebSocket protocol page]({PROTOCOL_PATH}), generated from
`agent/protocol.py`. The REST operations below manage keys, sessions, skills
and plugins. Every error is `{{"error": {{"code", "message"}}}}`.

A key may be sent three ways: the `X-API-Key` header, `Authorization: Bearer`,
or `?api_key=`. `/healthz`, `/readyz`, `/docs` and `/openapi.json` need none.
"""


#: Operations that need no key.
PUBLIC_PATHS = {"/healthz", "/readyz"}

#: What an operation that states no success response returns, by method.
DEFAULT_SUCCESS = {
    "delete": (204, {"description": "Deleted; no body."}),
    "get": (200, {"description": "OK."}),
}

PROBE_RESPONSES = {
    200: {"description": "Up (or ready).", "content": {"application/json": {}}},
    503: {
        "description": "Not ready: `reason` says which check failed.",
        "content": {"application/json": {}},
    },
}

METRICS_RESPONSES = {
    200: {
        "description": "Prometheus' text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    401: {"description": "Not from loopback, and no valid key (see QUARTET_METRICS_ACCESS)."},
    403: {"description": "The key is not the admin key."},
}


class QuartetOpenAPI(OpenAPIProvider):
    """quart-schema's document, limited to the API and completed where routes cannot say.

    Only ``/api/…`` and the probes and metrics are documented (the chat page and
    static files are not an API); the probes carry no security requirement; an
    operation that names no success response gets the usual one.
    """

    def generate_rules(self) -> Any:
        for rule in super().generate_rules():
            if rule.rule.startswith("/api/") or rule.rule in {*PUBLIC_PATHS, "/metrics"}:
                yield rule

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        for path, operations in paths.items():
            for method, operation in operations.items():
                responses = operation["responses"]
                if path in PUBLIC_PATHS:
                    operation["security"] = []
                    responses.update(
                        PROBE_RESPONSES if path == "/readyz" else {200: PROBE_RESPONSES[200]}
                    )
                elif path == "/metrics":
                    responses.update(METRICS_RESPONSES)
                if not any(200 <= int(code) < 300 for code in responses):
                    code, response = DEFAULT_SUCCESS.get(method, (200, {"description": "OK."}))
                    responses[code] = response
        return paths, components


def init_app(app: Quart) -> None:
    """Attach the OpenAPI document, Swagger UI from local assets, and the protocol page."""
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{ASSETS_PATH}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{ASSETS_PATH}/swagger-ui.css"
    QuartSchema(
        app,
        info={"title": "Quartet", "version": "1", "description": DESCRIPTION},
        security_schemes=SECURITY_SCHEMES,
        security=[{name: []} for name in SECURITY_SCHEMES],
        # Both load their scripts from a CDN: only Swagger UI is served, from local assets.
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=QuartetOpenAPI,
    )
    app.register_blueprint(bp)


@bp.get(f"{ASSETS_PATH}/<path:filename>")
@hide
async def swagger_assets(filename: str) -> Response:
    """Swagger UI's scripts and styles, from the openapi-ui-bundles package."""
    return await send_from_directory(swagger_ui.static_path, filename)


@bp.get(PROTOCOL_PATH)
@hide
async def protocol_page() -> Response:
    """The WebSocket protocol's frames and error codes, as Markdown."""
    return Response(protocol.render_markdown(), content_type="text/markdown; charset=utf-8")
