"""Retrieval over platinum for the agents, through the search library (`assets/search.py`).

The one place agents find similar documents, so the model and the baseline it is measured against
always see the same neighbours:
- `similar_labelled_transactions`: the categorise task's few-shot examples, the nearest labelled
  transactions **by vector** (cosine over `platinum.embeddings`); the nearest-neighbour baseline is
  the majority label of exactly these examples;
- `search_documents` / the `search` tool: **hybrid** search (vector + full-text, reciprocal rank
  fusion) for the analyst task.

Everything runs on the tools' read-only session (`assay_reader`, read-only transactions, its
statement timeout), at most `row_cap` hits per query. Queries are encoded in one model call per
step: the batch retrieval encodes all inputs at once, and `prepare_search` encodes every search
call of an agent step before the calls run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from assay.agents.tools.db import ReaderSession
from assay.search.searcher import Filters, Hit

SEARCH_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 2, "maxLength": 80},
        "doc_type": {"enum": ["transaction", "vendor"]},
        "category": {"type": "string", "maxLength": 40},
    },
    "required": ["query"],
    "additionalProperties": False,
}
SEARCH_HITS = 5


def search_documents(
    session: ReaderSession,
    text: str,
    *,
    k: int = SEARCH_HITS,
    doc_type: str | None = None,
    category: str | None = None,
) -> list[dict[str, Any]]:
    """The k best hybrid-search hits for `text`, optionally only of one type or category."""
    with session.errors():
        result = session.searcher.hybrid(
            text, k=min(k, session.row_cap), filters=Filters(category=category, doc_type=doc_type)
        )
    return [
        {
            "doc_id": hit.doc_id,
            "doc_type": hit.doc_type,
            "title": hit.title,
            "category": hit.category,
            "doc_date": hit.doc_date.isoformat() if hit.doc_date else None,
            "score": round(hit.score, 4),
        }
        for hit in result.hits
    ]


def _example(hit: Hit) -> dict[str, Any]:
    # the description and vendor only: department, amount and date say nothing about the category
    return {
        "id": hit.doc_id.split(":", 1)[1],
        "text": hit.body.split(". Department:", 1)[0],
        "category": hit.category,
        "score": round(hit.score, 4),
    }


def similar_labelled_transactions(
    session: ReaderSession, texts: Mapping[str, str], categories: Sequence[str], *, k: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """For each key, the k labelled transactions nearest to its text by vector, nearest first.

    Labelled = a transaction document whose category is one of `categories`. All texts are encoded
    in one model call and searched in one snapshot (`Searcher.vector_many`). Each example has the
    transaction id, its description and vendor (`text`), its category and its cosine similarity.
    """
    if not texts:
        return {}
    keys = list(texts)
    labelled = Filters(doc_type="transaction", category=list(categories))
    with session.errors():
        results = session.searcher.vector_many(
            [texts[key] for key in keys], k=min(k, session.row_cap), filters=labelled
        )
    return {key: [_example(hit) for hit in result.hits] for key, result in zip(keys, results, strict=True)}


def majority_label(examples: list[dict[str, Any]]) -> str | None:
    """The nearest-neighbour baseline: the most frequent label, ties to the best-ranked example."""
    if not examples:
        return None
    counts = Counter(e["category"] for e in examples)
    best = max(counts.values())
    return next(e["category"] for e in examples if counts[e["category"]] == best)


def prepare_search(session: ReaderSession, calls: Sequence[dict[str, Any]]) -> None:
    """Encode the queries of one step's search calls in one model call, before the calls run."""
    with session.errors():
        session.searcher.prepare([call["query"] for call in calls])


def run_search(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    hits = search_documents(
        session, arguments["query"], doc_type=arguments.get("doc_type"), category=arguments.get("category")
    )
    return {"query": arguments["query"], "rows": hits}
