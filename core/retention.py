"""Retention: remove what each layer no longer keeps (ASSAY_RETENTION_*), never what a layer above
still needs.

Each layer has a horizon, the first day it keeps (quality.retention_horizons; horizons only move
forward). What lies before it goes:

- **bronze**: the daily partitions (`partition_date`) before the bronze horizon, and the rows of
  superseded or retracted files loaded before it (silver never read those). The silver rows and
  rejects derived from a removed day stay: the daily silver models never read a day before the
  bronze horizon (dbt's `in_window` starts there), so `assay run` rebuilding every day neither
  deletes those silver rows nor finds their bronze rows missing. Every bronze row that remains is
  still in silver or silver.rejects exactly once. Reference sources (vendors, employees) keep their
  active rows: silver rebuilds them whole. The ledger (bronze.load_batches) stays, so an old landing
  file is never loaded again.
- **silver**: the daily rows (transactions, events, their checked models and rejects) before the
  silver horizon, which is never later than bronze's (settings check it), so no bronze row loses its
  silver row.
- **gold** and **platinum**: the marts and documents are rebuilt from silver rows on or after their
  horizon (dbt's `retained_from`); rows already built before it are removed now.
- **history**: agents.runs (except those an answer points to), quality.* history, asked questions and
  the access audit (ASSAY_AUDIT_RETENTION_DAYS).

A partitioned table loses whole partitions that lie before the horizon (`drop table`, no row by row
work); elsewhere rows go in batches of ASSAY_RETENTION_BATCH_ROWS, each batch its own transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from assay.core.settings import RetentionSettings, get_settings

DAILY_SOURCES = ("transactions", "events")
REFERENCE_SOURCES = ("vendors", "employees")
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Target:
    """Rows of `table` that one layer's horizon removes: `column < horizon` and `also`, if given."""

    layer: str
    table: str
    column: str | None
    also: str | None = None
    """An extra SQL condition (it may use the parameter `%(keep_from)s`)."""


def targets() -> list[Target]:
    """Every table retention touches, in the order it does: what is derived before what it comes from
    (rejects before the checked rows that name them)."""
    inactive = (
        "batch_id in (select batch_id from bronze.load_batches where loaded_at < %(keep_from)s"
        " and (retracted_at is not null or superseded_by is not null))"
    )
    result: list[Target] = []
    for source in DAILY_SOURCES:
        checked = f"silver.int_{source}_checked"
        result += [
            Target(
                "silver",
                "silver.rejects",
                None,
                f"source = '{source}' and bronze_id in"
                f" (select bronze_id from {checked} where partition_date < %(keep_from)s)",
            ),
            Target("silver", f"silver.{source}", "partition_date"),
            Target("silver", checked, "partition_date"),
        ]
    for source in DAILY_SOURCES:
        result.append(Target("bronze", f"bronze.{source}", "partition_date"))
    for source in DAILY_SOURCES + REFERENCE_SOURCES:
        result.append(Target("bronze", f"bronze.{source}", None, inactive))
    result += [
        Target("gold", "gold.monthly_summary", "month"),
        Target("gold", "gold.category_trends", "week_start"),
        Target("gold", "gold.vendor_monthly", "month"),
        Target("platinum", "platinum.embeddings", "doc_date"),
        Target("platinum", "platinum.documents", "doc_date"),
        # an answer points to its run: those runs stay while their answer does
        Target(
            "history",
            "agents.runs",
            "created_at",
            "not exists (select from agents.answers a where a.run_id = runs.run_id)",
        ),
        Target("history", "agents.asked_questions", "asked_at"),
        Target("history", "quality.check_results", "evaluated_at"),
        Target("history", "quality.dq_scores", "measured_at"),
        Target("history", "quality.run_failures", "failed_at"),
        Target("history", "quality.daily_reports", "created_at"),
        # an open incident keeps its row (else it would alert again)
        Target("history", "quality.alerts_sent", "sent_at", "recovered_at is not null"),
        Target("audit", "audit.api_access", "accessed_at"),
    ]
    return result


