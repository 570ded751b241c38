"""The read-only database session every tool uses."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from assay.core.database import reader_options

if TYPE_CHECKING:
    from assay.core.models import Encoder
    from assay.search.searcher import Searcher

STATEMENT_TIMEOUT_MS = 5_000
ROW_CAP = 50


class ToolError(RuntimeError):
    """A tool could not answer (bad arguments, timeout, missing table); the run records it."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # more rows existed than the cap

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class ReaderSession:
    """A connection as `assay_reader`: read-only transactions, a statement timeout, a row cap.

    The role itself has no write privilege anywhere; `default_transaction_read_only` is a second
    lock so that even a grant added by mistake later cannot be used from here.
    """

    def __init__(
        self,
        reader_url: str,
        *,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        row_cap: int = ROW_CAP,
        encoders: Callable[[str], Encoder] | None = None,
    ):
        self.row_cap = row_cap
        self.statement_timeout_ms = statement_timeout_ms
        self.encoders = encoders  # embedding models by name; None: EmbeddingModelResource's defaults
        options = reader_options(statement_timeout_ms)  # role settings the reader stored cannot change these
        self.conn = psycopg.connect(reader_url, autocommit=False, options=options)

    @classmethod
    def on(cls, conn: psycopg.Connection, *, row_cap: int = ROW_CAP) -> ReaderSession:
        """A session over a reader connection someone else opened and owns (the API's read-only pool,
        whose connections already carry `reader_options`); `close` leaves it open."""
        session = cls.__new__(cls)
        session.conn, session.row_cap, session.encoders = conn, row_cap, None
        session.statement_timeout_ms = STATEMENT_TIMEOUT_MS
        session._borrowed = True
        return session

    def query(
        self,
        query: str | sql.Composable,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        cap: int | None = None,
    ) -> QueryResult:
        cap = self.row_cap if cap is None else cap
        with self.errors(), self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(query, params)
            columns = [c.name for c in cur.description or []]
            rows = cur.fetchmany(cap + 1) if cur.description else []
        return QueryResult(columns, rows[:cap], len(rows) > cap)

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Database errors as ToolError: the run records one line, never a traceback."""
        try:
            yield
        except psycopg.errors.QueryCanceled as exc:
            raise ToolError(f"query cancelled after {self.statement_timeout_ms} ms") from exc
        except psycopg.Error as exc:
            raise ToolError(f"query failed: {str(exc).strip().splitlines()[0]}") from exc

    @functools.cached_property
    def searcher(self) -> Searcher:
        """Vector, full-text and hybrid search over platinum (`assets/search.py`) on this connection:
        the same role, read-only transactions, statement timeout."""
        from assay.search.searcher import Searcher

        with self.errors():
            return Searcher(self.conn, self.encoders)

    def bulk(
        self, query: str | sql.Composable, params: Sequence[Any] | None = None, *, timeout_ms: int = 300_000
    ):
        """A set-based read over many inputs at once (task inputs), with its own longer timeout."""
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute(sql.SQL("set local statement_timeout = {}").format(sql.Literal(int(timeout_ms))))
                cur.execute(query, params)
                return cur.fetchall()
        except psycopg.Error as exc:
            raise ToolError(f"query failed: {str(exc).strip().splitlines()[0]}") from exc

    def table_exists(self, qualified: str) -> bool:
        return self.query("select to_regclass(%s) is not null", [qualified]).rows[0][0]

    def close(self) -> None:
        if not getattr(self, "_borrowed", False):
            self.conn.close()

    def __enter__(self) -> ReaderSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
