"""Search quality: HNSW recall against exact search, and nDCG@10 on a labelled relevance set.

The relevance set is derived from the sample generator's ground truth, not from the documents'
(possibly defective) category field. Each query names one expense category and the items that
best answer it; a document's grade is

- 2: a transaction whose true category (ground truth) is the query's and whose description is one of
  the named items (the generator builds each description from an item list of its true category);
- 1: any other transaction of that true category (including those whose category is missing in the
  data), or a vendor whose usual category it is;
- 0: everything else.

Queries are worded in plain language, not copied from the descriptions, so they exercise both
lexical and semantic matching. nDCG@10 uses gains 2^grade - 1 and the ideal ordering over every
graded document in the corpus.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from assay.search.searcher import MODES, Searcher


@dataclass(frozen=True)
class RelevanceQuery:
    text: str
    category: str
    items: tuple[str, ...]  # description prefixes (the generator's items) that make a grade-2 hit


RELEVANCE_QUERIES: tuple[RelevanceQuery, ...] = (
    RelevanceQuery("flight to London", "travel", ("Flight FRA-LHR", "Flight MUC-CDG", "Flight ARN-AMS")),
    RelevanceQuery("rail journey between cities", "travel", ("Train ticket",)),
    RelevanceQuery(
        "getting to the airport by car", "travel", ("Taxi to airport", "Rental car", "Airport parking")
    ),
    RelevanceQuery(
        "business meal with a client",
        "meals",
        ("Client dinner at Brasserie", "Business breakfast", "Working lunch"),
    ),
    RelevanceQuery("lunch for the team", "meals", ("Team lunch", "Working lunch")),
    RelevanceQuery(
        "hotel accommodation", "lodging", ("Hotel stay 2 nights", "Hotel room", "Conference hotel")
    ),
    RelevanceQuery(
        "software licence subscription",
        "software",
        ("Annual licence", "SaaS subscription", "IDE licence renewal"),
    ),
    RelevanceQuery("cloud infrastructure bill", "software", ("Cloud hosting invoice", "API usage fees")),
    RelevanceQuery(
        "new computer equipment", "hardware", ("Laptop", "Docking station", "External monitor 27in")
    ),
    RelevanceQuery("printer consumables", "office_supplies", ("Printer paper", "Toner cartridges")),
    RelevanceQuery(
        "professional certification and courses",
        "training",
        ("Certification exam fee", "Online course", "Language course"),
    ),
    RelevanceQuery(
        "advertising campaign",
        "marketing",
        ("Online ad campaign", "Social media promotion", "Printed brochures"),
    ),
    RelevanceQuery("legal and tax advice", "consulting", ("Legal review", "Tax advisory")),
    RelevanceQuery("phone charges while abroad", "telecom", ("Roaming charges", "Mobile phone plan")),
    RelevanceQuery("internet connectivity", "telecom", ("Internet connection",)),
)


def graded_relevance(
    conn: psycopg.Connection, truth_csv: Path, schema: str = "platinum"
) -> dict[str, dict[str, int]]:
    """query text -> {doc_id: grade > 0} over the active model's corpus."""
    rows = conn.execute(
        sql.SQL(
            "select e.doc_id, e.doc_type, e.body, e.category from {emb} e"
            " join {models} m on m.model = e.model and m.active"
        ).format(emb=sql.Identifier(schema, "embeddings"), models=sql.Identifier(schema, "embedding_models"))
    ).fetchall()
    docs = pl.DataFrame(rows, schema=["doc_id", "doc_type", "body", "category"], orient="row")
    truth = pl.read_csv(truth_csv, columns=["transaction_id", "true_category"], infer_schema=False)
    docs = docs.with_columns(source_id=pl.col("doc_id").str.split_exact(":", 1).struct.field("field_1")).join(
        truth, left_on="source_id", right_on="transaction_id", how="left"
    )
    graded: dict[str, dict[str, int]] = {}
    for q in RELEVANCE_QUERIES:
        is_item = pl.any_horizontal([pl.col("body").str.starts_with(item) for item in q.items])
        tx = pl.col("doc_type") == "transaction"
        grade = (
            pl.when(tx & (pl.col("true_category") == q.category) & is_item)
            .then(2)
            .when(tx & (pl.col("true_category") == q.category))
            .then(1)
            .when((pl.col("doc_type") == "vendor") & (pl.col("category") == q.category))
            .then(1)
            .otherwise(0)
        )
        relevant = docs.select("doc_id", grade.alias("grade")).filter(pl.col("grade") > 0)
        graded[q.text] = dict(zip(relevant["doc_id"], relevant["grade"], strict=True))
    return graded


