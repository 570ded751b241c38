"""The vector index: `platinum.documents` -> vectors in `platinum.embeddings`, kept in sync.

`platinum.embeddings` is the search corpus: one row per (model, document) with the document's text
and filter fields copied from `platinum.documents` (all of them covered by its content hash), the
vector, and a generated `tsvector` for full-text search. Search reads only this table, so a dbt
rebuild of `platinum.documents` never disturbs it, and vector, full-text and hybrid search always see
the same documents.

A sync (`sync_embeddings`) compares content hashes with what is stored for the configured model:
- new or changed documents are embedded; texts are deduplicated first, and a text that already has a
  vector under this model (a document whose filter fields changed but not its text, or two documents
  with the same text) reuses it instead of calling the model again;
- documents that left `platinum.documents` lose their vectors; unchanged ones are skipped, so a rerun
  with nothing changed calls the model 0 times.
Vectors are written chunk by chunk: binary COPY into a temporary stage, then one set-based upsert
per chunk. An interrupted build resumes where it stopped.

Models: every vector row names its model; `platinum.embedding_models` lists the models with their
dimension and HNSW index, and marks exactly one as active. Each model has its own partial HNSW index
on `embedding::vector(dim)` (pgvector's pattern for several dimensions in one column; `halfvec` above
2,000 dimensions), built after
that model's bulk load. A new model is built beside the active one; search switches to it in one
transaction once its vectors and index are complete, and only then are the old vectors dropped.
Searches run in a repeatable-read snapshot (see `assay.search.searcher`), so none sees a mix or a gap.
"""

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from assay.core.models import Encoder
from assay.core.progress import Progress, note
from assay.search.searcher import index_type, indexed_expression

log = logging.getLogger(__name__)

# Copied from platinum.documents into the search corpus; all of them feed the content hash there.
DOC_FIELDS = ("doc_type", "title", "body", "category", "department", "vendor_id", "doc_date", "amount_eur")
# More pending documents than this share of the model's stored rows: rebuild its index after the load.
BULK_REBUILD_FRACTION = 0.25
_STAGE_TYPES = ["text", "text", "text", *["text"] * 6, "date", "numeric", "vector"]
# What the model reads (a column of the source, made by dbt's platinum.documents): the item, vendor
# and department, without a transaction's amount and date. Not copied into the corpus: its md5 is
# the stored `text_hash` that lets documents with the same text share one vector.
EMBED_TEXT = "embed_text"


@dataclass(frozen=True)
class HnswParams:
    m: int = 16
    ef_construction: int = 128  # pgvector defaults to 64; see README for the recall it costs

    def __post_init__(self) -> None:
        # pgvector's own limits, checked here so a bad config fails before any work is done
        if not 2 <= self.m <= 100:
            raise ValueError(f"hnsw m must be in 2..100, got {self.m}")
        if not max(4, 2 * self.m) <= self.ef_construction <= 1000:
            raise ValueError(f"hnsw ef_construction must be in {max(4, 2 * self.m)}..1000")


@dataclass
class SyncStats:
    """What one sync did; every number becomes asset metadata."""

    model: str
    dimension: int
    device: str
    batch_size: int
    backend: str = "torch"  # torch | onnx | onnx-int8
    documents: int = 0  # documents in the source
    new: int = 0
    changed: int = 0
    skipped: int = 0  # unchanged: neither embedded nor rewritten
    removed: int = 0
    texts_encoded: int = 0  # distinct texts sent to the model
    vectors_reused: int = 0  # documents written with a vector that already existed for their text
    index_name: str | None = None
    index_built: bool = False
    hnsw: HnswParams = field(default_factory=HnswParams)
    activated: bool = False  # this run made the model the active one
    previous_model: str | None = None  # the active model before, when this run switched away from it
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def embedded(self) -> int:
        """Documents written with a fresh vector this run (new + changed)."""
        return self.new + self.changed

    @property
    def total_seconds(self) -> float:
        return self.seconds.get("total", 0.0)

    @property
    def docs_per_second(self) -> float:
        return self.embedded / self.total_seconds if self.total_seconds else 0.0

    @property
    def encode_texts_per_second(self) -> float:
        encode = self.seconds.get("encode", 0.0)
        return self.texts_encoded / encode if encode else 0.0


