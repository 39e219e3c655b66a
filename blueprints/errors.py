"""One exception hierarchy and one JSON error envelope for the REST API.

Every error body is ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from agent.protocol import describe_validation_error

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


def error_response(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.code, exc.message, exc.status)

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(exc: RequestSchemaValidationError) -> tuple[Response, int]:
        error = exc.validation_error
        if isinstance(error, ValidationError):
            message = describe_validation_error(error)
        else:
            message = f"invalid request body: {error}"
        return error_response("bad_request", message, 400)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = {413: "too_large"}.get(status, (exc.name or "error").lower().replace(" ", "_"))
        return error_response(code, exc.description or exc.name, status)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", exc_info=exc)
        return error_response("internal", "internal server error; see the server log", 500)
