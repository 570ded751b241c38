"""Retrieval over platinum.documents: Postgres full-text search with filters.

The one place agents find similar documents: the categorise task's few-shot examples (and the
nearest-neighbour baseline it is measured against) and the analyst task's search tool. It is plain
full-text search today (`to_tsvector('english', body) @@ websearch_to_tsquery(...)`, ranked by
`ts_rank`); the hybrid vector + full-text search of the embeddings layer can replace the two
functions below without touching the tasks.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from agents.tools.db import ReaderSession

_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)

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


def any_terms(text: str, limit: int = 24) -> str:
    """A websearch query matching documents with any of the words of `text` (OR, not AND).

    Only letters and digits pass: quotes, minus signs and the like mean something to
    `websearch_to_tsquery`, and injected text should only ever be words to look for.
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))[:limit]
    return " or ".join(words)


def search_documents(
    session: ReaderSession,
    text: str,
    *,
    k: int = 5,
    doc_type: str | None = None,
    category: str | None = None,
) -> list[dict[str, Any]]:
    """The k best full-text matches for `text`, optionally only of one type or category."""
    query = any_terms(text)
    if not query:
        return []
    result = session.query(
        """
        select doc_id, doc_type, title, category, doc_date::text as doc_date,
               round(ts_rank(to_tsvector('english', body), q)::numeric, 4)::float as score
        from platinum.documents, websearch_to_tsquery('english', %(q)s) as q
        where to_tsvector('english', body) @@ q
          and (%(doc_type)s::text is null or doc_type = %(doc_type)s)
          and (%(category)s::text is null or category = %(category)s)
        order by score desc, doc_id
        limit %(k)s
        """,
        {"q": query, "doc_type": doc_type, "category": category, "k": k},
        cap=k,
    )
    return result.records()


def similar_labelled_transactions(
    session: ReaderSession, texts: Mapping[str, str], *, k: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """For each key, the k labelled transaction documents most similar to its text: one SQL statement.

    Each hit has the document's description and vendor (`text`), its category and its rank score.

    The labelled documents' vectors are built once per call (a materialised CTE) and every query is
    matched against them in a lateral join, so a thousand inputs cost one pass, not a thousand.
    """
    if not texts:
        return {}
    keys = list(texts)
    queries = [any_terms(texts[key]) for key in keys]
    rows = session.bulk(
        """
        with labelled as materialized (
            select doc_id, source_id, split_part(body, '. Department:', 1) as text, category,
                   to_tsvector('english', body) as vector
            from platinum.documents
            where doc_type = 'transaction' and category is not null
        ),
        inputs as (
            select key, websearch_to_tsquery('english', query) as q
            from unnest(%s::text[], %s::text[]) as i(key, query)
        )
        select inputs.key, hit.source_id, hit.text, hit.category, hit.score
        from inputs
        cross join lateral (
            select source_id, text, category, ts_rank(vector, inputs.q) as score
            from labelled
            where vector @@ inputs.q
            order by score desc, doc_id
            limit %s
        ) as hit
        order by inputs.key, hit.score desc, hit.source_id
        """,
        [keys, queries, k],
    )
    found: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for key, source_id, text, category, score in rows:
        found[key].append({"id": source_id, "text": text, "category": category, "score": round(score, 4)})
    return found


def majority_label(examples: list[dict[str, Any]]) -> str | None:
    """The nearest-neighbour baseline: the most frequent label, ties to the best-ranked example."""
    if not examples:
        return None
    counts = Counter(e["category"] for e in examples)
    best = max(counts.values())
    return next(e["category"] for e in examples if counts[e["category"]] == best)


def run_search(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    hits = search_documents(
        session,
        arguments["query"],
        k=min(5, session.row_cap),
        doc_type=arguments.get("doc_type"),
        category=arguments.get("category"),
    )
    return {"query": arguments["query"], "rows": hits}