class _Tables:
    """Identifiers of one corpus: platinum in the pipeline, a scratch schema in tests and benchmarks."""

    def __init__(self, schema: str):
        self.schema = schema
        self.embeddings = sql.Identifier(schema, "embeddings")
        self.models = sql.Identifier(schema, "embedding_models")


def _corpus_tables(conn: psycopg.Connection, schema: str) -> None:
    """The corpus tables of `schema`: platinum's are the migrations' (`core/migrations/`), so this
    only lays out a scratch corpus (tests, benchmarks) as a copy of platinum's tables, with their
    non-vector indexes and without platinum's per-model HNSW indexes."""
    if schema == "platinum":
        return
    tables = _Tables(schema)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"assay.embeddings.scratch.{schema}"])
        if not conn.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone():
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        for table, model in ((tables.models, "embedding_models"), (tables.embeddings, "embeddings")):
            if conn.execute("select to_regclass(%s)", [f"{schema}.{model}"]).fetchone()[0]:
                continue
            conn.execute(
                sql.SQL("create table {} (like {} including all)").format(
                    table, sql.Identifier("platinum", model)
                )
            )
            hnsw = conn.execute(
                "select indexname from pg_indexes where schemaname = %s and tablename = %s"
                " and indexdef like '%% USING hnsw %%'",
                [schema, model],
            ).fetchall()
            for (name,) in hnsw:
                conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, name)))


def hnsw_index_name(model: str, dimension: int, params: HnswParams) -> str:
    digest = hashlib.md5(f"{model}|{dimension}|{params.m}|{params.ef_construction}".encode()).hexdigest()
    return f"embeddings_hnsw_{digest[:12]}"


