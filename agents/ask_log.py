"""The record of questions asked on demand: one row in agents.asked_questions per question.

Written with the pipeline owner's connection (the reader role cannot write, by design); one
parameterised insert, the answer's values as JSON.
"""

from __future__ import annotations

import json

from assay.agents.ask import Answer
from assay.core.database import PostgresResource

_INSERT = (
    "insert into agents.asked_questions"
    " (via, asked_by, api_key_id, question, answer, abstained, query, sql, params, rows)"
    " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning asked_id"
)


def record(
    postgres: PostgresResource, answer: Answer, *, via: str, asked_by: str, key_id: str | None = None
) -> int:
    """Store one asked question and its answer; returns its asked_id."""
    data = answer.as_dict()
    with postgres.connect(autocommit=True) as conn:
        return conn.execute(
            _INSERT,
            [
                via,
                asked_by,
                key_id,
                answer.question,
                answer.answer,
                answer.abstained,
                json.dumps(data["query"]) if data["query"] is not None else None,
                answer.sql,
                json.dumps(data["params"]),
                json.dumps(data["rows"]),
            ],
        ).fetchone()[0]
