"""One exception hierarchy and one JSON error envelope for the REST API.

Every error body is ``{"error": {"code": ..., "message": ...}}``; the
:func:`document_errors` decorator puts the statuses a route can answer with
into the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError, document_response
from tortoise.exceptions import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from agent.protocol import describe_validation_error

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)


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


class ErrorDetail(BaseModel):
    code: str = Field(description="`bad_request`, `unauthorized`, `forbidden`, `not_found`, …")
    message: str = Field(description="What was wrong; it names the field when there is one.")


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


class BadRequestBody(ErrorBody):
    """Bad input: a body, query or path that is not valid. The message names the field."""


class UnauthorizedBody(ErrorBody):
    """No API key, or one that is not valid."""


class ForbiddenBody(ErrorBody):
    """The key may not do this."""


class NotFoundBody(ErrorBody):
    """Nothing by that name or id for this key (another key's is reported missing too)."""


class ConflictBody(ErrorBody):
    """It already exists, or a limit on how many a key may have is reached."""


class TooLargeBody(ErrorBody):
    """The request body is larger than the server takes."""


class RateLimitedBody(ErrorBody):
    """Too many requests for this key; the Retry-After header says when to try again."""


ERROR_BODIES: dict[int, type[ErrorBody]] = {
    400: BadRequestBody,
    401: UnauthorizedBody,
    403: ForbiddenBody,
    404: NotFoundBody,
    409: ConflictBody,
    413: TooLargeBody,
    429: RateLimitedBody,
}
#: What any route behind an API key can answer.
KEYED = (401, 429)


def document_errors(*statuses: int) -> Callable[[F], F]:
    """Document the error responses a route can give (only the document; nothing is checked)."""

    def decorator(func: F) -> F:
        for status in statuses:
            func = document_response(ERROR_BODIES[status], status)(func)
        return func

    return decorator


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

    # The parsers refuse these inputs before they get this far; should one slip
    # through, it is still the client's input, not a server fault.
    @app.errorhandler(UnicodeError)
    async def not_unicode(exc: UnicodeError) -> tuple[Response, int]:
        log.warning("text that is not valid Unicode reached a handler: %s", exc)
        return error_response("bad_request", "the request holds text that is not Unicode", 400)

    @app.errorhandler(RecursionError)
    async def too_deep(exc: RecursionError) -> tuple[Response, int]:
        log.warning("input nested too deeply reached a handler: %s", exc)
        return error_response("bad_request", "the request is nested too deeply", 400)

    # Storage that fails (a full disk, a lost database) is an outage, not a bug:
    # 503 tells a client to try again. Integrity errors are bugs and stay 500.
    @app.errorhandler(OperationalError)
    async def storage_failed(exc: OperationalError) -> tuple[Response, int]:
        if isinstance(exc, IntegrityError):
            return await unexpected(exc)
        log.error("storage failed during a request: %s", exc)
        response, status = error_response(
            "unavailable", "storage is failing; try again shortly", 503
        )
        response.headers["Retry-After"] = "1"
        return response, status

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", exc_info=exc)
        return error_response("internal", "internal server error; see the server log", 500)
