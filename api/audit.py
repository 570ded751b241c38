"""The access audit: every authenticated request in `audit.api_access` (key, route, mart, time,
the query string as `filters`, the response's status and row count, what was asked), and the refused
ones (401, 403, 429), counted. Identical requests within one flush (same key, route, query string,
status, row count and subject) are one row whose `requests` says how many, at the first one's time.

A request's row is a dict made by `authenticate` (api/state.py, `admitted`) and kept in the request's
scope (`AUDIT_ROW`): the routers add what they know there (`note`: the rows a response carries, the
search or question asked), and GuardMiddleware (api/middleware.py) queues it with the response's
status when the response has ended (`finish`), so a row is complete before it can be written.

Off the hot path: a request only makes its row from raw values (`time.time()`, the scope's own
strings and query bytes: a dict of plain values, which the garbage collector does not track) and
appends it to an in-memory queue, about 2 us in all (`bench/audit_path.py`); everything else waits
for the flush. A background task writes the queue every `flush_seconds` in one statement over its own
connection (the read-only role, in a read-write transaction that can do nothing but call
`audit.record_access`, see core/migrations/0013 and 0021). At the flush, once per batch: the times
become timestamps, the query strings are decoded (once per distinct string), the batch is serialised
with orjson, and Postgres stamps each key's `last_used_at` once per batch (its latest row). A full
queue drops the oldest rows and counts them (`dropped`) rather than slow the reads down; a failed
write is logged and retried with the next batch.

Refusals are counted, not queued: one counter per (key, client address, method, route, status),
written as one row with the count (`requests`) at the next flush, so a flood of requests without a
key costs a dictionary increment each and one row per flush, never a write per request. The counters
are bounded (`max_denial_groups`); beyond that, new groups are counted together under client `*`.
A request refused with 403 after its key was checked is recorded in its own row instead (with 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections import deque
from urllib.parse import unquote_plus

import orjson
import psycopg
from psycopg.types.json import Jsonb

from assay.core.database import reader_options

log = logging.getLogger(__name__)


def route_and_mart(scope: dict) -> tuple[str, str | None]:
    """The route's template (the mart routes are one literal path per mart) and the mart it names,
    from the scope alone (not `Request.url`, which builds the whole URL: ~7 us a request)."""
    route = getattr(scope.get("route"), "path", None) or getattr(scope.get("endpoint"), "route_path", None)
    path_params = scope.get("path_params")
    mart = path_params.get("mart") if path_params else None
    path = scope["path"]
    if mart is None and path.startswith("/v1/marts/"):
        mart = path.split("/", 4)[3] or None
    return route or path, mart


# Where `authenticate` leaves the checked key's id and its audit row (api/state.py).
AUDIT_KEY = "assay.audit_key"
AUDIT_ROW = "assay.audit_row"
MAX_FILTERS = 1000
MAX_SUBJECT = 500
# an API key sent as a parameter by mistake: its secret is never recorded (api/keys.py's format)
_KEY_SECRET = re.compile(r"(assay_[0-9a-f]{12}_)[A-Za-z0-9_-]+")


def note(scope: dict, *, rows: int | None = None, subject: str | None = None) -> None:
    """What a router knows about the request being served, for its audit row (if it has one)."""
    row = scope.get(AUDIT_ROW)
    if row is None:
        return
    if rows is not None:
        row["rows"] = rows
    if subject is not None:
        row["subject"] = subject[:MAX_SUBJECT]


def filters_text(query_string: bytes) -> str | None:
    """The query string as text, bounded; a key's secret in it is replaced by `***`."""
    if not query_string:
        return None
    raw = query_string[: MAX_FILTERS * 3]
    if b"%" in raw or b"+" in raw:
        text = unquote_plus(raw.decode("latin-1"), errors="replace")
    else:  # nothing to unquote: most query strings, and far cheaper than unquote_plus
        text = raw.decode("utf-8", errors="replace")
    if "assay_" in text:
        text = _KEY_SECRET.sub(r"\1***", text)
    return text[:MAX_FILTERS]


