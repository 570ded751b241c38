"""The API's connection pool: async psycopg as the read-only role, and what a request sees when it fails.

Connections log in as `assay_reader` (SELECT only, granted per schema by `orchestration/database.py`)
and additionally run every transaction read-only with a statement timeout, so no input can write and
no query can run away. While Postgres is unreachable, requests answer 503 with `Retry-After`; the pool
keeps reconnecting in the background and the API recovers without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from prometheus_client import Counter
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout, TooManyRequests

from assay.api.errors import ApiError
from assay.core.database import reader_options
from assay.core.settings import ApiSettings

log = logging.getLogger("assay.api")

RETRY_AFTER_S = 2
T = TypeVar("T")

POOL_TIMEOUTS = Counter(
    "assay_api_pool_timeouts", "Requests refused with 503 because no pooled connection came free in time."
)


def unavailable(detail: str = "the database is unavailable; try again shortly") -> ApiError:
    return ApiError(503, detail, {"Retry-After": str(RETRY_AFTER_S)})


class PoolBusy(ApiError):
    """503 because every pooled connection was in use for `pool_timeout_s` (the database is up)."""

    def __init__(self) -> None:
        super().__init__(503, "the API is busy; try again shortly", {"Retry-After": str(RETRY_AFTER_S)})


class _Throttled:
    """Logs a recurring warning at most once per `every` seconds, with the count it stood for."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last = -float("inf")
        self.pending = 0

    def warn(self, message: str, *args: object) -> None:
        self.pending += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            log.warning(message + " (%d time(s) since the last such warning)", *args, self.pending)
            self.last, self.pending = now, 0


_pool_timeouts = _Throttled()


def session_options(settings: ApiSettings) -> str:
    """libpq `options` every API connection starts with."""
    return reader_options(
        settings.statement_timeout_ms, idle_in_transaction_session_timeout=10000, application_name="assay-api"
    )


def not_built(table: str) -> ApiError:
    """409, not 503: a table nobody has built does not appear by retrying, so no Retry-After."""
    if table.startswith("agents."):
        how = "the agent tasks build it: run `assay run --agents` (or materialise the agent assets in the UI)"
    else:
        how = "the pipeline builds it: run `assay run`"
    return ApiError(409, f"{table} does not exist yet; {how}")


def _refused(exc: Exception, table: str | None, timeout_ms: int) -> ApiError | None:
    """The 503 for a failure on the database's side (None: not one of those)."""
    if isinstance(exc, (PoolTimeout, TooManyRequests)):
        POOL_TIMEOUTS.inc()
        _pool_timeouts.warn("no database connection came free in time: answered 503 (%s)", type(exc).__name__)
        return PoolBusy()
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return unavailable(f"the query ran longer than {timeout_ms} ms; narrow the filters")
    if isinstance(exc, psycopg.errors.UndefinedTable) and table is not None:
        return not_built(table)
    if isinstance(
        exc,
        (
            psycopg.errors.UndefinedTable,
            psycopg.errors.UndefinedColumn,
            psycopg.errors.InsufficientPrivilege,
            psycopg.errors.FeatureNotSupported,  # "cached plan must not change result type"
        ),
    ):
        # the pipeline dropped or rebuilt a table differently than at start-up
        log.error("query failed on the database's side: %s", exc)
        return unavailable("this data is not readable right now; try again later")
    return None


def _keep_reconnecting(pool: AsyncConnectionPool | ConnectionPool) -> Awaitable[None] | None:
    """psycopg_pool gives a reconnection up after `reconnect_timeout`, and then tries again only when
    a request finds room in its queue; after a long outage the queue is full of timed-out requests,
    every new one is refused at once, and the pool would never reconnect. So start the next attempt
    right away: the pool keeps trying (about 4 attempts per 5 s) until the server is back."""
    log.warning("pool %s: still no database connection; trying again", pool.name)
    return pool.check()


