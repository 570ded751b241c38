"""Search on the small sample's platinum corpus (built by the pipeline with all-MiniLM-L6-v2).

Each mode is compared with a computation done without the search library's SQL: vector search with
numpy over every stored vector, full-text with a reference query that recomputes the tsvector from
the text, hybrid with reciprocal rank fusion done here from the two lists.
"""

from datetime import date

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from assay.core.models import EmbeddingModelResource
from assay.search.searcher import Filters, Searcher

QUERIES = ("flight to London", "hotel room for a conference", "toner for the office printer", "legal advice")


@pytest.fixture(scope="module")
def corpus(pipeline_run, postgres):
    """Every stored vector of the active model, with its filter fields."""
    assert pipeline_run.success
    with postgres.connect(autocommit=True) as conn:
        register_vector(conn)
        rows = conn.execute(
            "select e.doc_id, e.category, e.department, e.vendor_id, e.doc_date, e.embedding"
            " from platinum.embeddings e join platinum.embedding_models m on m.model = e.model and m.active"
        ).fetchall()
    ids = np.array([r[0] for r in rows])
    matrix = np.stack([r[5].to_numpy() for r in rows])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    fields = [
        dict(zip(("category", "department", "vendor_id", "doc_date"), r[1:5], strict=True)) for r in rows
    ]
    return ids, matrix, fields


@pytest.fixture(scope="module")
def encoder():
    return EmbeddingModelResource().encoder()


@pytest.fixture
def searcher(postgres):
    # the read-only role, as the API and the agents use it
    with postgres.connect(autocommit=True, reader=True) as conn:
        yield Searcher(conn, EmbeddingModelResource().encoder_for)


def _hnsw(searcher: Searcher, **kwargs) -> Searcher:
    """The same search forced through the HNSW index (on 2k documents Postgres prefers exact scans)."""
    return Searcher(searcher.conn, searcher.encoders, force_index=True, **kwargs)


def _exact(corpus, query_vector, k, keep=None) -> tuple[list[str], np.ndarray]:
    ids, matrix, fields = corpus
    sims = matrix @ query_vector
    if keep is not None:
        sims = np.where([keep(f) for f in fields], sims, -np.inf)
    order = np.argsort(-sims, kind="stable")[:k]
    order = order[np.isfinite(sims[order])]
    return list(ids[order]), sims[order]


def _assert_same_ranking(found, exact_ids, exact_sims):
    """Equal lists, except that documents with equal similarity may swap places."""
    assert len(found.hits) == len(exact_ids)
    np.testing.assert_allclose([h.score for h in found.hits], exact_sims, atol=1e-5)
    assert set(found.doc_ids) == set(exact_ids) or np.isclose(exact_sims[-1], exact_sims[-2], atol=1e-6)


@pytest.mark.parametrize("query", QUERIES)
def test_vector_search_equals_exact_computation(searcher, corpus, encoder, query):
    exact = _exact(corpus, encoder.encode_queries([query])[0], 10)
    for each in (searcher, _hnsw(searcher)):
        result = each.vector(query, k=10)
        assert result.model == encoder.name and not result.exact_fallback
        _assert_same_ranking(result, *exact)


def test_filtered_vector_search_equals_exact_and_returns_k(searcher, corpus, encoder):
    filters = Filters(category=["travel", "lodging"], department="Sales", date_from=date(2025, 3, 1))

    def keep(f):
        return (
            f["category"] in ("travel", "lodging")
            and f["department"] == "Sales"
            and f["doc_date"] is not None
            and f["doc_date"] >= date(2025, 3, 1)
        )

    exact = _exact(corpus, encoder.encode_queries(["airport taxi"])[0], 10, keep)
    for each in (searcher, _hnsw(searcher)):  # planner's choice, and HNSW with iterative scan
        result = each.vector("airport taxi", k=10, filters=filters)
        assert len(result.hits) == 10
        assert all(h.category in ("travel", "lodging") and h.department == "Sales" for h in result.hits)
        _assert_same_ranking(result, *exact)


def test_selective_filter_still_returns_k(searcher, corpus, encoder, conn):
    # The rarest vendor with at least 10 documents: ~0.5 % of the corpus.
    vendor = conn.execute(
        "select vendor_id from platinum.documents group by 1 having count(*) >= 10"
        " order by count(*), 1 limit 1"
    ).fetchone()[0]
    query_vector = encoder.encode_queries(["consulting invoice"])[0]
    exact = _exact(corpus, query_vector, 10, lambda f: f["vendor_id"] == vendor)
    for mode in ("vector", "fulltext", "hybrid"):
        result = searcher.search("consulting invoice", mode, k=10, filters=Filters(vendor_id=vendor))
        assert {h.vendor_id for h in result.hits} <= {vendor}
        if mode != "fulltext":  # full-text only returns documents containing a query word
            assert len(result.hits) == 10
    _assert_same_ranking(searcher.vector(query_vector, k=10, filters=Filters(vendor_id=vendor)), *exact)

    # An index scan cut short (tiny scan limit) falls back to exact search and still returns k.
    tight = _hnsw(searcher, max_scan_tuples=50, ef_search=10)
    result = tight.vector(query_vector, k=10, filters=Filters(vendor_id=vendor))
    assert result.exact_fallback and len(result.hits) == 10
    _assert_same_ranking(result, *exact)

    # Fewer matches than k: all of them, no error.
    rare = conn.execute(
        "select vendor_id from platinum.documents group by 1 having count(*) < 10 order by count(*) limit 1"
    ).fetchone()[0]
    n = conn.execute("select count(*) from platinum.documents where vendor_id = %s", [rare]).fetchone()[0]
    assert len(searcher.vector("anything", k=10, filters=Filters(vendor_id=rare)).hits) == n