def _without_nul(row: dict) -> None:
    """Postgres text cannot hold NUL: `audit.record_access` would refuse the whole batch (`\\u0000
    cannot be converted to text`), at every flush, since a failed batch is retried. A NUL from the
    request (`%00` in its path, query string or an answer's key) is written as U+FFFD, as undecodable
    bytes are."""
    for name, value in row.items():
        if type(value) is str and "\x00" in value:
            row[name] = value.replace("\x00", "\ufffd")


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


_FORMATTED = object()


def _timestamp(at: float) -> dt.datetime:
    """A row's `time.time()` as an aware datetime (orjson writes it as RFC 3339, microseconds)."""
    return dt.datetime.fromtimestamp(at, dt.UTC)


def _grouped(queue: deque[dict]) -> list[dict]:
    """The batch with identical admitted requests as one row: the same key, method, route, query
    string, status, row count and subject within one flush, written once with their number in
    `requests` and the first one's time. A busy client repeating a request costs one row a flush,
    not one a request (Postgres's insert was the audit's cost: ~17 us of CPU a row). Rows that are
    groups already (counted refusals, a batch put back after a failed write) pass as they are."""
    grouped: dict[tuple, dict] = {}
    batch: list[dict] = []
    for row in queue:
        query_string = row.get("q", _FORMATTED)
        if query_string is _FORMATTED:
            batch.append(row)
            continue
        key = (row["key_id"], row["method"], row["route"], row["mart"], query_string, row.get("status"),
               row.get("rows"), row.get("subject"))  # fmt: skip
        first = grouped.get(key)
        if first is None:
            grouped[key] = row
            row["requests"] = 1
            batch.append(row)
        else:
            first["requests"] += 1
    return batch


RECORD = "select audit.record_access(%s)"
OVERFLOW = "*"
"""The client address under which refusals beyond `max_denial_groups` are counted."""


