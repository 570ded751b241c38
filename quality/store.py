"""`quality.*` tables: DQ score history and every check result, so `assay quality` (and the read
API, via the read-only role) can explain a run without the Dagster instance.

- `quality.dq_scores`: one row per table per run (appended; history is kept).
- `quality.check_results`: one row per check evaluation: dbt tests, DQ gates, GX suites, drift.
- `quality.daily_reports`: the daily quality report, one row per day (a rerun replaces the day's).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, TableMetadataValue

from assay.core.database import PostgresResource

DDL = (
    """
    create table if not exists quality.dq_scores (
        run_id       text not null,
        table_name   text not null,
        layer        text not null,
        row_count    bigint not null,
        input_rows   bigint not null,
        completeness double precision not null,
        uniqueness   double precision not null,
        validity     double precision not null,
        timeliness   double precision not null,
        overall      double precision not null,
        threshold    double precision not null,
        passed       boolean not null,
        details      jsonb not null default '{}',
        measured_at  timestamptz not null default now(),
        primary key (run_id, table_name)
    )""",
    "create index if not exists dq_scores_latest on quality.dq_scores (table_name, measured_at desc)",
    """
    create table if not exists quality.check_results (
        result_id    bigint generated always as identity primary key,
        run_id       text not null,
        asset_key    text not null,
        check_name   text not null,
        passed       boolean not null,
        severity     text not null,
        description  text,
        metadata     jsonb not null default '{}',
        evaluated_at timestamptz not null default now()
    )""",
    "create index if not exists check_results_latest"
    " on quality.check_results (asset_key, check_name, evaluated_at desc)",
    """
    create table if not exists quality.daily_reports (
        report_date  date primary key,
        run_id       text not null,
        report       jsonb not null,
        markdown     text not null,
        created_at   timestamptz not null default now()
    )""",
)


def ensure_tables(conn: psycopg.Connection) -> None:
    with conn.transaction():
        # several check steps may run at once under the multiprocess executor
        conn.execute("select pg_advisory_xact_lock(hashtext('assay.quality.ddl'))")
        for statement in DDL:
            conn.execute(statement)


@dataclass
class Score:
    table: str  # schema.table
    layer: str
    row_count: int  # rows in the table itself
    input_rows: int  # rows the scores are shares of (bronze rows for silver, own rows for gold)
    completeness: float
    uniqueness: float
    validity: float
    timeliness: float
    overall: float
    details: dict[str, Any]

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
            uniqueness, validity, timeliness, overall, threshold, passed, details)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (run_id, table_name) do update set
            row_count = excluded.row_count, input_rows = excluded.input_rows,
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
        ],
    )


def previous_row_count(conn: psycopg.Connection, table: str, run_id: str) -> int | None:
    """Rows the table had at its latest scoring in another run (None: never scored before)."""
    row = conn.execute(
        "select row_count from quality.dq_scores where table_name = %s and run_id <> %s"
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


class CheckRecorder:
    """Collects check results of one step and writes them to `quality.check_results` in one go."""

    def __init__(self, postgres: PostgresResource, run_id: str):
        self.postgres, self.run_id = postgres, run_id
        self.rows: list[tuple] = []

    def add(self, result: AssetCheckResult, asset_key: str | None = None) -> AssetCheckResult:
        severity = result.severity or AssetCheckSeverity.ERROR
        key = asset_key or (result.asset_key.to_user_string() if result.asset_key else "?")
        metadata = {k: _plain(v) for k, v in (result.metadata or {}).items()}
        self.rows.append(
            (
                self.run_id,
                key,
                result.check_name or "?",
                bool(result.passed),
                severity.value,
                result.description,
                json.dumps(metadata, default=str),
            )
        )
        return result

    def flush(self) -> None:
        if not self.rows:
            return
        with self.postgres.connect(autocommit=True) as conn:
            ensure_tables(conn)
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into quality.check_results (run_id, asset_key, check_name, passed, severity,"
                    " description, metadata) values (%s, %s, %s, %s, %s, %s, %s)",
                    self.rows,
                )
        self.rows = []

    def __enter__(self) -> "CheckRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