def sync_embeddings(
    conn: psycopg.Connection,
    encoder: Encoder,
    *,
    schema: str = "platinum",
    source: tuple[str, str] = ("platinum", "documents"),
    hnsw: HnswParams | None = None,
    chunk_size: int = 2048,
    progress: Callable[[str], None] | None = None,
) -> SyncStats:
    """Bring `<schema>.embeddings` for `encoder`'s model in line with `source`; activate the model.

    `conn` must be in autocommit mode: each step commits on its own (the chunked upserts, the index
    build, the switch), which keeps transactions short and an interrupted build resumable.
    `progress` receives a line (documents embedded of those pending, rate, ETA) every few seconds.
    """
    if not conn.autocommit:
        raise ValueError("sync_embeddings needs an autocommit connection")
    hnsw = hnsw or HnswParams()
    started = time.perf_counter()
    tables = _Tables(schema)
    source_id = sql.Identifier(*source)
    _corpus_tables(conn, schema)
    register_vector(conn)
    stats = SyncStats(
        encoder.name, encoder.dimension, encoder.device, encoder.batch_size, encoder.backend, hnsw=hnsw
    )
    with _sync_lock(conn, schema):
        _register_model(conn, tables, encoder.name, encoder.dimension)
        stats.previous_model = _active_model(conn, tables)

        tick = time.perf_counter()
        stats.removed = conn.execute(
            sql.SQL(
                "delete from {emb} e where e.model = %s"
                " and not exists (select 1 from {src} d where d.doc_id = e.doc_id)"
            ).format(emb=tables.embeddings, src=source_id),
            [encoder.name],
        ).rowcount
        pending = _collect_pending(conn, tables, source_id, encoder.name, stats)
        stats.index_name = hnsw_index_name(encoder.name, encoder.dimension, hnsw)
        stored = stats.documents - stats.new  # this model's rows before the load
        if pending > BULK_REBUILD_FRACTION * stored and _index_exists(conn, schema, stats.index_name):
            # A bulk load into a live HNSW index inserts row by row, several times slower than a
            # build: drop it and build after the load. Meanwhile Postgres answers vector search
            # exactly (seq scan): slower, never wrong or empty.
            _drop_index(conn, schema, stats.index_name)
        stats.seconds["diff"] = time.perf_counter() - tick

        say = progress or (lambda line: None)
        encode_s = write_s = 0.0
        if pending:
            say(note("embeddings", f"{pending:,} of {stats.documents:,} documents to embed"))
            _create_stage(conn)
            meter = Progress("embeddings", pending, "docs", say)
            last = 0
            while True:
                chunk = conn.execute(
                    "select ord, doc_id, content_hash, text_hash, "
                    + ", ".join(DOC_FIELDS)
                    + ", embed_text from _embedding_pending where ord > %s order by ord limit %s",
                    [last, chunk_size],
                ).fetchall()
                if not chunk:
                    break
                last = chunk[-1][0]
                e, w = _embed_chunk(conn, tables, encoder, [r[1:] for r in chunk], stats)
                meter.advance(len(chunk))
                encode_s += e
                write_s += w
            conn.execute("drop table if exists _embedding_pending, _embedding_stage")
        stats.seconds["encode"] = encode_s
        stats.seconds["write"] = write_s

        tick = time.perf_counter()
        # The name encodes model, dimension and parameters: an existing one is the right index.
        if not _index_exists(conn, schema, stats.index_name):
            say(note("embeddings", f"building the HNSW index ({stats.documents:,} vectors)"))
            _build_index(conn, tables, encoder.name, encoder.dimension, stats.index_name, hnsw)
            stats.index_built = True
        if stats.embedded or stats.removed:
            # fresh statistics: the planner chooses between HNSW and exact filtered scans with them
            conn.execute(sql.SQL("analyze {}").format(tables.embeddings))
        stats.seconds["index"] = time.perf_counter() - tick

        tick = time.perf_counter()
        with conn.transaction():
            count = conn.execute(
                sql.SQL("select count(*) from {} where model = %s").format(tables.embeddings),
                [encoder.name],
            ).fetchone()[0]
            conn.execute(
                sql.SQL(
                    "update {} set documents = %s, index_name = %s, hnsw_m = %s,"
                    " hnsw_ef_construction = %s, updated_at = now() where model = %s"
                ).format(tables.models),
                [count, stats.index_name, hnsw.m, hnsw.ef_construction, encoder.name],
            )
            if stats.previous_model != encoder.name:
                # The switch: one transaction, so a search sees either the old model or the new one.
                conn.execute(sql.SQL("update {} set active = false where active").format(tables.models))
                conn.execute(
                    sql.SQL("update {} set active = true, activated_at = now() where model = %s").format(
                        tables.models
                    ),
                    [encoder.name],
                )
                stats.activated = True
        _drop_other_models(conn, tables, encoder.name, stats.index_name)
        stats.seconds["switch"] = time.perf_counter() - tick
    stats.seconds["total"] = time.perf_counter() - started
    return stats


@contextmanager
def _sync_lock(conn: psycopg.Connection, schema: str) -> Iterator[None]:
    """One sync per corpus at a time (two runs of the job would otherwise race)."""
    key = f"assay.embeddings.sync.{schema}"
    conn.execute("select pg_advisory_lock(hashtext(%s))", [key])
    try:
        yield
    finally:
        conn.execute("select pg_advisory_unlock(hashtext(%s))", [key])


def _register_model(conn: psycopg.Connection, tables: _Tables, model: str, dimension: int) -> None:
    conn.execute(
        sql.SQL("insert into {} (model, dimension) values (%s, %s) on conflict (model) do nothing").format(
            tables.models
        ),
        [model, dimension],
    )
    stored = conn.execute(
        sql.SQL("select dimension from {} where model = %s").format(tables.models), [model]
    ).fetchone()[0]
    if stored != dimension:
        raise ValueError(
            f"model {model!r} is stored with dimension {stored} but now produces {dimension}: "
            "give the new model another name (or path)"
        )