class AccessLog:
    def __init__(
        self,
        url: str,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        max_denial_groups: int = 10_000,
    ) -> None:
        self.url = url
        self.flush_seconds = flush_seconds
        self._queue: deque[dict] = deque(maxlen=max_queue)
        self.dropped = 0
        self.max_denial_groups = max_denial_groups
        # (key id, client, method, route, mart, status) -> [first seen, requests]
        self._denied: dict[tuple, list] = {}
        self._conn: psycopg.AsyncConnection | None = None

    def admit(self, scope: dict, key_id: str) -> None:
        """Start the row of a request whose key was admitted, in its scope (`AUDIT_ROW`), where the
        routers `note` what they served and GuardMiddleware `finish`es it with the status."""
        scope[AUDIT_ROW] = self.admitted(
            key_id, scope["method"], *route_and_mart(scope), scope["query_string"]
        )

    @staticmethod
    def admitted(key_id: str, method: str, route: str, mart: str | None, query_string: bytes) -> dict:
        """An admitted request's row, not queued yet: `finish` queues it with the response's status.
        Raw values only (the time as `time.time()`, the query string as bytes): `flush` formats them."""
        at = time.time()
        return {"at": at, "key_id": key_id, "method": method, "route": route, "mart": mart, "q": query_string}

    def finish(self, row: dict, status: int) -> None:
        """Queue an admitted request's row once its response has ended (or failed: 500)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        row["status"] = status
        self._queue.append(row)

    def deny(
        self, key_id: str | None, client: str, method: str, route: str, mart: str | None, status: int
    ) -> None:
        """Count a refused request (no write now: the next flush writes one row per group)."""
        group = (key_id, client, method, route, mart, status)
        counted = self._denied.get(group)
        if counted is None:
            if len(self._denied) >= self.max_denial_groups:
                group = (None, OVERFLOW, method, OVERFLOW, None, status)
                counted = self._denied.get(group)
            if counted is None:
                counted = self._denied[group] = [time.time(), 0]
        counted[1] += 1

    def refused(
        self,
        row: dict | None,
        key_id: str | None,
        client: str,
        method: str,
        route: str,
        mart: str | None,
        status: int,
    ) -> None:
        """A request refused with `status`: one with its own row (admitted, then refused, e.g. 403 for
        a mart outside its key's scope) is recorded there when its response ends; else it is counted."""
        if row is None:
            self.deny(key_id, client, method, route, mart, status)

    def _take_denials(self) -> list[dict]:
        denied, self._denied = self._denied, {}
        return [
            {
                "at": _timestamp(at),
                "key_id": key_id,
                "client": client,
                "method": method,
                "route": route,
                "mart": mart,
                "status": status,
                "requests": n,
            }
            for (key_id, client, method, route, mart, status), (at, n) in denied.items()
        ]

    async def flush(self) -> int:
        """Write what is queued; returns the rows written (0 when the write failed: they stay queued)."""
        if self._denied:
            # counted refusals join the queue as rows (bounded by the queue like any other row)
            self._queue.extend(self._take_denials())
        if not self._queue:
            return 0
        # The batch leaves the queue before the write: rows queued meanwhile (and the oldest-first
        # drops of a full queue) then only ever touch rows not in this batch.
        rows = _grouped(self._queue)
        self._queue.clear()
        decoded: dict[bytes, str | None] = {}  # a busy API repeats its query strings
        stamp, utc = dt.datetime.fromtimestamp, dt.UTC
        for row in rows:
            # formatted here, not on the request's path; once per row: a batch put back has no "q"
            query_string = row.pop("q", _FORMATTED)
            if query_string is not _FORMATTED:
                text = decoded.get(query_string, _FORMATTED)
                if text is _FORMATTED:  # decoded once per batch and distinct string
                    text = decoded[query_string] = filters_text(query_string)
                row["filters"] = text
                row["at"] = stamp(row["at"], utc)
            _without_nul(row)
        try:
            if self._conn is None or self._conn.closed:
                # its commits need not wait for the disk: a crash loses the queue's last second anyway
                options = reader_options(5000, default_transaction_read_only="off", synchronous_commit="off")
                self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, options=options)
            await self._conn.execute(RECORD, [Jsonb(rows, dumps=_dumps)])
        except psycopg.Error as exc:
            log.warning("access audit: %d rows not written yet (%s)", len(rows), exc)
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            self._requeue(rows)
            return 0
        return len(rows)

    def _requeue(self, rows: list[dict]) -> None:
        """Put an unwritten batch back before the rows queued since, dropping the oldest past the bound."""
        kept = rows + list(self._queue)
        over = max(0, len(kept) - self._queue.maxlen)
        self.dropped += over
        self._queue = deque(kept[over:], maxlen=self._queue.maxlen)

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


def history(
    conn: psycopg.Connection,
    *,
    key_id: str | None = None,
    since: dt.datetime | None = None,
    route: str | None = None,
    refused: bool = False,
    limit: int = 100,
) -> list[tuple]:
    """Who read what, when: the newest audit rows first, as (time, key id, key name, method, route,
    mart, status, client, requests, filters, row count, subject); `status` is None in rows written
    before core/migrations/0021. `route` matches a prefix (`/v1/marts` covers every mart); `refused`
    keeps the 401, 403 and 429 answers."""
    return conn.execute(HISTORY, history_params(key_id, since, route, refused, limit)).fetchall()


HISTORY = (
    "select a.accessed_at, a.key_id, k.name, a.method, a.route, a.mart, a.status, a.client, a.requests,"
    " a.filters, a.row_count, a.subject"
    " from audit.api_access a left join api.keys k on k.id = a.key_id"
    " where (%(key)s::text is null or a.key_id = %(key)s)"
    " and (%(since)s::timestamptz is null or a.accessed_at >= %(since)s)"
    " and (%(route)s::text is null or starts_with(a.route, %(route)s))"
    " and (not %(refused)s or a.status in (401, 403, 429))"
    " order by a.accessed_at desc, a.access_id desc limit %(limit)s"
)
"""Who read what, when: `assay audit` (`history`) and `GET /v1/audit` (api/routers/audit.py) both
run this, with `history_params`' bound values."""


def history_params(
    key_id: str | None, since: dt.datetime | None, route: str | None, refused: bool, limit: int
) -> dict:
    return {"key": key_id, "since": since, "route": route, "refused": refused, "limit": limit}
