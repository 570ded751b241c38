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

Under load the poll itself may find every pooled connection busy: the database is up, so the versions
it knew stay in force for up to `BUSY_POLLS` such polls (turning the cache off then would send every
request to the busy pool at once). And a page that is missing or outdated is computed once however
many requests ask for it meanwhile (`single_flight`): the others wait for that one answer, rather
than each taking a connection (a stampede onto the pool after every rebuild, which answered 503s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from assay.api import compression
from assay.api.db import PoolBusy
from assay.api.errors import ApiError

log = logging.getLogger("assay.api")

_VERSIONS = """
select c.relname, c.oid::bigint, c.relfilenode::bigint, s.last_analyze, s.n_tup_ins, s.n_tup_upd, s.n_tup_del
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_stat_user_tables s on s.relid = c.oid
where n.nspname = %s and c.relname = any(%s)
"""


LAST_ANALYZE = 2  # the version's last ANALYZE: when the pipeline last built the mart (its post-hook)


@dataclass
class Cached:
    version: tuple | None
    body: bytes
    media_type: str
    cursor: str | None
    total: int | None = None  # `count=exact`: the rows matching the filters, all pages
    rows: int | None = None  # the rows in `body` (the access audit's row count)
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    _etag: str | None = field(default=None, repr=False, compare=False)

    @property
    def last_modified(self) -> dt.datetime | None:
        """When the mart was last built, to the second (HTTP dates have no fractions)."""
        built = self.version[LAST_ANALYZE] if self.version else None
        return built.astimezone(dt.UTC).replace(microsecond=0) if built is not None else None

    @property
    def etag(self) -> str:
        """A weak validator of the body (weak: its encodings and the plain body share it)."""
        if self._etag is None:
            self._etag = 'W/"%s"' % hashlib.blake2b(self.body, digest_size=12).hexdigest()  # noqa: UP031
        return self._etag

    def encoded(self, encoding: str) -> bytes:
        """The body gzipped or brotli-compressed (`br`), once per entry rather than once per response."""
        found = self._encoded.get(encoding)
        if found is None:
            if encoding == "br":
                found = compression.brotli_compress(self.body)
            else:
                found = gzip.compress(self.body, compresslevel=compression.GZIP_LEVEL, mtime=0)
            self._encoded[encoding] = found
        return found


class ResponseCache:
    def __init__(self, max_bytes: int, poll_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.poll_seconds = poll_seconds
        self.versions: dict[str, tuple] = {}  # mart -> version; empty while the database is away
        self._entries: OrderedDict[Hashable, Cached] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[Hashable, asyncio.Future] = {}
        self.hits = 0
        self.misses = 0
        self.shared = 0  # requests answered by another request's computation

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

    async def single_flight(self, key: Hashable, compute: Callable[[], Awaitable[Cached]]) -> Cached:
        """`compute()`, run once for all the requests for `key` that arrive while it runs."""
        running = self._inflight.get(key)
        if running is not None:
            try:
                entry = await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled itself
                return await compute()  # the computing request went away: compute it here
            self.shared += 1
            return entry
        running = asyncio.get_running_loop().create_future()
        self._inflight[key] = running
        try:
            entry = await compute()
        except asyncio.CancelledError:
            running.cancel()
            raise
        except BaseException as exc:
            running.set_exception(exc)
            running.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            running.set_result(entry)
            return entry
        finally:
            del self._inflight[key]

    BUSY_POLLS = 5

    async def poll(self, db, schema: str, tables: dict[str, str]) -> None:
        """Refresh the marts' versions forever (`tables`: table name -> mart name)."""
        busy = 0
        while True:
            try:
                rows = await db.fetch(_VERSIONS, [schema, list(tables)])
                self.versions = {tables[name]: tuple(version) for name, *version in rows}
                busy = 0
            except PoolBusy:
                busy += 1
                log.warning("cache version poll found the pool busy (%d in a row)", busy)
                if busy > self.BUSY_POLLS:
                    self.versions = {}
            except ApiError:
                self.versions = {}  # database unreachable: serve nothing stale
            except Exception:  # noqa: BLE001 - the poller must outlive any one failure
                log.exception("cache version poll failed")
                self.versions = {}
            await asyncio.sleep(self.poll_seconds)