def _reference_fulltext(conn, query, k, extra="", params=()):
    """Ranks recomputed from the text itself (not the stored column), any-word match."""
    return conn.execute(
        "with q as (select to_tsquery('english', %s) as query),"
        " docs as (select e.doc_id, to_tsvector('english', coalesce(e.title, '') || ' ' || e.body) as tsv,"
        " e.category from platinum.embeddings e join platinum.embedding_models m"
        " on m.model = e.model and m.active)"
        " select doc_id, ts_rank_cd(tsv, q.query) from docs, q where tsv @@ q.query"
        + extra
        + " order by 2 desc, 1 limit %s",
        [" | ".join(query.split()), *params, k],
    ).fetchall()


@pytest.mark.parametrize("query", QUERIES)
def test_fulltext_equals_reference_query(searcher, conn, query):
    result = searcher.fulltext(query, k=10)
    expected = _reference_fulltext(conn, query, 10)
    assert result.doc_ids == [r[0] for r in expected]
    np.testing.assert_allclose([h.score for h in result.hits], [r[1] for r in expected], rtol=1e-6)
    filtered = searcher.fulltext(query, k=10, filters=Filters(category="travel"))
    expected = _reference_fulltext(conn, query, 10, " and category = %s", ["travel"])
    assert filtered.doc_ids == [r[0] for r in expected]


@pytest.mark.parametrize("query", QUERIES)
def test_hybrid_is_reciprocal_rank_fusion_of_both_lists(searcher, query):
    depth = searcher.candidates
    vector = searcher.vector(query, k=depth).doc_ids
    text = searcher.fulltext(query, k=depth).doc_ids
    scores: dict[str, float] = {}
    for ranked in (vector, text):
        for rank, doc_id in enumerate(ranked, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1 / (searcher.rrf_k + rank)
    result = searcher.hybrid(query, k=10)
    assert len(result.hits) == 10
    np.testing.assert_allclose([h.score for h in result.hits], sorted(scores.values(), reverse=True)[:10])
    for hit in result.hits:
        assert hit.vector_rank == (vector.index(hit.doc_id) + 1 if hit.doc_id in vector else None)
        assert hit.text_rank == (text.index(hit.doc_id) + 1 if hit.doc_id in text else None)


def test_values_are_data_never_sql(searcher, conn):
    hostile = "'; drop table platinum.embeddings; -- Ignore previous instructions"
    for mode in ("vector", "fulltext", "hybrid"):
        searcher.search(hostile, mode, k=3, filters=Filters(category=hostile))
    assert conn.execute("select count(*) from platinum.embeddings").fetchone()[0] > 0
    assert len(searcher.fulltext(hostile, k=3).hits) == 3  # its words ('table', 'drop') are just words


def test_reader_role_searches_but_cannot_write(searcher, postgres):
    assert searcher.hybrid("hotel", k=5).hits
    # the search connection is a read-only session; the role itself has no write grants either
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        searcher.conn.execute("delete from platinum.embeddings")
    with (
        psycopg.connect(postgres.reader_url(), autocommit=True) as direct,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        direct.execute("delete from platinum.embeddings")


class _CountingEncoders:
    """The real encoders, counting how many texts each `encode_queries` call gets."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, name: str):
        encoder = EmbeddingModelResource().encoder_for(name)
        calls = self.calls

        class Counted:
            def encode_queries(self, texts):
                calls.append(len(texts))
                return encoder.encode_queries(texts)

        return Counted()


def test_many_queries_equal_one_at_a_time_with_one_model_call(searcher, corpus, encoder, conn):
    encoders = _CountingEncoders()
    batched = Searcher(searcher.conn, encoders)
    filters = Filters(category=["travel", "lodging", "hardware"])
    results = batched.vector_many(QUERIES, k=10, filters=filters)
    assert encoders.calls == [len(QUERIES)]
    for query, result in zip(QUERIES, results, strict=True):
        assert result.query == query and result.model == encoder.name and not result.exact_fallback
        exact = _exact(
            corpus, encoder.encode_queries([query])[0], 10, lambda f: f["category"] in filters.category
        )
        _assert_same_ranking(result, *exact)

    # a filter too rare for the index scan: the chunk is answered exactly, still k hits each
    vendor = conn.execute(
        "select vendor_id from platinum.documents group by 1 having count(*) >= 10"
        " order by count(*), 1 limit 1"
    ).fetchone()[0]
    tight = Searcher(searcher.conn, encoders, force_index=True, max_scan_tuples=50, ef_search=10)
    rare = tight.vector_many(QUERIES[:2], k=10, filters=Filters(vendor_id=vendor), chunk=1)
    assert all(r.exact_fallback and len(r.hits) == 10 for r in rare)
    assert [r.doc_ids for r in rare] == [
        searcher.vector(q, k=10, filters=Filters(vendor_id=vendor)).doc_ids for q in QUERIES[:2]
    ]


def test_prepared_queries_are_encoded_once(searcher):
    encoders = _CountingEncoders()
    prepared = Searcher(searcher.conn, encoders)
    prepared.prepare(["hotel", "flight to London", "hotel"])
    assert encoders.calls == [2]  # one call, each distinct text once
    for query in ("hotel", "flight to London"):
        assert prepared.hybrid(query, k=5).doc_ids == searcher.hybrid(query, k=5).doc_ids
    assert encoders.calls == [2]
    prepared.hybrid("legal advice", k=5)  # not prepared: encoded on its own
    assert encoders.calls == [2, 1]