def ndcg_at_k(ranked: list[str], grades: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** grades.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


@dataclass
class RelevanceReport:
    k: int
    mean_ndcg: dict[str, float]  # mode -> mean nDCG@k over the queries
    per_query: dict[str, dict[str, float]]  # query -> mode -> nDCG@k

    @property
    def hybrid_not_worse(self) -> bool:
        best_single = max(self.mean_ndcg["vector"], self.mean_ndcg["fulltext"])
        return self.mean_ndcg["hybrid"] >= best_single - 1e-9


def evaluate_relevance(searcher: Searcher, graded: dict[str, dict[str, int]], k: int = 10) -> RelevanceReport:
    per_query: dict[str, dict[str, float]] = {}
    for query, grades in graded.items():
        per_query[query] = {m: ndcg_at_k(searcher.search(query, m, k).doc_ids, grades, k) for m in MODES}
    mean = {m: float(np.mean([scores[m] for scores in per_query.values()])) for m in MODES}
    return RelevanceReport(k, mean, per_query)


@dataclass
class RecallReport:
    k: int
    queries: int
    recall: float  # mean |HNSW top-k ∩ exact top-k| / k
    min_recall: float
    ef_search: int


def hnsw_recall(
    conn: psycopg.Connection,
    schema: str = "platinum",
    queries: int = 100,
    k: int = 10,
    ef_search: int = Searcher.DEFAULT_EF_SEARCH,
) -> RecallReport:
    """Recall@k of the HNSW index against exact search, over the vectors of `queries` sampled documents.

    The exact answer is computed in numpy over every vector of the active model (cosine distance),
    independently of Postgres' operators; the sample is fixed (ordered by md5 of the doc id). The
    search forces the index: on a small corpus Postgres rightly prefers an exact scan, and the
    check would then measure nothing.
    """
    searcher = Searcher(conn, schema=schema, ef_search=ef_search, force_index=True)
    with conn.transaction():
        model = conn.execute(
            sql.SQL("select model from {} where active").format(sql.Identifier(schema, "embedding_models"))
        ).fetchone()
        if not model:
            raise ValueError(f"no active embedding model in {schema}")
        # binary: pgvector's text form costs about 5 s to parse for 48,700 vectors, binary 1 s
        with conn.cursor(binary=True) as cursor:
            rows = cursor.execute(
                sql.SQL("select doc_id, embedding from {} where model = %s order by doc_id").format(
                    sql.Identifier(schema, "embeddings")
                ),
                [model[0]],
            ).fetchall()
    ids = [r[0] for r in rows]
    matrix = np.stack([r[1].to_numpy() for r in rows]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    order = sorted(range(len(ids)), key=lambda i: _md5(ids[i]))[:queries]
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    recalls = []
    for i in order:
        sims = matrix @ matrix[i]
        kth = np.partition(-sims, k - 1)[k - 1] * -1  # the exact k-th best similarity
        found = searcher.vector(matrix[i], k).doc_ids
        # a hit counts when it is as close as the exact k-th neighbour (ties are not misses)
        recalls.append(sum(1 for d in found if sims[position[d]] >= kth - 1e-6) / k)
    return RecallReport(k, len(order), float(np.mean(recalls)), float(np.min(recalls)), searcher.ef_search)


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()
