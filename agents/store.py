"""Results and cache: `agents.runs` (every executed run), `agents.answers` (latest valid answer per
task and input key) and `agents.questions` (the analyst questions, seeded with a few). The tables
are made by the migrations (`core/migrations/0005-agents.sql`).

The cache key is input hash + prompt hash + model fingerprint: an answer is reused only when all
three are unchanged and its tool calls still return what they returned (`data_version.py`), so a
rerun with nothing changed generates no tokens and a change in gold re-runs exactly what it affects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from assay.core.database import PostgresResource

# `expected_sql` is the evaluation's reference, computed directly over gold (never via the tools);
# a question whose reference cannot run (e.g. the process-mining tables are not built) is unscored.
SEED_QUESTIONS: tuple[tuple[str, str, str | None, str], ...] = (
    (
        "top_category",
        "Which expense category had the highest total spend?",
        "select category from gold.monthly_summary"
        " group by category order by sum(total_amount_eur) desc limit 1",
        "text",
    ),
    (
        "travel_march",
        "What was the total travel spend in EUR in March 2025?",
        "select round(sum(total_amount_eur), 2) from gold.monthly_summary"
        " where category = 'travel' and month = date '2025-03-01'",
        "number",
    ),
    (
        "top_vendor",
        "Which vendor has the largest share of spend?",
        "select vendor_name from gold.vendor_spend order by spend_rank limit 1",
        "text",
    ),
    (
        "engineering_count",
        "How many transactions did the Engineering department make?",
        "select sum(transaction_count) from gold.monthly_summary where department = 'Engineering'",
        "number",
    ),
    (
        "anomaly_weeks",
        "How many weeks were flagged as anomalous in total?",
        "select count(*) from gold.category_trends where is_anomaly",
        "number",
    ),
    (
        "common_variant",
        "What is the most common approval process variant?",
        "select variant from gold.process_variants order by cases desc limit 1",
        "text",
    ),
)


class AgentStore:
    """Writes as the pipeline owner into the agents schema (the only schema agents write)."""

    def __init__(self, postgres: PostgresResource):
        self.postgres = postgres

    def seed_questions(self) -> int:
        """Insert the seed questions that are missing; questions added by people are kept."""
        with self.postgres.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                "insert into agents.questions (question_id, question, expected_sql, answer_type)"
                " values (%s, %s, %s, %s) on conflict (question_id) do nothing",
                SEED_QUESTIONS,
            )
            return conn.execute("select count(*) from agents.questions").fetchone()[0]

    def cached(self, task: str, cache_keys: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Stored answers whose cache key equals the one computed now, by input key, with the trace
        (`steps`) of the run that made them, whose tool calls tell whether their data changed."""
        if not cache_keys:
            return {}
        with self.postgres.connect(autocommit=True) as conn:
            rows = conn.execute(
                "select a.input_key, a.answer, a.citations, r.steps from agents.answers a"
                " join unnest(%s::text[], %s::text[]) as k(input_key, cache_key) using (input_key, cache_key)"
                " left join agents.runs r using (run_id)"
                " where a.task = %s",
                [list(cache_keys), list(cache_keys.values()), task],
            ).fetchall()
        return {
            key: {"answer": answer, "citations": citations, "steps": steps}
            for key, answer, citations, steps in rows
        }

    def prune(self, task: str, keep: Sequence[str]) -> int:
        """Delete the task's answers whose input is no longer among `keep` (e.g. a week no longer
        flagged as anomalous); their runs stay in `agents.runs` as history."""
        with self.postgres.connect(autocommit=True) as conn:
            return conn.execute(
                "delete from agents.answers where task = %s and input_key <> all(%s::text[])",
                [task, list(keep)],
            ).rowcount

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store executed runs; valid answers replace the task's previous answer for that key."""
        if not rows:
            return
        columns = (
            "task", "input_key", "status", "answer", "citations", "steps", "backend", "model", "device",
            "input_hash", "prompt_hash", "model_hash", "cache_key", "tokens_in", "tokens_out",
            "latency_ms", "error", "batch_id",
        )  # fmt: skip
        with self.postgres.connect() as conn:
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"copy agents.runs ({', '.join(columns)}) from stdin"  # column names: constants above
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(
                        [
                            json.dumps(row[c], default=str)
                            if c in ("answer", "steps") and row[c] is not None
                            else row[c]
                            for c in columns
                        ]
                    )
            conn.execute(
                """
                insert into agents.answers
                    (task, input_key, answer, citations, cache_key, run_id, model, backend)
                select distinct on (task, input_key)
                       task, input_key, answer, citations, cache_key, run_id, model, backend
                from assay.agents.runs
                where batch_id = %s and status = 'succeeded'
                order by task, input_key, run_id desc
                on conflict (task, input_key) do update set
                    answer = excluded.answer, citations = excluded.citations, cache_key = excluded.cache_key,
                    run_id = excluded.run_id, model = excluded.model, backend = excluded.backend,
                    updated_at = now()
                """,
                [rows[0]["batch_id"]],
            )
            conn.commit()

    def answers(self, task: str, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        with self.postgres.connect(autocommit=True) as conn:
            query = "select input_key, answer, citations from agents.answers where task = %s"
            params: list[Any] = [task]
            if keys is not None:
                query += " and input_key = any(%s)"
                params.append(list(keys))
            return {k: {"answer": a, "citations": c} for k, a, c in conn.execute(query, params)}
