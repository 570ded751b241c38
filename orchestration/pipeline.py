"""Run the whole asset graph in-process with live progress, then summarise what landed where.

The run goes into the same Dagster instance as `assay ui` (`$ASSAY_HOME/dagster`), so it shows up
in the UI's run history with all its metadata.
"""

import contextlib
import datetime as dt
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from assay.assets.partitions import partition_range_tags
from assay.core.database import PostgresResource
from assay.core.processes import alive
from assay.core.progress import is_progress
from assay.core.settings import get_settings
from assay.core.text import printable
from assay.landing.bronze import bronze_days
from assay.landing.files import PARTITIONED_SOURCES, file_day, first_day, landing_files
from assay.orchestration.failures import record_failure, step_errors
from assay.quality.store import record_run_checks

LAYERS = ("bronze", "silver", "gold", "platinum", "agents")
_WATCHED = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
}


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    seconds: float
    layer_seconds: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


# Dagster's defaults (runs, events and schedules in SQLite under this folder), plus freshness:
# policies (quality/freshness.py) are only evaluated where the instance enables them.
FRESHNESS_YAML = "freshness:\n  enabled: true\n"
INSTANCE_YAML = "# Dagster instance of assay: local SQLite storage in this folder.\n" + FRESHNESS_YAML


def _sqlite_normal_sync(dbapi_connection, _record) -> None:
    # Dagster's SQLite storage opens a connection per event and, in WAL mode, fsyncs every commit
    # (synchronous=FULL): 5.7 s of a small-sample run's 86 s. NORMAL is SQLite's advice for WAL:
    # the file stays consistent after a power loss, which may only roll back the last commits.
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("pragma synchronous = normal")


def dagster_instance() -> DagsterInstance:
    """The persistent instance shared with `assay ui` (created on first use)."""
    if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "connect", _sqlite_normal_sync):
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _sqlite_normal_sync)
    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    elif "freshness:" not in config.read_text():
        # an instance made before freshness policies existed: turn them on, keep the rest
        with config.open("a") as f:
            f.write("\n" + FRESHNESS_YAML)
    return DagsterInstance.from_config(str(home))


PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def plan_ranges_once() -> None:
    """Dagster's switch for one "planned" event per asset naming the run's range of days, instead of
    one per asset and day (~2,500 on a year: 13 s of a first run's start), unless the environment
    sets it. Dagster's trade: a failed run no longer marks each of its days failed in the UI's
    partition view (the run shows failed; `assay quality` names the cause); `false` keeps the old."""
    os.environ.setdefault(PLANNED_EVENTS_ENV, "true")


LAUNCHED_BY = {"assay/launched_by": "assay run"}
PID_TAG, HOST_TAG = "assay/pid", "assay/host"


def process_tags() -> dict[str, str]:
    """Tags of a run executed in this process: which process on which machine runs it."""
    return {**LAUNCHED_BY, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def fail_orphaned_runs(instance: DagsterInstance, echo: Callable[[str], None] = print) -> list[str]:
    """Mark as failed the runs of `assay run` whose process died without finishing them (kill -9,
    power loss), saying so through `echo`; returns their ids. An in-process run has no daemon watching
    it (Dagster's run monitoring covers runs launched by a run launcher), so the next `assay run` (and
    `assay ui`) does this at its start. Only runs recorded on this machine are judged: another
    machine's processes cannot be seen."""
    active = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=active, tags=LAUNCHED_BY)):
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if pid is None or host != socket.gethostname() or alive(int(pid)):
            continue
        instance.report_run_failed(
            run,
            message=f"The `assay run` process (pid {pid}) ended without finishing this run (killed?); "
            "marked failed at the next `assay run`.",
        )
        failed.append(run.run_id)
        echo(f"Dagster run {run.run_id} was left unfinished by a killed process: marked failed.")
    return failed


