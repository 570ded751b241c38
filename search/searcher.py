"""Search over the platinum corpus: vector kNN, Postgres full-text, and hybrid (reciprocal rank fusion).

The one search library: the read API and the agents' search tool call `Searcher`; the embedding
asset's quality checks call it too, so what they measure is what users get. It lives beside
`assets/embeddings.py` because it reads exactly the tables that module writes (`platinum.embeddings`,
`platinum.embedding_models`) and nothing else; it defines no Dagster objects and works on any connection,
including the read-only `assay_reader` role.

Every search runs in one repeatable-read transaction: the active model is read, the query is encoded
with that model, and the candidates are fetched from that model's rows, all in one snapshot. A model
switch committed meanwhile is therefore invisible until the next search: never a gap, never a mix.

Filters (category, department, vendor, document type, date range) apply inside the index scans. With
pgvector's iterative index scan (`hnsw.iterative_scan = relaxed_order`) the HNSW scan keeps going
until k rows pass the filter; when even that comes back short (a filter matching only a handful of
rows, beyond `hnsw.max_scan_tuples`), the same query is run exactly (btree filter indexes + sort),
so a search returns k hits whenever k documents match. All values are bound parameters.

Callers with many queries at once (the agents: one step's search-tool calls, the few-shot retrieval
of a whole batch) encode them in one model call: `prepare(texts)` encodes texts that the next
searches will use, and `vector_many` finds the neighbours of many queries in one statement.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Literal

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.pq import TransactionStatus

from assay.core.models import EmbeddingModelResource, Encoder

Mode = Literal["vector", "fulltext", "hybrid"]
MODES: tuple[Mode, ...] = ("vector", "fulltext", "hybrid")
_HIT_FIELDS = (
    "doc_id",
    "doc_type",
    "title",
    "body",
    "category",
    "department",
    "vendor_id",
    "doc_date",
    "amount_eur",
)
# Full-text queries: every word of the query is a lexeme; a document matches any of them and ranks by
# how many it covers and how close together (ts_rank_cd). An all-words (AND) query returns nothing for
# most natural-language questions, which no caller wants.
_TSQUERY = (
    "(select string_agg(quote_literal(t.lexeme), ' | ')::tsquery"
    " from unnest(to_tsvector('english'::regconfig, %(text)s)) as t)"
)


def index_type(dimension: int) -> str:
    """pgvector indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000."""
    if dimension <= 2000:
        return "vector"
    if dimension <= 4000:
        return "halfvec"
    raise ValueError(f"pgvector's HNSW index takes at most 4,000 dimensions; the model has {dimension}")


def indexed_expression(dimension: int, value: sql.Composable) -> sql.Composed:
    """`value` cast to what a model's HNSW index holds (`assets/embeddings.py` builds the index on
    this expression; a search must order by exactly this expression for Postgres to use it)."""
    return sql.SQL("{}::{}({})").format(value, sql.SQL(index_type(dimension)), sql.Literal(dimension))


@dataclass(frozen=True)
class Filters:
    """Restrict a search; a sequence means any of its values. Dates are inclusive."""

    category: str | Sequence[str] | None = None
    department: str | Sequence[str] | None = None
    vendor_id: str | Sequence[str] | None = None
    doc_type: str | Sequence[str] | None = None
    date_from: date | None = None
    date_to: date | None = None

    def is_empty(self) -> bool:
        return self == Filters()

    def where(self) -> tuple[sql.Composable, dict]:
        """` and ...` conditions on the corpus alias `e`, with their parameters."""
        parts: list[sql.Composable] = []
        params: dict = {}
        for name in ("category", "department", "vendor_id", "doc_type"):
            value = getattr(self, name)
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            parts.append(
                sql.SQL(" and e.{} = any(%({})s)").format(sql.Identifier(name), sql.SQL(f"f_{name}"))
            )
            params[f"f_{name}"] = values
        if self.date_from is not None:
            parts.append(sql.SQL(" and e.doc_date >= %(f_date_from)s"))
            params["f_date_from"] = self.date_from
        if self.date_to is not None:
            parts.append(sql.SQL(" and e.doc_date <= %(f_date_to)s"))
            params["f_date_to"] = self.date_to
        return sql.Composed(parts), params


@dataclass(frozen=True)
class Hit:
    doc_id: str
    rank: int
    score: float  # vector: cosine similarity; fulltext: ts_rank_cd; hybrid: RRF score
    doc_type: str | None
    title: str | None
    body: str
    category: str | None
    department: str | None
    vendor_id: str | None
    doc_date: date | None
    amount_eur: Decimal | None
    vector_rank: int | None = None  # hybrid: the hit's rank in each list (None: not in that list)
    text_rank: int | None = None


@dataclass
class SearchResult:
    mode: Mode
    query: str
    k: int
    model: str | None  # the active model the search used (None: no embeddings yet)
    hits: list[Hit] = field(default_factory=list)
    exact_fallback: bool = False  # the filter was too selective for the index scan
    seconds: float = 0.0
    encode_seconds: float = 0.0  # of which: encoding the query with the model

    @property
    def doc_ids(self) -> list[str]:
        return [h.doc_id for h in self.hits]


class Searcher:
    """Searches one corpus (`<schema>.embeddings`) on a connection the caller owns.

    `encoders` turns a model name into a loaded `Encoder` (default: `EmbeddingModelResource`
    following ASSAY_DEVICE); search encodes each query with whichever model is active.
    """

    DEFAULT_EF_SEARCH = 100

    def __init__(
        self,
        conn: psycopg.Connection,
        encoders: Callable[[str], Encoder] | None = None,
        *,
        schema: str = "platinum",
        ef_search: int = DEFAULT_EF_SEARCH,
        candidates: int = 60,
        rrf_k: int = 60,
        max_scan_tuples: int | None = None,
        force_index: bool = False,
    ):
        self.conn = conn
        self.encoders = encoders or EmbeddingModelResource().encoder_for
        self.embeddings = sql.Identifier(schema, "embeddings")
        self.models = sql.Identifier(schema, "embedding_models")
        self.ef_search = ef_search
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.max_scan_tuples = max_scan_tuples  # None: pgvector's default (20,000)
        # Postgres answers small or narrowly filtered corpora exactly (seq/btree scan + sort) because
        # that is cheaper; forcing the HNSW index is for measuring the index itself (recall check).
        self.force_index = force_index
        self._prepared: dict[tuple[str, str], np.ndarray] = {}  # (model, text) -> query vector
        # pgvector's types: four catalog queries, once per connection (a pooled connection keeps them;
        # done for every search they were as many round trips as the search itself)
        if conn.adapters.types.get("vector") is None:
            register_vector(conn)

    # public API ---------------------------------------------------------------------------------
    def search(
        self, query: str, mode: Mode = "hybrid", k: int = 10, filters: Filters | None = None
    ) -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return getattr(self, mode)(query, k=k, filters=filters)

    def vector(self, query: str | np.ndarray, k: int = 10, filters: Filters | None = None) -> SearchResult:
        """k nearest documents by cosine distance; `query` is text, or a vector of the active model."""
        text = query if isinstance(query, str) else "<vector>"
        with self._snapshot("vector", text, k) as (result, dim):
            if result.model:
                vector = self._query_vector(result, query)
                rows, result.exact_fallback = self._vector_rows(
                    result.model, dim, vector, k, filters or Filters()
                )
                result.hits = [_hit(r, i) for i, r in enumerate(rows, 1)]
        return result

    def fulltext(self, query: str, k: int = 10, filters: Filters | None = None) -> SearchResult:
        with self._snapshot("fulltext", query, k) as (result, _):
            if result.model:
                rows = self._text_rows(result.model, query, k, filters or Filters())
                result.hits = [_hit(r, i) for i, r in enumerate(rows, 1)]
        return result

    def hybrid(self, query: str, k: int = 10, filters: Filters | None = None) -> SearchResult:
        """Reciprocal rank fusion of the vector and full-text lists (each `candidates` deep)."""
        filters = filters or Filters()
        depth = max(k, self.candidates)
        with self._snapshot("hybrid", query, k) as (result, dim):
            if result.model:
                vector = self._query_vector(result, query)
                vec_rows, result.exact_fallback = self._vector_rows(result.model, dim, vector, depth, filters)
                text_rows = self._text_rows(result.model, query, depth, filters)
                result.hits = fuse(vec_rows, text_rows, k, self.rrf_k)
        return result

    def prepare(self, texts: Sequence[str]) -> None:
        """Encode `texts` with the active model in one call, for the searches that follow.

        Replaces what an earlier call prepared. A search whose text was not prepared, or that sees
        another active model (switched meanwhile), encodes its query itself as usual.
        """
        unique = list(dict.fromkeys(texts))
        self._prepared = {}
        if not unique:
            return
        with self.conn.transaction():
            row = self.conn.execute(
                sql.SQL("select model from {} where active").format(self.models)
            ).fetchone()
        if row:
            vectors = self.encoders(row[0]).encode_queries(unique)
            self._prepared = {(row[0], text): vector for text, vector in zip(unique, vectors, strict=True)}

    def vector_many(
        self, queries: Sequence[str], k: int = 10, filters: Filters | None = None, *, chunk: int = 256
    ) -> list[SearchResult]:
        """The k nearest documents of each query: all queries encoded in one model call, searched in
        one snapshot, `chunk` queries per statement (each a lateral kNN join served by the index, so
        every statement stays within a statement timeout however many queries there are)."""
        filters = filters or Filters()
        results = [SearchResult("vector", q, k, None) for q in queries]
        with self._snapshot("vector", "<many>", k) as (batch, dim):
            if batch.model is None or not queries:
                return results
            started = time.perf_counter()
            vectors = self.encoders(batch.model).encode_queries(list(queries))
            encode_seconds = time.perf_counter() - started
            for start in range(0, len(queries), chunk):
                part = slice(start, start + chunk)
                rows, exact = self._vector_rows_many(batch.model, dim, vectors[part], k, filters)
                for result, hits in zip(results[part], rows, strict=True):
                    result.model, result.exact_fallback = batch.model, exact
                    result.hits = [_hit(r, i) for i, r in enumerate(hits, 1)]
        for result in results:
            result.seconds, result.encode_seconds = batch.seconds, encode_seconds
        return results

    # internals ----------------------------------------------------------------------------------
    @contextmanager
    def _snapshot(self, mode: Mode, query: str, k: int) -> Iterator[tuple[SearchResult, int]]:
        """One read-only repeatable-read transaction: the active model and its rows, one snapshot."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.conn.info.transaction_status != TransactionStatus.IDLE:
            raise RuntimeError("Searcher needs an idle connection: each search is its own transaction")
        started = time.perf_counter()
        with self.conn.transaction():
            self.conn.execute("set transaction isolation level repeatable read, read only")
            self.conn.execute(
                "select set_config('hnsw.ef_search', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                # the per-model partial HNSW index is usable only when the plan sees the model name
                " set_config('plan_cache_mode', 'force_custom_plan', true)",
                [str(self.ef_search)],
            )
            if self.force_index:
                self.conn.execute(
                    "select set_config('enable_seqscan', 'off', true),"
                    " set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)"
                )
            if self.max_scan_tuples is not None:
                self.conn.execute(
                    "select set_config('hnsw.max_scan_tuples', %s, true)", [str(self.max_scan_tuples)]
                )
            row = self.conn.execute(
                sql.SQL("select model, dimension from {} where active").format(self.models)
            ).fetchone()
            result = SearchResult(mode, query, k, row[0] if row else None)
            yield result, (row[1] if row else 0)
        result.seconds = time.perf_counter() - started

    def _query_vector(self, result: SearchResult, query: str | np.ndarray) -> np.ndarray:
        if not isinstance(query, str):
            return np.asarray(query, dtype=np.float32)
        prepared = self._prepared.get((result.model, query))
        if prepared is not None:
            return prepared
        started = time.perf_counter()
        vector = self.encoders(result.model).encode_queries([query])[0]
        result.encode_seconds = time.perf_counter() - started
        return vector

    def _vector_rows(
        self, model: str, dim: int, vector: np.ndarray, k: int, filters: Filters
    ) -> tuple[list[tuple], bool]:
        if vector.shape != (dim,):
            raise ValueError(f"query vector has shape {vector.shape}, the active model has dimension {dim}")
        where, params = filters.where()
        params |= {"q": vector, "model": model, "k": k}
        distance = sql.SQL("{} <=> {}").format(
            indexed_expression(dim, sql.SQL("e.embedding")), indexed_expression(dim, sql.SQL("%(q)s::vector"))
        )
        query = sql.SQL(
            "select {cols}, 1 - distance as score from ("
            " select {ecols}, {distance} as distance from {emb} e"
            " where e.model = %(model)s{where} order by {order} limit %(k)s"
            ") r order by distance, doc_id"
        )
        cols = sql.SQL(", ").join(map(sql.Identifier, _HIT_FIELDS))
        ecols = sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in _HIT_FIELDS)
        common = {"cols": cols, "ecols": ecols, "distance": distance, "emb": self.embeddings, "where": where}
        # ordered by the indexed expression: the HNSW index (iterative scan) serves it
        rows = self.conn.execute(query.format(order=distance, **common), params, prepare=False).fetchall()
        if len(rows) >= k:
            return rows, False
        # Short: a filter rarer than the scan limit. An expression the index cannot order by makes
        # Postgres compute it exactly over the filtered rows (via the btree filter indexes).
        exact = sql.SQL("({}) + 0").format(distance)
        rows = self.conn.execute(query.format(order=exact, **common), params, prepare=False).fetchall()
        return rows, True

    def _vector_rows_many(
        self, model: str, dim: int, vectors: np.ndarray, k: int, filters: Filters
    ) -> tuple[list[list[tuple]], bool]:
        """`_vector_rows` for many query vectors in one statement (a lateral join, one kNN per query)."""
        where, params = filters.where()
        params |= {"qs": list(vectors), "model": model, "k": k}
        distance = sql.SQL("{} <=> {}").format(
            indexed_expression(dim, sql.SQL("e.embedding")), indexed_expression(dim, sql.SQL("q.v"))
        )
        cols = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in _HIT_FIELDS)
        ecols = sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in _HIT_FIELDS)
        query = sql.SQL(
            "select q.i, {cols}, 1 - r.distance as score"
            " from unnest(%(qs)s::vector[]) with ordinality as q(v, i)"
            " cross join lateral ("
            "  select {ecols}, {distance} as distance from {emb} e"
            "  where e.model = %(model)s{where} order by {order} limit %(k)s"
            " ) r order by q.i, r.distance, r.doc_id"
        )
        common = {"cols": cols, "ecols": ecols, "distance": distance, "emb": self.embeddings, "where": where}

        def run(order: sql.Composable) -> list[list[tuple]]:
            found: list[list[tuple]] = [[] for _ in range(len(vectors))]
            for row in self.conn.execute(query.format(order=order, **common), params, prepare=False):
                found[row[0] - 1].append(row[1:])
            return found

        rows = run(distance)
        if all(len(hits) >= k for hits in rows):
            return rows, False
        # some query came back short (a rare filter): the whole chunk exactly, as `_vector_rows` does
        return run(sql.SQL("({}) + 0").format(distance)), True

    def _text_rows(self, model: str, query: str, k: int, filters: Filters) -> list[tuple]:
        where, params = filters.where()
        params |= {"text": query, "model": model, "k": k}
        cols = sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in _HIT_FIELDS)
        return self.conn.execute(
            sql.SQL(
                "select {cols}, ts_rank_cd(e.search_tsv, q.query) as score"
                " from {emb} e, (select " + _TSQUERY + " as query) q"
                " where e.model = %(model)s and e.search_tsv @@ q.query{where}"
                " order by score desc, e.doc_id limit %(k)s"
            ).format(cols=cols, emb=self.embeddings, where=where),
            params,
            prepare=False,
        ).fetchall()


def fuse(vector_rows: list[tuple], text_rows: list[tuple], k: int, rrf_k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (rrf_k + rank); ties by vector rank."""
    scores: dict[str, float] = {}
    rows: dict[str, tuple] = {}
    vec_rank: dict[str, int] = {}
    text_rank: dict[str, int] = {}
    for ranks, source in ((vec_rank, vector_rows), (text_rank, text_rows)):
        for rank, row in enumerate(source, 1):
            doc_id = row[0]
            ranks[doc_id] = rank
            rows.setdefault(doc_id, row)
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    unranked = len(vector_rows) + len(text_rows) + 1
    order = sorted(
        scores,
        key=lambda d: (-scores[d], vec_rank.get(d, unranked), text_rank.get(d, unranked), d),
    )[:k]
    return [
        replace(
            _hit(rows[d], i),
            score=scores[d],
            vector_rank=vec_rank.get(d),
            text_rank=text_rank.get(d),
        )
        for i, d in enumerate(order, 1)
    ]


def _hit(row: tuple, rank: int) -> Hit:
    values = dict(zip(_HIT_FIELDS, row, strict=False))
    return Hit(rank=rank, score=float(row[len(_HIT_FIELDS)]), **values)
