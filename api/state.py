"""What every request handler needs, built once per app, and the dependency that admits a caller."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.catalog import Catalog
from api.db import Database
from api.errors import ApiError
from api.keys import KeyStore, Principal, unauthorized
from api.middleware import RATE_LIMITED
from api.ratelimit import RateLimiter
from orchestration.settings import ApiSettings


@dataclass
class AppState:
    settings: ApiSettings
    catalog: Catalog
    db: Database
    keys: KeyStore
    limiter: RateLimiter


def app_state(request: Request) -> AppState:
    return request.app.state.assay


# Declared as security schemes so /docs shows an "Authorize" button; checked in `authenticate`.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer assay_<id>_<secret>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: assay_<id>_<secret>`")


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_header)],
) -> Principal:
    """The caller's key, checked and charged one request against its rate limit."""
    token = api_key or (bearer.credentials if bearer else None)
    if token is None and "authorization" in request.headers:
        raise unauthorized("the Authorization header must be 'Bearer <key>'")
    state = app_state(request)
    principal = await state.keys.authenticate(token)
    wait = state.limiter.check(principal.key_id, principal.rate_limit_per_minute)
    if wait is not None:
        RATE_LIMITED.labels(principal.key_id).inc()
        raise ApiError(
            429,
            f"rate limit of this API key exceeded; retry in {RateLimiter.retry_after(wait)} s",
            {"Retry-After": RateLimiter.retry_after(wait)},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]
"""A handler parameter of this type admits only callers with a valid key within their rate limit."""
