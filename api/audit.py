"""The access audit: one row per authenticated request in `audit.api_access` (key, route, mart, time).

Off the hot path: a request only appends to an in-memory queue; a background task writes the queue
every `flush_seconds` in one statement over its own connection (the read-only role, in a read-write
transaction that can do nothing but call `audit.record_access`, see core/migrations/0012). A full
queue drops the oldest rows and counts them (`dropped`) rather than slow the reads down; a failed
write is logged and retried with the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque

import psycopg
from psycopg.types.json import Jsonb

from assay.core.database import reader_options

log = logging.getLogger(__name__)

RECORD = "select audit.record_access(%s)"


class AccessLog:
    def __init__(self, url: str, flush_seconds: float = 1.0, max_queue: int = 100_000) -> None:
        self.url = url
        self.flush_seconds = flush_seconds
        self._queue: deque[dict] = deque(maxlen=max_queue)
        self.dropped = 0
        self._conn: psycopg.AsyncConnection | None = None

    def record(self, key_id: str, method: str, route: str, mart: str | None) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        at = dt.datetime.now(dt.UTC).isoformat()
        self._queue.append({"at": at, "key_id": key_id, "method": method, "route": route, "mart": mart})

    async def flush(self) -> int:
        """Write what is queued; returns the rows written (0 when the write failed: they stay queued)."""
        if not self._queue:
            return 0
        rows = list(self._queue)
        try:
            if self._conn is None or self._conn.closed:
                options = reader_options(5000, default_transaction_read_only="off")
                self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, options=options)
            await self._conn.execute(RECORD, [Jsonb(rows)])
        except psycopg.Error as exc:
            log.warning("access audit: %d rows not written yet (%s)", len(rows), exc)
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            return 0
        for _ in rows:
            self._queue.popleft()
        return len(rows)

    async def run(self) -> None:
        """Flush forever (cancel to stop; `close` writes the rest)."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