class Database:
    def __init__(
        self, conninfo: str, settings: ApiSettings, ensure_server: Callable[[], object] | None = None
    ) -> None:
        """`ensure_server` runs before each new connection (`PostgresResource.ensure_running`: the
        embedded server is restarted by the API that needs it)."""
        self.settings = settings
        self.conninfo = conninfo
        self._ensure_server = ensure_server
        self._sync_pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self.pool = AsyncConnectionPool(
            self._async_conninfo,
            min_size=settings.pool_min_size,
            max_size=max(settings.pool_max_size, settings.pool_min_size, 1),
            kwargs={"autocommit": True, "options": session_options(settings)},
            timeout=settings.pool_timeout_s,
            max_waiting=256,
            # A reconnection attempt backs off (1 s, 2 s, ...) and gives up after this long; the next
            # request then starts a fresh one. Short, so that the API is back within seconds of the
            # server, however long it was away.
            reconnect_timeout=5.0,
            reconnect_failed=_keep_reconnecting,
            open=False,
            name="assay-api",
        )

    def _sync_conninfo(self) -> str:
        if self._ensure_server is not None:
            self._ensure_server()
        return self.conninfo

    async def _async_conninfo(self) -> str:
        if self._ensure_server is not None:
            await asyncio.to_thread(self._ensure_server)
        return self.conninfo

    async def open(self) -> None:
        # don't wait: the app starts (and answers 503) even if the server is momentarily away
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()
        if self._sync_pool is not None:
            await asyncio.to_thread(self._sync_pool.close)
            self._sync_pool = None

    async def fetch(
        self,
        query: sql.Composable | str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        table: str | None = None,
    ) -> list[tuple]:
        """Run one read and return its rows; 503 while the database is unreachable, or when `table`
        (the relation the query reads, named for the caller) does not exist yet."""

        async def once() -> list[tuple]:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(query, params)
                return await cursor.fetchall()

        return await self._retrying(once, self.pool.check, table)

    async def copy_out(
        self,
        statement: sql.Composable,
        params: Sequence[Any],
        *,
        lines: bool,
        table: str | None = None,
        counted: Callable[[int], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream a `COPY ... TO STDOUT`, block by block (`lines`: each row's one text column, with a
        newline); memory stays constant however many rows. The connection is taken and the COPY
        started before this returns, so a busy pool or a missing table is still a 503 or 409; the
        connection goes back to the pool when the stream ends or is dropped. `counted` gets the rows
        copied (COPY's own count) when the stream has ended."""
        started: list[AsyncIterator[bytes]] = []

        async def blocks() -> AsyncIterator[bytes]:
            async with self.pool.connection() as conn:
                cursor = conn.cursor()
                async with cursor.copy(statement, params) as copy:
                    yield b""  # started
                    if lines:
                        async for (text,) in copy.rows():
                            yield text.encode() + b"\n"
                    else:
                        async for block in copy:
                            yield bytes(block)
                if counted is not None:
                    counted(cursor.rowcount)

        async def start() -> None:
            stream = blocks()
            started.append(stream)
            await anext(stream)

        await self._retrying(start, self.pool.check, table)
        return started[-1]

    async def batches(
        self,
        statement: sql.Composable,
        params: Sequence[Any],
        *,
        size: int,
        table: str | None = None,
        counted: Callable[[int], None] | None = None,
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Stream a SELECT's typed rows, `size` at a time, through a server-side cursor in a read-only
        transaction: memory stays constant however many rows (each FETCH under the statement
        timeout). Started before this returns, like `copy_out`, so a busy pool is still a 503.
        `counted` gets the rows fetched when the stream has ended."""
        started: list[AsyncIterator[list[tuple[Any, ...]]]] = []

        async def fetches() -> AsyncIterator[list[tuple[Any, ...]]]:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("set transaction read only")
                async with conn.cursor(name="assay_export") as cursor:
                    await cursor.execute(statement, params)
                    yield []  # started
                    fetched = 0
                    while rows := await cursor.fetchmany(size):
                        fetched += len(rows)
                        yield rows
                    if counted is not None:
                        counted(fetched)

        async def start() -> None:
            stream = fetches()
            started.append(stream)
            await anext(stream)

        await self._retrying(start, self.pool.check, table)
        return started[-1]

    async def run_sync(self, work: Callable[[psycopg.Connection], T], *, table: str | None = None) -> T:
        """Run `work` on a blocking connection (same role and session settings) in a worker thread.

        For library code written against sync psycopg (`assets/search.py`): it gets a connection of
        its own, and the event loop keeps serving other requests meanwhile. The blocking pool is
        opened on first use, so an app that never needs it holds no extra connections.
        """
        pool = self._blocking_pool()

        def call() -> T:
            with pool.connection() as conn:
                return work(conn)

        return await self._retrying(
            lambda: asyncio.to_thread(call), lambda: asyncio.to_thread(pool.check), table
        )

    async def _retrying(self, once: Callable[[], Awaitable[T]], check: Callable[[], Awaitable[None]], table):
        """Run a read; 503 while the database is unreachable, or when `table` does not exist yet.

        A pooled connection that died (the server restarted) fails once: drop the dead ones and try
        again, so the first request after a restart is answered, not refused. Reads only, so safe.
        """
        for attempt in (1, 2):
            try:
                return await once()
            except Exception as exc:
                refused = _refused(exc, table, self.settings.statement_timeout_ms)
                if refused is not None:
                    raise refused from None
                if not isinstance(exc, psycopg.OperationalError):
                    raise
                log.warning("database connection failed (attempt %d): %s", attempt, exc)
                if attempt == 2:
                    raise unavailable() from None
                await check()
        raise AssertionError("unreachable")

    def _blocking_pool(self) -> ConnectionPool:
        with self._lock:
            if self._sync_pool is None:
                self._sync_pool = ConnectionPool(
                    self._sync_conninfo,
                    min_size=0,
                    max_size=self.settings.blocking_pool_size,
                    kwargs={"autocommit": True, "options": session_options(self.settings)},
                    timeout=self.settings.pool_timeout_s,
                    max_waiting=64,
                    reconnect_timeout=5.0,
                    reconnect_failed=_keep_reconnecting,
                    open=False,
                    name="assay-api-blocking",
                )
                self._sync_pool.open(wait=False)
            return self._sync_pool

    def stats(self) -> dict[str, int]:
        return self.pool.get_stats()
