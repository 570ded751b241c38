"""Rendered mart responses, kept until their mart changes.

Gold marts change only when the pipeline rebuilds them, so a page computed once can be served again
until then. A poller asks Postgres every `cache_poll_seconds` for each mart's version: its relation
(dbt's table materialisation swaps in a new one), its file node (TRUNCATE), its last ANALYZE (the
post-hook after every build) and its row-change counters (in-place changes, which Postgres reports
within about ten seconds). A cached response is served only while its mart's version is the current
one, so after a rebuild the API serves the new data within one poll interval. While the poll fails
(database down) nothing is served from the cache: the API answers 503 like every other path.

Each worker process keeps its own cache, bounded by `cache_mb` (least recently used entries leave first).
Authentication, scopes and rate limits run before the cache is consulted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from assay.api.errors import ApiError

log = logging.getLogger("assay.api")

_VERSIONS = """
select c.relname, c.oid::bigint, c.relfilenode::bigint, s.last_analyze, s.n_tup_ins, s.n_tup_upd, s.n_tup_del
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
where n.nspname = %s and c.relname = any(%s)
"""


@dataclass(frozen=True)
class Cached:
    version: tuple | None
    body: bytes
    media_type: str
    cursor: str | None


class ResponseCache:
    def __init__(self, max_bytes: int, poll_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.poll_seconds = poll_seconds
        self.versions: dict[str, tuple] = {}  # mart -> version; empty while the database is away
        self._entries: OrderedDict[Hashable, Cached] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, mart: str, key: Hashable) -> Cached | None:
        entry = self._entries.get(key)
        if entry is None or entry.version != self.versions.get(mart):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def lookup(self, mart: str, key: Hashable) -> tuple[Cached | None, tuple | None]:
        """(the cached response or None, the version to store a fresh one under or None).

        With the cache off, or no version known for the mart yet, nothing is read or stored."""
        if not self.enabled:
            return None, None
        return self.get(mart, key), self.versions.get(mart)

    def put(self, key: Hashable, entry: Cached) -> None:
        size = len(entry.body)
        if size > self.max_bytes // 8:
            return  # one huge page must not flush everything else
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._entries[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)

    async def poll(self, db, schema: str, tables: dict[str, str]) -> None:
        """Refresh the marts' versions forever (`tables`: table name -> mart name)."""
        while True:
            try:
                rows = await db.fetch(_VERSIONS, [schema, list(tables)])
                self.versions = {tables[name]: tuple(version) for name, *version in rows}
            except ApiError:
                self.versions = {}  # database unreachable: serve nothing stale
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                log.exception("cache version poll failed")
                self.versions = {}
            await asyncio.sleep(self.poll_seconds)
