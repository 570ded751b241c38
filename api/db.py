"""The API's connection pool: async psycopg as the read-only role, and what a request sees when it fails.

Connections log in as `assay_reader` (SELECT only, granted per schema by `orchestration/database.py`)
and additionally run every transaction read-only with a statement timeout, so no input can write and
no query can run away. While Postgres is unreachable, requests answer 503 with `Retry-After`; the pool
keeps reconnecting in the background and the API recovers without a restart.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from api.errors import ApiError
from orchestration.settings import ApiSettings

log = logging.getLogger("assay.api")

RETRY_AFTER_S = 2


def unavailable(detail: str = "the database is unavailable; try again shortly") -> ApiError:
    return ApiError(503, detail, {"Retry-After": str(RETRY_AFTER_S)})


def session_options(settings: ApiSettings) -> str:
    """libpq `options` every API connection starts with."""
    return (
        "-c default_transaction_read_only=on"
        f" -c statement_timeout={settings.statement_timeout_ms}"
        " -c idle_in_transaction_session_timeout=10000"
        " -c application_name=assay-api"
    )


class Database:
    def __init__(self, conninfo: str, settings: ApiSettings) -> None:
        self.settings = settings
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=settings.pool_min_size,
            max_size=max(settings.pool_max_size, settings.pool_min_size, 1),
            kwargs={"autocommit": True, "options": session_options(settings)},
            timeout=settings.pool_timeout_s,
            max_waiting=256,
            # A reconnection attempt backs off (1 s, 2 s, ...) and gives up after this long; the next
            # request then starts a fresh one. Short, so that the API is back within seconds of the
            # server, however long it was away.
            reconnect_timeout=5.0,
            open=False,
            name="assay-api",
        )

    async def open(self) -> None:
        # don't wait: the app starts (and answers 503) even if the server is momentarily away
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, query: sql.Composable | str, params: list[Any] | None = None) -> list[tuple]:
        """Run one read and return its rows; 503 while the database is unreachable."""
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as conn:
                    cursor = await conn.execute(query, params)
                    return await cursor.fetchall()
            except (PoolTimeout, TooManyRequests):
                raise unavailable() from None
            except psycopg.errors.QueryCanceled:
                raise unavailable(
                    f"the query ran longer than {self.settings.statement_timeout_ms} ms; narrow the filters"
                ) from None
            except (
                psycopg.errors.UndefinedTable,
                psycopg.errors.UndefinedColumn,
                psycopg.errors.InsufficientPrivilege,
                psycopg.errors.FeatureNotSupported,  # "cached plan must not change result type"
            ) as exc:
                # the pipeline dropped or rebuilt a table differently than at start-up
                log.error("query failed on the database's side: %s", exc)
                raise unavailable("this data is not readable right now; try again later") from None
            except psycopg.OperationalError as exc:
                # A pooled connection died (server restarted): drop the dead ones, try once more.
                log.warning("database connection failed (attempt %d): %s", attempt, exc)
                if attempt == 2:
                    raise unavailable() from None
                await self.pool.check()
        raise AssertionError("unreachable")

    def stats(self) -> dict[str, int]:
        return self.pool.get_stats()