@dataclass(frozen=True)
class Removal:
    table: str
    layer: str
    keep_from: dt.date
    rows: int
    partitions: tuple[str, ...] = ()
    """Partitions dropped whole (their rows are counted in `rows`)."""


@dataclass
class Report:
    dry_run: bool
    horizons: dict[str, dt.date]
    removals: list[Removal] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.removals)

    def by_table(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for removal in self.removals:
            counts[removal.table] = counts.get(removal.table, 0) + removal.rows
        return counts

    def as_metadata(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "rows_removed": self.rows,
            "horizons": {layer: day.isoformat() for layer, day in self.horizons.items()},
            "removed": self.by_table(),
            "partitions_dropped": [p for r in self.removals for p in r.partitions],
        }


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def horizons(settings: RetentionSettings, audit_days: int, today: dt.date) -> dict[str, dt.date]:
    """The first day each layer keeps, counted back from `today`."""
    bronze = today - dt.timedelta(days=settings.bronze_days)
    # never later than bronze's (the settings check it too): silver accounts for every bronze row
    silver = min(_years_before(today, settings.silver_years), bronze)
    # whole months: a month in gold is complete or absent
    gold = _years_before(today, settings.gold_years).replace(day=1)
    return {
        "bronze": bronze,
        "silver": silver,
        "gold": gold,
        "platinum": today - dt.timedelta(days=settings.platinum_days),
        "history": today - dt.timedelta(days=settings.history_days),
        "audit": today - dt.timedelta(days=audit_days),
    }


def apply(
    conn: psycopg.Connection,
    *,
    settings: RetentionSettings | None = None,
    audit_days: int | None = None,
    today: dt.date | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = lambda _: None,
) -> Report:
    """Remove (with `dry_run`, count) what lies before each layer's horizon; `conn` in autocommit
    mode, so that each batch is its own transaction. Returns what was (or would be) removed."""
    if not conn.autocommit:
        raise ValueError("retention needs an autocommit connection: each batch is its own transaction")
    config = get_settings()
    settings = settings or config.retention
    days = horizons(settings, audit_days or config.audit_retention_days, today or dt.date.today())
    if not dry_run:
        # recorded first: from here on no dbt run reads or rebuilds a day that is about to go
        _advance(conn, days)
        days = _recorded(conn, days)
    report = Report(dry_run=dry_run, horizons=days)
    for target in targets():
        if _regclass(conn, target.table) is None:
            continue  # a layer not built yet
        removal = remove(conn, target, days[target.layer], settings.batch_rows, dry_run)
        if removal.rows:
            verb = "would remove" if dry_run else "removed"
            echo(f"{target.table}: {verb} {removal.rows:,} rows before {removal.keep_from}")
        report.removals.append(removal)
    return report


def _advance(conn: psycopg.Connection, days: dict[str, dt.date]) -> None:
    """Move the horizons forward, once no daily silver model is rebuilding (they hold the shared
    lock for their whole transaction, dbt's `delete_window`): a rebuild that starts later reads the
    new bronze horizon, so none reads a day while its bronze rows are being removed."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('assay.retention'))")
        _upsert_horizons(conn, days)


def _upsert_horizons(conn: psycopg.Connection, days: dict[str, dt.date]) -> None:
    conn.execute(
        "insert into quality.retention_horizons (layer, keep_from)"
        " select * from unnest(%s::text[], %s::date[])"
        " on conflict (layer) do update set keep_from = greatest(retention_horizons.keep_from,"
        " excluded.keep_from), applied_at = now()",
        [list(days), list(days.values())],
    )


def _recorded(conn: psycopg.Connection, days: dict[str, dt.date]) -> dict[str, dt.date]:
    # a horizon moved further by an earlier run (a shorter window then) stays where it is
    stored = dict(conn.execute("select layer, keep_from from quality.retention_horizons").fetchall())
    return {layer: stored.get(layer, day) for layer, day in days.items()}


def _regclass(conn: psycopg.Connection, table: str) -> int | None:
    row = conn.execute("select to_regclass(%s)::oid", [table]).fetchone()
    return row[0] if row else None


def _condition(target: Target) -> sql.Composable:
    parts = []
    if target.column:
        parts.append(sql.SQL("{} < %(keep_from)s").format(sql.Identifier(target.column)))
    if target.also:
        parts.append(sql.SQL(target.also))
    return sql.SQL(" and ").join(parts)


def remove(
    conn: psycopg.Connection, target: Target, keep_from: dt.date, batch_rows: int, dry_run: bool
) -> Removal:
    """Remove (or count) `target`'s rows before `keep_from`: whole partitions where they lie wholly
    before it, the rest in batches."""
    schema, name = target.table.split(".")
    dropped: list[str] = []
    rows = 0
    relations = [(schema, name)]
    key = _partition_key(conn, schema, name)
    if key is not None:
        # rows are deleted from each leaf (a ctid names a row only within one partition); a leaf
        # wholly before the horizon, in a table partitioned by range on the target's column, is dropped
        relations = []
        whole = target.column is not None and key == f"RANGE ({target.column})"
        for part_schema, part_name, bound in _leaf_partitions(conn, schema, name):
            upper = _upper_bound(bound) if whole else None
            if upper is not None and upper <= keep_from:
                rows += _count(conn, part_schema, part_name, None, keep_from)
                dropped.append(f"{part_schema}.{part_name}")
                if not dry_run:
                    conn.execute(sql.SQL("drop table {}").format(sql.Identifier(part_schema, part_name)))
            else:
                relations.append((part_schema, part_name))
    condition = _condition(target)
    for rel_schema, rel_name in relations:
        if dry_run:
            rows += _count(conn, rel_schema, rel_name, condition, keep_from)
        else:
            rows += _delete_batches(conn, rel_schema, rel_name, condition, keep_from, batch_rows)
    return Removal(target.table, target.layer, keep_from, rows, tuple(dropped))


def _count(
    conn: psycopg.Connection, schema: str, name: str, condition: sql.Composable | None, keep_from: dt.date
) -> int:
    query = sql.SQL("select count(*) from {} as {}").format(
        sql.Identifier(schema, name), sql.Identifier(name)
    )
    if condition is not None:
        query = sql.SQL("{} where {}").format(query, condition)
    return conn.execute(query, {"keep_from": keep_from}).fetchone()[0]


def _delete_batches(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    condition: sql.Composable,
    keep_from: dt.date,
    batch_rows: int,
) -> int:
    """Delete the matching rows `batch_rows` at a time (by ctid: a TID scan, no key needed), each
    batch committed on its own, so no lock or transaction grows with the table."""
    table = sql.Identifier(schema, name)
    alias = sql.Identifier(name)
    statement = sql.SQL(
        "delete from {table} where ctid = any(array("
        "select ctid from {table} as {alias} where {condition} limit %(batch)s))"
    ).format(table=table, alias=alias, condition=condition)
    removed = 0
    while True:
        done = conn.execute(statement, {"keep_from": keep_from, "batch": batch_rows}).rowcount
        removed += done
        if done < batch_rows:
            return removed


def _partition_key(conn: psycopg.Connection, schema: str, name: str) -> str | None:
    """The partition key of a partitioned table (`RANGE (day)`), or None for a plain table."""
    row = conn.execute(
        "select pg_get_partkeydef(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and c.relkind = 'p'",
        [schema, name],
    ).fetchone()
    return row[0] if row else None


def _leaf_partitions(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[str, str, str]]:
    """(schema, name, bound expression) of each leaf partition of a range-partitioned table."""
    return conn.execute(
        "select n.nspname, c.relname, coalesce(pg_get_expr(c.relpartbound, c.oid), '')"
        " from pg_partition_tree(%s::regclass) t"
        " join pg_class c on c.oid = t.relid join pg_namespace n on n.oid = c.relnamespace"
        " where t.isleaf order by c.relname",
        [f"{schema}.{name}"],
    ).fetchall()


def _upper_bound(bound: str) -> dt.date | None:
    """The exclusive upper bound of a range partition on a date, or None (not such a partition)."""
    match = _BOUND.search(bound)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(2)[:10])
    except ValueError:
        return None
