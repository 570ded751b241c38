"""Error responses: RFC 9457 problem details, never a stack trace, SQL or driver message.

Every handler answers `application/problem+json` with `title`, `status` and a `detail` written for the
caller. Unexpected exceptions are logged with a reference that the 500 body repeats, so an operator can
find the traceback without the caller ever seeing it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from assay.api.audit import AUDIT_KEY, AUDIT_ROW, route_and_mart

log = logging.getLogger("assay.api")

PROBLEM_JSON = "application/problem+json"
# On every response (GuardMiddleware adds them; the 500 handler and the head refusals, which answer
# outside it, add them themselves).
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class ApiError(Exception):
    """An error with a status and a message meant for the API's caller."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    title: str
    status: int
    detail: str


_MEANINGS = {
    400: "A parameter is unknown or its value does not fit the column's type.",
    401: "No API key, or an invalid or revoked one.",
    403: "The key may not use these endpoints or read this mart.",
    404: "No such mart or task, or no row with that key.",
    408: "The request did not arrive whole within ASSAY_API_REQUEST_READ_TIMEOUT_S.",
    409: "The table behind this endpoint has not been built yet; the detail says which command builds it.",
    413: "The request body is larger than the API accepts.",
    414: "The query string is longer than the API accepts.",
    431: "The request's headers are larger than the API accepts.",
    429: "The key's rate limit is exceeded; see Retry-After.",
    503: "The database is unavailable or busy; see Retry-After.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (all problem+json)."""
    return {
        status: {"model": Problem, "description": _MEANINGS[status], "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


def problems_only(openapi: dict[str, Any]) -> None:
    """Make the generated OpenAPI document say what the API answers on errors: FastAPI puts each error
    model under the route's `application/json` and adds a 422 with its validation schema to every route
    with parameters, while every error here is `application/problem+json` (`Problem`) and a parameter
    that fails validation is a 400."""
    fallback = {"$ref": "#/components/schemas/Problem"}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status, response in responses.items():
                if status[0] in "45":
                    schema = response.get("content", {}).get("application/json", {}).get("schema", fallback)
                    response["content"] = {PROBLEM_JSON: {"schema": schema}}
    schemas = openapi.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}" not in orjson.dumps(openapi).decode():
            del schemas[name]


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    body = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


# Refusals the access audit records (counted per key, client and route unless the request has its own
# row: api/audit.py).
AUDITED_REFUSALS = frozenset({401, 403, 429})


def _audit_refusal(request: Request, status: int) -> None:
    state = getattr(request.app.state, "assay", None)
    audit = getattr(state, "audit", None)
    if audit is None:
        return
    scope = request.scope
    client = scope.get("client")
    route, mart = route_and_mart(scope)
    audit.refused(
        scope.get(AUDIT_ROW),
        scope.get(AUDIT_KEY),
        client[0] if client else "unknown",
        request.method,
        route,
        mart,
        status,
    )


def _validation_detail(exc: RequestValidationError) -> str:
    # Only where and what: pydantic's messages can echo inputs and internal type names.
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "header"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status in AUDITED_REFUSALS:
            _audit_refusal(request, exc.status)
        return problem(exc.status, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        detail = {404: "no such endpoint", 405: "method not allowed: the API is read-only"}.get(
            status, HTTPStatus(status).phrase
        )
        if isinstance(exc.detail, str) and status not in (404, 405, 500):
            detail = exc.detail
        return problem(status, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return problem(400, _validation_detail(exc))

    @app.exception_handler(psycopg.errors.DataError)
    async def _data_error(request: Request, exc: psycopg.errors.DataError) -> Response:
        # A bound value Postgres refused (out of range for the column's type, ...): the caller's input.
        return problem(400, "a value is not valid for its column's type")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        log.error("unhandled error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
        # Starlette answers this one outside the middleware stack: add the security headers here
        headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
        return problem(
            500, f"internal error (reference {reference}); the server log has the details", headers
        )