def landing_days(landing_dir: Path) -> tuple[dt.date, dt.date] | None:
    """First and last day that landing files of the daily-partitioned sources carry, if any."""
    days = [
        day
        for source in PARTITIONED_SOURCES
        for path in landing_files(landing_dir, source)
        if (day := file_day(path)) is not None and day >= first_day()
    ]
    return (min(days), max(days)) if days else None


def run_days(postgres: PostgresResource | None = None) -> tuple[dt.date, dt.date] | None:
    """The days a whole run covers: every day with landing files or with files in bronze's ledger
    (a retracted or superseded file, or one deleted from landing, changes what its day holds)."""
    postgres = postgres or PostgresResource()
    with postgres.connect() as conn:
        loaded = bronze_days(conn)
    spans = [span for span in (landing_days(get_settings().landing_dir), loaded) if span]
    return (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None


def full_range_tags(postgres: PostgresResource | None = None) -> dict[str, str]:
    """Every partition a whole run covers (`run_days`; the first partition alone when none)."""
    first, last = run_days(postgres) or (first_day(), first_day())
    return partition_range_tags(first, last)


def run_pipeline(
    echo: Callable[[str], None],
    job: str = "pipeline",
    days: tuple[dt.date, dt.date] | None = None,
    asset_selection: Sequence[AssetKey] | None = None,
) -> RunOutcome:
    """Execute the `pipeline` job (or `pipeline_and_agents`); `echo` gets one progress line per asset.
    `asset_selection` narrows the run to those assets of the job (and their checks); unset: all.

    The daily partitions of transactions and events cover `days` (first, last), by default every day
    with landing files, in one run; unpartitioned assets (vendors, employees, gold, ...) run once.
    dbt's own output (which dagster-dbt writes to stdout for the UI's compute logs) goes to
    `$ASSAY_HOME/logs/run-<id>.log` instead of the terminal.
    """
    from assay.orchestration.definitions import defs  # heavy import: only when a run is asked for

    window = partition_range_tags(*days) if days else full_range_tags()
    plan_ranges_once()

    instance = dagster_instance()
    fail_orphaned_runs(instance, echo)
    run_id = str(uuid.uuid4())
    log_path = get_settings().home_dir / "logs" / f"run-{run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    watcher = _ProgressWatcher(instance, run_id, started, echo)
    watcher.start()
    with open(log_path, "w") as log_file, contextlib.redirect_stdout(log_file):
        try:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance,
                run_id=run_id,
                asset_selection=asset_selection,
                raise_on_error=False,
                # Dagster's own console log is for the UI; the CLI prints a progress line per asset.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                tags={**process_tags(), **window},
            )
        finally:
            watcher.stop()
    # what the run-status sensors do for daemon runs: every check result into quality.check_results
    postgres = PostgresResource()
    record_run_checks(postgres, instance, run_id)
    outcome = RunOutcome(
        run_id, result.success, time.perf_counter() - started, watcher.layer_seconds, log_path
    )
    errors = step_errors(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    outcome.failures = [f"{step}: {cause}" for step, cause in errors.items()]
    outcome.failed_checks = watcher.failed_checks
    if not result.success:  # without the daemon no sensor records it: `assay quality` reads this row
        record_failure(postgres, run_id, job, errors, "run failed", {**result.dagster_run.tags})
    return outcome


class _ProgressWatcher(threading.Thread):
    """Prints each materialised asset and failed check as the run's events are stored, and the
    progress lines that long steps log (alignments: variants done of total, ETA)."""

    def __init__(self, instance: DagsterInstance, run_id: str, started: float, echo: Callable[[str], None]):
        super().__init__(daemon=True)
        self.instance, self.run_id, self.started, self.echo = instance, run_id, started, echo
        self.layer_seconds: dict[str, float] = {}
        self.failed_checks: list[str] = []
        # Read on from a cursor: re-reading the whole run every half second cost a small run ~27 s of
        # CPU beside the run itself (a range run stores one materialization per asset and day).
        self._cursor: str | None = None
        self._shown: set[str] = set()  # a range run stores one materialization per partition
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.5):
            self._drain()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        self._drain()

    def _drain(self) -> None:
        """The run's new events (materializations, checks, steps) and the step logs' progress lines
        (plain log messages, not events)."""
        while True:
            try:
                page = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=1000)
            except Exception:  # the run may not be stored yet
                return
            self._cursor = page.cursor
            for record in page.records:
                entry = record.event_log_entry
                if entry.dagster_event is not None:
                    if entry.dagster_event.event_type in _WATCHED:
                        self._show(entry.dagster_event)
                elif is_progress(message := entry.user_message or ""):
                    elapsed = time.perf_counter() - self.started
                    self.echo(f"  [{elapsed:6.1f}s]   {printable(message)}")
            if not page.has_more:
                return

    def _show(self, event) -> None:
        elapsed = time.perf_counter() - self.started
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.step_materialization_data.materialization
            key = mat.asset_key.to_user_string()
            layer = mat.asset_key.path[0]
            self.layer_seconds[layer] = elapsed
            if key in self._shown:
                return
            self._shown.add(key)
            rows = mat.metadata.get("dagster/row_count")
            rows_text = f"{rows.value:>10,} rows" if rows is not None else ""
            self.echo(f"  [{elapsed:6.1f}s] {key:<38} {rows_text}")
            # bronze: files loaded again by name; silver: rows a failed model made the run quarantine
            for name in ("files_superseded", "quarantine_notes"):
                notes = mat.metadata.get(name)
                if notes is not None and notes.value != "none":
                    for note in notes.value.splitlines():
                        self.echo(f"           note: {printable(note.removeprefix('- '))}")
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                severity = evaluation.severity.value if evaluation.severity else "ERROR"
                self.failed_checks.append(f"{name} ({severity}): {evaluation.description or ''}".rstrip(": "))
                self.echo(f"  [{elapsed:6.1f}s] check failed ({severity}): {name}")
        elif event.event_type == DagsterEventType.STEP_START:
            self.echo(f"  [{elapsed:6.1f}s] running {event.step_key}")
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            self.echo(f"  [{elapsed:6.1f}s] FAILED {event.step_key}")