def _active_model(conn: psycopg.Connection, tables: _Tables) -> str | None:
    row = conn.execute(sql.SQL("select model from {} where active").format(tables.models)).fetchone()
    return row[0] if row else None


def _collect_pending(
    conn: psycopg.Connection, tables: _Tables, source_id: sql.Identifier, model: str, stats: SyncStats
) -> int:
    """Snapshot new and changed documents into a temporary table; count everything else."""
    conn.execute("drop table if exists _embedding_pending")
    conn.execute(
        sql.SQL(
            """
            create temp table _embedding_pending as
            select row_number() over (order by d.doc_id)::bigint as ord,
                   d.doc_id, d.content_hash, md5(d.{text}) as text_hash,
                   {fields}, d.{text} as embed_text, e.doc_id is not null as existed
            from {src} d
            left join {emb} e on e.model = %s and e.doc_id = d.doc_id
            where e.doc_id is null or e.content_hash is distinct from d.content_hash
            """
        ).format(
            text=sql.Identifier(EMBED_TEXT),
            fields=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(f)) for f in DOC_FIELDS),
            src=source_id,
            emb=tables.embeddings,
        ),
        [model],
    )
    conn.execute("create index on _embedding_pending (ord)")
    new, changed = conn.execute(
        "select count(*) filter (where not existed), count(*) filter (where existed) from _embedding_pending"
    ).fetchone()
    total = conn.execute(sql.SQL("select count(*) from {}").format(source_id)).fetchone()[0]
    stats.new, stats.changed, stats.documents = new, changed, total
    stats.skipped = total - new - changed
    return new + changed


def _create_stage(conn: psycopg.Connection) -> None:
    conn.execute("drop table if exists _embedding_stage")
    conn.execute(
        "create temp table _embedding_stage (doc_id text, content_hash text, text_hash text, "
        + ", ".join(
            f"{f} {'date' if f == 'doc_date' else 'numeric' if f == 'amount_eur' else 'text'}"
            for f in DOC_FIELDS
        )
        + ", embedding vector)"
    )


def _embed_chunk(
    conn: psycopg.Connection, tables: _Tables, encoder: Encoder, rows: list[tuple], stats: SyncStats
) -> tuple[float, float]:
    """Embed one chunk of pending documents and upsert it; returns (encode seconds, write seconds).

    A row is (doc_id, content_hash, text_hash, *DOC_FIELDS, the text the model reads)."""
    hashes = list(dict.fromkeys(r[2] for r in rows))
    tick = time.perf_counter()
    vectors: dict[str, np.ndarray] = {
        text_hash: vector.to_numpy()
        for text_hash, vector in conn.execute(
            sql.SQL(
                "select distinct on (text_hash) text_hash, embedding from {} where model = %s"
                " and text_hash = any(%s)"
            ).format(tables.embeddings),
            [encoder.name, hashes],
        )
    }
    reused = {h for h in hashes if h in vectors}
    write_s = time.perf_counter() - tick

    # One model call per distinct text, in batches of the encoder's batch size.
    texts: dict[str, str] = {}
    for r in rows:
        if r[2] not in vectors and r[2] not in texts:
            texts[r[2]] = r[-1]
    tick = time.perf_counter()
    encoded = encoder.encode_documents(list(texts.values()))
    encode_s = time.perf_counter() - tick
    vectors.update(zip(texts, encoded, strict=True))
    stats.texts_encoded += len(texts)
    stats.vectors_reused += sum(1 for r in rows if r[2] in reused)

    tick = time.perf_counter()
    conn.execute("truncate _embedding_stage")
    with conn.cursor() as cur:
        with cur.copy(
            "copy _embedding_stage (doc_id, content_hash, text_hash, "
            + ", ".join(DOC_FIELDS)
            + ", embedding) from stdin (format binary)"
        ) as copy:
            copy.set_types(_STAGE_TYPES)
            for r in rows:
                copy.write_row((*r[:-1], vectors[r[2]]))
        columns = sql.SQL(", ").join(
            sql.Identifier(c) for c in ("doc_id", "content_hash", "text_hash", *DOC_FIELDS, "embedding")
        )
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
            for c in ("content_hash", "text_hash", *DOC_FIELDS, "embedding")
        )
        cur.execute(
            sql.SQL(
                "insert into {emb} (model, {cols}) select %s, {cols} from _embedding_stage"
                " on conflict (model, doc_id) do update set {updates}, embedded_at = now()"
            ).format(emb=tables.embeddings, cols=columns, updates=updates),
            [encoder.name],
        )
    write_s += time.perf_counter() - tick
    return encode_s, write_s


