"""The web chat page: one HTML page and its static files, served without a key.

The page holds no data until the person gives it a key; it then talks to the
REST API and the chat WebSocket like any other client.
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, render_template

ROOT = Path(__file__).resolve().parents[1]

bp = Blueprint(
    "ui",
    __name__,
    template_folder=str(ROOT / "templates"),
    static_folder=str(ROOT / "static"),
    static_url_path="/static",
)

# Model output is hostile input: the page allows only its own scripts and styles,
# and images only from itself, so an injected <img> or <script> can neither run
# nor leak the conversation to a remote host, even if the sanitiser missed it.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@bp.get("/")
async def index() -> Response:
    """The chat page."""
    response = Response(await render_template("index.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