SUMMARY_TABLES = {
    "bronze": ("transactions", "events", "vendors", "employees"),
    "silver": ("transactions", "events", "vendors", "employees", "rejects"),
    "gold": (
        "monthly_summary",
        "category_trends",
        "vendor_spend",
        "vendor_monthly",
        "process_event_log",
        "process_variants",
        "process_conformance",
    ),
    "platinum": ("documents", "embeddings"),
    "agents": ("runs", "answers"),
}


def table_counts(postgres: PostgresResource) -> dict[str, int | None]:
    """Row count per summary table; None where a table does not exist (yet)."""
    counts: dict[str, int | None] = {}
    with postgres.connect(autocommit=True) as conn:
        existing = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "select table_schema, table_name from information_schema.tables where table_schema = any(%s)",
                [list(SUMMARY_TABLES)],
            )
        }
        for schema, tables in SUMMARY_TABLES.items():
            for table in tables:
                name = f"{schema}.{table}"
                # identifiers come from the fixed list above, never from input
                counts[name] = (
                    conn.execute(f"select count(*) from {name}").fetchone()[0] if name in existing else None
                )
    return counts


def reject_reasons(postgres: PostgresResource, limit: int = 10) -> list[tuple[str, str, int]]:
    with postgres.connect(autocommit=True) as conn:
        if not conn.execute("select to_regclass('silver.rejects')").fetchone()[0]:
            return []
        return conn.execute(
            "select source, reason, count(*) from silver.rejects"
            " group by 1, 2 order by 3 desc, 1, 2 limit %s",
            [limit],
        ).fetchall()