def _index_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    return bool(
        conn.execute(
            "select 1 from pg_indexes where schemaname = %s and indexname = %s", [schema, name]
        ).fetchone()
    )


def _build_index(
    conn: psycopg.Connection, tables: _Tables, model: str, dimension: int, name: str, hnsw: HnswParams
) -> None:
    """HNSW over this model's rows only, built once they are all loaded.

    A plain CREATE INDEX takes a SHARE lock: writers wait, searches go on with the current index.
    """
    rows = conn.execute(
        sql.SQL("select count(*) from {} where model = %s").format(tables.embeddings), [model]
    ).fetchone()[0]
    # Keep the graph in memory while building (pgvector slows down sharply once it spills).
    need_mb = int(rows * (dimension * 4 + hnsw.m * 2 * 8 + 64) * 1.5 / 2**20) + 64
    conn.execute("select set_config('maintenance_work_mem', %s, false)", [f"{min(max(need_mb, 64), 4096)}MB"])
    workers = max(0, min((os.cpu_count() or 1) - 1, 7))
    conn.execute("select set_config('max_parallel_maintenance_workers', %s, false)", [str(workers)])
    try:
        conn.execute(
            sql.SQL(
                "create index if not exists {name} on {emb} using hnsw (({indexed}) "
                "{ops}) with (m = {m}, ef_construction = {efc}) where model = {model}"
            ).format(
                name=sql.Identifier(name),
                emb=tables.embeddings,
                indexed=indexed_expression(dimension, sql.SQL("embedding")),
                ops=sql.SQL(f"{index_type(dimension)}_cosine_ops"),
                m=sql.Literal(hnsw.m),
                efc=sql.Literal(hnsw.ef_construction),
                model=sql.Literal(model),  # DDL takes no parameters; Literal quotes it safely
            )
        )
    finally:
        conn.execute("reset maintenance_work_mem")
        conn.execute("reset max_parallel_maintenance_workers")


def _drop_index(conn: psycopg.Connection, schema: str, name: str) -> None:
    # CONCURRENTLY: no lock that would stall searches still running on the old index.
    conn.execute(sql.SQL("drop index concurrently if exists {}").format(sql.Identifier(schema, name)))


def _drop_other_models(conn: psycopg.Connection, tables: _Tables, keep: str, keep_index: str) -> None:
    """Once the kept model is active: other models' vectors go, and every HNSW index but its own
    (an earlier model's, or the same model's with other parameters)."""
    others = conn.execute(
        sql.SQL("select model from {} where model <> %s").format(tables.models), [keep]
    ).fetchall()
    for (model,) in others:
        conn.execute(sql.SQL("delete from {} where model = %s").format(tables.embeddings), [model])
        conn.execute(sql.SQL("delete from {} where model = %s").format(tables.models), [model])
    stale = conn.execute(
        "select indexname from pg_indexes where schemaname = %s and tablename = 'embeddings'"
        " and indexname like 'embeddings\\_hnsw\\_%%' and indexname <> %s",
        [tables.schema, keep_index],
    ).fetchall()
    for (name,) in stale:
        _drop_index(conn, tables.schema, name)
