"""The record of questions asked on demand: one row in agents.asked_questions per question.

Written through `agents.record_asked` (core/migrations/0014), a SECURITY DEFINER function: the
read API calls it with its read-only connection (the reader has no privilege on the table, only on
the function), `assay ask` with the owner's. One call, the answer's values as one JSON argument.
"""

from __future__ import annotations

import json

import psycopg

from assay.agents.ask_render import Answer


def record(
    conn: psycopg.Connection, answer: Answer, *, via: str, asked_by: str, key_id: str | None = None
) -> int:
    """Store one asked question and its answer; returns its asked_id."""
    data = answer.as_dict()
    asked = {
        "via": via,
        "asked_by": asked_by,
        "api_key_id": key_id,
        "question": answer.question,
        "answer": answer.answer,
        "abstained": answer.abstained,
        "query": data["query"],
        "sql": answer.sql,
        "params": data["params"],
        "rows": data["rows"],
    }
    with conn.transaction():
        # a reader session's transactions are read-only by default; the function is its one write
        conn.execute("set transaction read write")
        row = conn.execute("select agents.record_asked(%s::jsonb)", [json.dumps(asked, default=str)])
        return row.fetchone()[0]
