"""`quality.*` tables: DQ score history and every check result, so `assay quality` (and the read
API, via the read-only role) can explain a run without the Dagster instance.

- `quality.dq_scores`: one row per table per run (appended; history is kept), with the window of
  days it covers (`window_start` .. `window_end`; null: the whole table) and the whole table's rows.
- `quality.check_results`: one row per check of a run: dbt tests, DQ gates, GX suites, drift, the
  agents' checks (`record_run_checks`, from the run's events, is the one way in).
- `quality.daily_reports`: the daily quality report, one row per day (a rerun replaces the day's).

The tables are made by the migrations (`core/migrations/0003-quality.sql` and later).
"""

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from dagster import (
    AssetCheckSeverity,
    DagsterEventType,
    DagsterInstance,
    MetadataValue,
    TableMetadataValue,
)

from assay.core.database import PostgresResource

Window = tuple[dt.date, dt.date]  # first and last day (inclusive) of a run's daily partitions


@dataclass
class Score:
    table: str  # schema.table
    layer: str
    row_count: int  # rows of the table in the scored window (the whole table without a window)
    input_rows: int  # rows the scores are shares of (bronze rows for silver, own rows for gold)
    completeness: float
    uniqueness: float
    validity: float
    timeliness: float
    overall: float
    details: dict[str, Any]
    window: Window | None = None  # the days scored; None: the whole table
    table_rows: int | None = None  # rows of the whole table (None: row_count, no window)

    @property
    def whole_rows(self) -> int:
        """Rows of the whole table when it was scored."""
        return self.row_count if self.table_rows is None else self.table_rows

    def dimensions(self) -> dict[str, float]:
        return {
            "completeness": self.completeness,
            "uniqueness": self.uniqueness,
            "validity": self.validity,
            "timeliness": self.timeliness,
        }


def record_score(conn: psycopg.Connection, run_id: str, score: Score, threshold: float, passed: bool) -> None:
    conn.execute(
        """
        insert into quality.dq_scores (run_id, table_name, layer, row_count, input_rows, completeness,
            uniqueness, validity, timeliness, overall, threshold, passed, details, window_start,
            window_end, table_rows)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (run_id, table_name) do update set
            row_count = excluded.row_count, input_rows = excluded.input_rows,
            window_start = excluded.window_start, window_end = excluded.window_end,
            table_rows = excluded.table_rows,
            completeness = excluded.completeness, uniqueness = excluded.uniqueness,
            validity = excluded.validity, timeliness = excluded.timeliness,
            overall = excluded.overall, threshold = excluded.threshold, passed = excluded.passed,
            details = excluded.details, measured_at = now()
        """,
        [
            run_id,
            score.table,
            score.layer,
            score.row_count,
            score.input_rows,
            score.completeness,
            score.uniqueness,
            score.validity,
            score.timeliness,
            score.overall,
            threshold,
            passed,
            json.dumps(score.details, default=str),
            score.window[0] if score.window else None,
            score.window[1] if score.window else None,
            score.whole_rows,
        ],
    )


def previous_row_count(conn: psycopg.Connection, table: str, run_id: str) -> int | None:
    """Rows the whole table had at its latest scoring in another run (None: never scored before)."""
    row = conn.execute(
        "select coalesce(table_rows, row_count) from quality.dq_scores where table_name = %s and run_id <> %s"
        " order by measured_at desc limit 1",
        [table, run_id],
    ).fetchone()
    return row[0] if row else None


def _plain(value: Any) -> Any:
    """A metadata value as JSON-friendly data (markdown as its text, a table as its rows)."""
    if isinstance(value, TableMetadataValue):
        return [_plain(record.data) for record in value.records]
    if isinstance(value, MetadataValue):
        value = value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def record_run_checks(postgres: PostgresResource, instance: DagsterInstance, run_id: str) -> int:
    """Every asset check evaluation of a run, read from the instance's event log, into
    `quality.check_results`: dbt tests, quality gates, GX suites, drift, the agents' checks, all of them.

    The one path by which check results reach the table: the run-status sensors call it after each
    run, `assay run` after its in-process run. One row per (run, asset, check), the run's last
    evaluation of it; recording a run again rewrites its rows, never adds to them. Returns the rows.
    """
    rows: dict[tuple[str, str], tuple] = {}
    cursor = None
    while True:
        page = instance.get_records_for_run(
            run_id, cursor=cursor, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        )
        for record in page.records:
            entry = record.event_log_entry
            evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
            if evaluation is None:
                continue
            key = evaluation.asset_key.to_user_string()
            severity = evaluation.severity or AssetCheckSeverity.ERROR
            metadata = {k: _plain(v) for k, v in (evaluation.metadata or {}).items()}
            rows[(key, evaluation.check_name)] = (
                run_id,
                key,
                evaluation.check_name,
                bool(evaluation.passed),
                severity.value,
                evaluation.description,
                json.dumps(metadata, default=str),
                entry.timestamp,
            )
        cursor = page.cursor
        if not page.has_more:
            break
    if rows:
        with postgres.connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(
                """
                insert into quality.check_results (run_id, asset_key, check_name, passed, severity,
                    description, metadata, evaluated_at)
                values (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))
                on conflict (run_id, asset_key, check_name) do update set
                    passed = excluded.passed, severity = excluded.severity,
                    description = excluded.description, metadata = excluded.metadata,
                    evaluated_at = excluded.evaluated_at
                """,
                list(rows.values()),
            )
    return len(rows)
