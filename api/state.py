"""What every request handler needs, built once per app, and the dependency that admits a caller."""

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

from assay.api.audit import AUDIT_KEY, AccessLog
from assay.api.cache import ResponseCache
from assay.api.catalog import Catalog
from assay.api.db import Database
from assay.api.errors import ApiError
from assay.api.keys import KeyStore, Principal, unauthorized
from assay.api.middleware import RATE_LIMITED
from assay.api.ratelimit import RateLimiter
from assay.core.settings import ApiSettings


@dataclass
class AppState:
    settings: ApiSettings
    catalog: Catalog
    db: Database
    keys: KeyStore
    limiter: RateLimiter
    cache: ResponseCache
    # failed authentications per client address: checked before a key is looked up
    strangers: RateLimiter | None = None
    # who read what: one row per admitted request, queued when its response ends and written in
    # batches (api/audit.py)
    audit: AccessLog | None = None


def app_state(request: Request) -> AppState:
    return request.app.state.assay


# OpenAPI: the two ways to send a key (/docs shows an "Authorize" button); routes that need a key
# declare `SECURED`. Checked by `authenticate`, called first thing in each handler: a plain call rather
# than a FastAPI dependency, which costs more than the rest of a cached request together.
SECURITY_SCHEMES = {
    "bearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer assay_<id>_<secret>`",
    },
    "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`"},
}
SECURED = {"security": [{"bearerKey": []}, {"headerKey": []}]}


async def authenticate(request: Request) -> Principal:
    """The caller's key, checked and charged one request against its rate limit."""
    headers = request.headers
    token = headers.get("x-api-key")
    if token is None:
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise unauthorized("the Authorization header must be 'Bearer <key>'")
            token = credentials.strip()
    state: AppState = request.app.state.assay
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    strangers = state.strangers
    if strangers is not None:
        wait = strangers.peek(address)
        if wait is not None:
            # this address keeps failing: refuse before any key lookup, however well-formed the key
            RATE_LIMITED.labels("unauthenticated").inc()
            raise ApiError(
                429,
                f"too many requests without a valid API key; retry in {RateLimiter.retry_after(wait)} s",
                {"Retry-After": RateLimiter.retry_after(wait)},
            )
    try:
        principal = await state.keys.authenticate(token)
    except ApiError as exc:
        if exc.status == 401 and strangers is not None:
            strangers.check(address)
        raise
    request.scope[AUDIT_KEY] = principal.key_id  # a refusal from here on names the key
    wait = state.limiter.check(principal.key_id, principal.rate_limit_per_minute)
    if wait is not None:
        RATE_LIMITED.labels(principal.key_id).inc()
        raise ApiError(
            429,
            f"rate limit of this API key exceeded; retry in {RateLimiter.retry_after(wait)} s",
            {"Retry-After": RateLimiter.retry_after(wait)},
        )
    if state.audit is not None:
        # GuardMiddleware queues it with the response's status; routers add their row count (note)
        state.audit.admit(request.scope, principal.key_id)
    return principal


def admit(scope: str) -> DependsParam:
    """A route dependency that authenticates and checks `scope`: FastAPI resolves route dependencies
    before it validates path and query parameters, so a caller without a valid key gets 401 and one
    outside the scope 403, never the 400 of a parameter it should not learn about. (The mart routes,
    plain Starlette routes, call `authenticate` first thing instead.)"""

    async def admitted(request: Request) -> Principal:
        principal = await authenticate(request)
        principal.require(scope)
        return principal

    return Depends(admitted)
