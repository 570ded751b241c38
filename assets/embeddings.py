"""Platinum embeddings: the asset that keeps the search corpus (`platinum.embeddings`) in sync with
`platinum.documents` through the vector index library (`assay.search.index`), and its checks."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)
from pydantic import Field

from assay.core.database import PostgresResource
from assay.core.models import EmbeddingModelResource
from assay.core.progress import note
from assay.core.settings import get_settings
from assay.search.index import HnswParams, SyncStats, sync_embeddings

EMBEDDINGS_KEY = AssetKey(["platinum", "embeddings"])
DOCUMENTS_KEY = AssetKey(["platinum", "documents"])


class EmbeddingsConfig(Config):
    hnsw_m: int = Field(default=16, description="HNSW graph degree (pgvector `m`).")
    hnsw_ef_construction: int = Field(
        default=128, description="HNSW build candidate list (`ef_construction`)."
    )
    chunk_size: int = Field(default=2048, description="Documents per encode + COPY + upsert round.")


@asset(
    key=EMBEDDINGS_KEY,
    group_name="platinum",
    deps=[DOCUMENTS_KEY],
    kinds={"postgres", "pytorch"},
    description=(
        "Vectors of platinum.documents (sentence-transformers, pgvector HNSW) plus full-text index: the "
        "search corpus. Incremental by content hash; a new model is built beside the old and activated "
        "when complete."
    ),
)
def embeddings(
    context: AssetExecutionContext,
    config: EmbeddingsConfig,
    postgres: PostgresResource,
    embedding_model: EmbeddingModelResource,
) -> MaterializeResult:
    # a first use converts the model to ONNX (about 8 s on 2 cores): say so before the wait
    context.log.info(note("embeddings", f"loading {embedding_model.model_name()}"))
    encoder = embedding_model.encoder()
    hnsw = HnswParams(config.hnsw_m, config.hnsw_ef_construction)
    with postgres.connect(autocommit=True) as conn:
        stats = sync_embeddings(
            conn, encoder, hnsw=hnsw, chunk_size=config.chunk_size, progress=context.log.info
        )
    context.log.info(
        f"{stats.model} on {stats.device} ({stats.backend}): {stats.embedded} embedded, "
        f"{stats.skipped} unchanged, {stats.removed} removed in {stats.total_seconds:.1f}s"
    )
    return MaterializeResult(metadata=sync_metadata(stats))


def sync_metadata(stats: SyncStats) -> dict:
    return {
        "dagster/row_count": stats.documents,
        "model": stats.model,
        "device": stats.device,
        "backend": stats.backend,
        "dimension": stats.dimension,
        "batch_size": stats.batch_size,
        "embedded": MetadataValue.int(stats.embedded),
        "new": MetadataValue.int(stats.new),
        "changed": MetadataValue.int(stats.changed),
        "skipped": MetadataValue.int(stats.skipped),
        "removed": MetadataValue.int(stats.removed),
        "texts_encoded": MetadataValue.int(stats.texts_encoded),
        "vectors_reused": MetadataValue.int(stats.vectors_reused),
        "docs_per_second": MetadataValue.float(round(stats.docs_per_second, 1)),
        "encode_texts_per_second": MetadataValue.float(round(stats.encode_texts_per_second, 1)),
        "hnsw_m": stats.hnsw.m,
        "hnsw_ef_construction": stats.hnsw.ef_construction,
        "index_name": stats.index_name or "",
        "index_built": stats.index_built,
        "activated": stats.activated,
        "previous_model": stats.previous_model or "",
        "seconds": MetadataValue.json({k: round(v, 3) for k, v in stats.seconds.items()}),
    }


RECALL_THRESHOLD = 0.95


@asset_check(
    asset=EMBEDDINGS_KEY,
    name="hnsw_recall_at_10",
    description=f"Recall@10 of the HNSW index against exact search (numpy) is at least {RECALL_THRESHOLD}.",
)
def hnsw_recall_check(context: AssetCheckExecutionContext, postgres: PostgresResource) -> AssetCheckResult:
    from assay.search.relevance import hnsw_recall

    # The read-only role, as the API and agents search: the check also proves their grants.
    with postgres.connect(autocommit=True, reader=True) as conn:
        report = hnsw_recall(conn)
    passed = report.recall >= RECALL_THRESHOLD
    result = AssetCheckResult(
        asset_key=EMBEDDINGS_KEY,
        check_name="hnsw_recall_at_10",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"recall@{report.k} {report.recall:.3f} over {report.queries} queries"
            + ("" if passed else f" is below {RECALL_THRESHOLD}: raise hnsw m / ef_construction or ef_search")
        ),
        metadata={
            "recall_at_10": MetadataValue.float(round(report.recall, 4)),
            "min_recall": MetadataValue.float(round(report.min_recall, 4)),
            "queries": report.queries,
            "ef_search": report.ef_search,
            "threshold": RECALL_THRESHOLD,
        },
    )
    return result


@asset_check(
    asset=EMBEDDINGS_KEY,
    name="search_relevance_ndcg",
    description=(
        "nDCG@10 of vector, full-text and hybrid search on a labelled relevance set derived from the "
        "sample generator's ground truth; hybrid must not be worse than the better of the two."
    ),
)
def search_relevance_check(
    context: AssetCheckExecutionContext, postgres: PostgresResource, embedding_model: EmbeddingModelResource
) -> AssetCheckResult:
    from assay.search.relevance import evaluate_relevance, graded_relevance
    from assay.search.searcher import Searcher

    truth = get_settings().truth_dir / "transactions.csv"
    if not truth.exists():
        result = AssetCheckResult(
            asset_key=EMBEDDINGS_KEY,
            check_name="search_relevance_ndcg",
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description=f"not evaluated: no ground truth at {truth} (only generated samples have one)",
            metadata={"evaluated": False},
        )
        return result
    with postgres.connect(autocommit=True, reader=True) as conn:
        graded = graded_relevance(conn, truth)
        report = evaluate_relevance(Searcher(conn, embedding_model.encoder_for), graded)
    m = report.mean_ndcg
    table = "| query | vector | full-text | hybrid |\n| --- | --- | --- | --- |\n" + "\n".join(
        f"| {q} | {s['vector']:.3f} | {s['fulltext']:.3f} | {s['hybrid']:.3f} |"
        for q, s in report.per_query.items()
    )
    summary = f"nDCG@10 vector {m['vector']:.3f}, full-text {m['fulltext']:.3f}, hybrid {m['hybrid']:.3f}"
    result = AssetCheckResult(
        asset_key=EMBEDDINGS_KEY,
        check_name="search_relevance_ndcg",
        passed=report.hybrid_not_worse,
        severity=AssetCheckSeverity.WARN,
        description=summary
        + ("" if report.hybrid_not_worse else ": hybrid is worse than the better single method"),
        metadata={
            "evaluated": True,
            "ndcg_vector": MetadataValue.float(round(m["vector"], 4)),
            "ndcg_fulltext": MetadataValue.float(round(m["fulltext"], 4)),
            "ndcg_hybrid": MetadataValue.float(round(m["hybrid"], 4)),
            "queries": len(report.per_query),
            "per_query": MetadataValue.md(table),
        },
    )
    return result


embedding_checks = [hnsw_recall_check, search_relevance_check]
