"""One pure-ASGI middleware in front of the app: request-size caps, metrics, response headers, and the
access audit's row of the request with the status it got (api/audit.py).

Pure ASGI rather than `BaseHTTPMiddleware` because it sits on every request's hot path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.api.audit import AUDIT_ROW
from assay.api.errors import SECURITY_HEADERS

if TYPE_CHECKING:
    from assay.api.audit import AccessLog

REQUESTS = Counter(
    "assay_api_requests", "HTTP requests answered, by route and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "assay_api_request_duration_seconds",
    "Time from request to the end of the response, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RATE_LIMITED = Counter("assay_api_rate_limited", "Requests refused with 429, by key id.", ["key"])
DB_UNAVAILABLE = Counter("assay_api_database_unavailable", "Requests answered 503 for want of the database.")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEADERS = list(SECURITY_HEADERS)


def _problem(status: int, title: str, detail: str) -> tuple[Message, Message]:
    body = orjson.dumps({"title": title, "status": status, "detail": detail})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ],  # the security headers: added by send_wrapper
    }
    return start, {"type": "http.response.body", "body": body}


def _fits(length: bytes, limit: int) -> bool:
    # ASCII digits only, and few enough for int() (which refuses over 4,300 digits)
    return 0 < len(length) <= 18 and length.isdigit() and int(length) <= limit


class _BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_query_bytes: int, max_body_bytes: int, audit: AccessLog | None = None
    ) -> None:
        self.app = app
        self.max_query_bytes = max_query_bytes
        self.max_body_bytes = max_body_bytes
        self.audit = audit  # queues each admitted request's row (api/audit.py); None: no audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = message.get("headers", [])
                # a route that says how long its response may be kept (ETag'd mart pages) keeps that
                given = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *(h for h in _HEADERS if h[0] not in given)]
            await send(message)

        try:
            refusal = self._refuse(scope)
            if refusal:
                for message in refusal:
                    await send_wrapper(message)
                return
            if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
                # a chunked body announces no length: read it (up to the cap) before the app runs,
                # so a handler that never reads its body cannot let an oversized one through
                receive = await self._buffered(receive)
            await self.app(scope, self._counting(receive), send_wrapper)
        except _BodyTooLarge:
            if not response_started:
                for message in _problem(413, "Content Too Large", self._body_detail()):
                    await send_wrapper(message)
        finally:
            # FastAPI routes leave themselves in the scope; plain Starlette routes only their endpoint
            template = getattr(scope.get("route"), "path", None) or getattr(
                scope.get("endpoint"), "route_path", "unmatched"
            )
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded labels
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(template).observe(time.perf_counter() - started)
            row = scope.get(AUDIT_ROW)  # an admitted request's (api/state.py `authenticate`)
            if row is not None and self.audit is not None:
                # 500 when the app raised: the 500 handler answers outside this middleware
                self.audit.finish(row, status)

    def _body_detail(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"

    def _refuse(self, scope: Scope) -> tuple[Message, Message] | None:
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            return _problem(414, "URI Too Long", f"query string longer than {self.max_query_bytes} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length" and not _fits(value, self.max_body_bytes):
                return _problem(413, "Content Too Large", self._body_detail())
        return None

    async def _buffered(self, receive: Receive) -> Receive:
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client went away: pass that on
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body_bytes:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        return replay

    def _counting(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        return wrapped


class PoolCollector:
    """Gauges of the connection pools open in this process (one per app; not in multi-worker mode)."""

    def __init__(self) -> None:
        self.sources: dict[int, Callable[[], dict[str, int]]] = {}

    def collect(self):
        totals: dict[str, int] = {}
        for stats in list(self.sources.values()):
            for name, value in stats().items():
                totals[name] = totals.get(name, 0) + value
        for name, help_text in (
            ("pool_size", "Connections the pool holds (in use or idle)."),
            ("pool_available", "Idle connections ready for a request."),
            ("requests_waiting", "Requests waiting for a connection."),
        ):
            yield GaugeMetricFamily(f"assay_api_db_{name}", help_text, value=totals.get(name, 0))


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def metrics_payload() -> tuple[bytes, str]:
    """Prometheus text exposition: across workers when `PROMETHEUS_MULTIPROC_DIR` is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
