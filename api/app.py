"""The FastAPI app: `create_app()` (uvicorn's factory for `assay serve`).

Start-up needs the database once: the catalog reads each mart's columns as the read-only role, and
the key table is created if missing. Afterwards the app survives the database going away (503) and
coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from assay.api.audit import AccessLog
from assay.api.cache import ResponseCache
from assay.api.catalog import MART_SCHEMA, load_catalog, load_mart_specs
from assay.api.compression import CompressionMiddleware
from assay.api.db import Database
from assay.api.errors import error_responses, install_error_handlers, problems_only
from assay.api.keys import KeyStore
from assay.api.middleware import POOLS, GuardMiddleware
from assay.api.ratelimit import RateLimiter
from assay.api.routers import (
    answers,
    ask,
    audit,
    export,
    health,
    marts,
    metrics,
    process,
    quality,
    search,
)
from assay.api.state import SECURITY_SCHEMES, AppState
from assay.core.database import DatabaseError, PostgresResource
from assay.core.settings import ApiSettings, get_settings

log = logging.getLogger("assay.api")

DESCRIPTION = """Read-only access to assay: gold marts, agent answers, search over the platinum documents,
process-mining results and data-quality scores.

Every `/v1` endpoint needs an API key (`assay api-key create`), sent as `Authorization: Bearer <key>`
or `X-API-Key: <key>`. Errors are `application/problem+json`. Rates are limited per key, and failed
authentications per client address (429 with `Retry-After`); while the database is unavailable or busy
the API answers 503 with `Retry-After`; a table nobody has built yet is a 409 that names the command
that builds it.
"""


def create_app(
    settings: ApiSettings | None = None,
    postgres: PostgresResource | None = None,
    manifest_path: Path | None = None,
) -> FastAPI:
    settings = settings or get_settings().api
    postgres = postgres or PostgresResource()
    specs = load_mart_specs(manifest_path)
    try:
        with postgres.connect(autocommit=True, reader=True) as conn:
            catalog = load_catalog(conn, specs)
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - say what the API needed, not only the driver's words
        raise DatabaseError(f"the API could not read the mart catalog from the database: {exc}") from exc

    db = Database(postgres.reader_url(), settings, ensure_server=postgres.ensure_running)
    state = AppState(
        settings=settings,
        catalog=catalog,
        db=db,
        keys=KeyStore(db, settings.key_cache_seconds, settings.negative_key_cache_seconds),
        cache=ResponseCache(settings.cache_mb * 1024 * 1024, settings.cache_poll_seconds),
        limiter=RateLimiter(
            settings.rate_limit_per_minute, settings.rate_limit_burst, share=1.0 / settings.workers
        ),
        strangers=RateLimiter(
            settings.unauthenticated_per_minute,
            settings.unauthenticated_burst,
            share=1.0 / settings.workers,
        ),
        audit=AccessLog(postgres.reader_url(), settings.audit_flush_seconds) if settings.audit else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poller = None
        auditor = asyncio.create_task(state.audit.run(), name="access-audit") if state.audit else None
        if settings.preload_search_model:
            # in the background: the API answers meanwhile; a search that comes first waits for it
            asyncio.get_running_loop().run_in_executor(None, search.load_model)
        try:
            await db.open()
            POOLS.sources[id(db)] = db.stats
            if state.cache.enabled:
                tables = {m.table: m.name for m in catalog.marts.values()}
                poller = asyncio.create_task(state.cache.poll(db, MART_SCHEMA, tables), name="cache-poll")
            yield
        finally:
            if auditor is not None:
                auditor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await auditor
                await state.audit.close()
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            POOLS.sources.pop(id(db), None)
            await db.close()

    app = FastAPI(
        title="assay read API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package below: no CDN
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
        responses=error_responses(408, 413, 414, 431),  # the protocol's and GuardMiddleware's, any path
        # no 307 to the same path with(out) a trailing slash: Starlette builds its location from the
        # Host header, which would let a request point the redirect anywhere
        redirect_slashes=False,
    )
    app.state.assay = state
    _finish_openapi(app)
    if settings.docs:
        _serve_docs(app)
    install_error_handlers(app)
    # Routes go straight onto the app (not include_router, whose nested matching costs more than
    # the rest of a cached request); the busiest first.
    marts.install(app, state)
    export.install(app, state)
    answers.install(app, state)
    ask.install(app, state)
    search.install(app, state)
    process.install(app, state)
    quality.install(app, state)
    audit.install(app, state)
    health.install(app)
    metrics.install(app, public=settings.metrics_public)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key", "If-None-Match"],
            expose_headers=["Retry-After", "X-Next-Cursor", "ETag"],
            max_age=600,
        )
    # br or gzip for the JSON endpoints and exports; the mart routes compress their cached bodies once
    app.add_middleware(CompressionMiddleware)
    app.add_middleware(
        GuardMiddleware,
        max_query_bytes=settings.max_query_bytes,
        max_body_bytes=settings.max_body_bytes,
        audit=state.audit,
    )
    return app


def _finish_openapi(app: FastAPI) -> None:
    """Add the key schemes to the generated OpenAPI document (routes refer to them via `SECURED`), and
    document the errors as they are sent (`problems_only`)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            problems_only(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


DOCS_STATIC = "/docs/static"


def _serve_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with their scripts, styles and icon served from the installed
    `fastapi-offline` wheel, which ships them: assay runs on machines without internet access."""
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_STATIC, StaticFiles(directory=static), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    renderers = {
        "/docs": lambda root: get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
        ),
        "/redoc": lambda root: get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,  # the fonts would come from Google
        ),
    }
    for path, render in renderers.items():

        async def page(request: Request, render=render) -> HTMLResponse:
            return render(request.scope.get("root_path", ""))

        app.add_route(path, page, methods=["GET"], include_in_schema=False)
