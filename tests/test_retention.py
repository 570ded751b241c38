"""Retention (`assay retention`, the daily `apply_retention` job) on a real embedded server and real
dbt runs: old bronze days go while the silver rows and rejects made from them stay, every bronze row
that remains is still in silver or rejects exactly once, a rerun of the pipeline neither loads a
removed day again nor loses a silver row, a later silver horizon removes silver's old days with their
rejects, history and audit rows go by age, and a partitioned table loses whole partitions."""

import datetime as dt
import json

import psycopg
import pytest
from click.testing import CliRunner
from homes import own_home, run_bronze_silver, write_landing, write_reference

pytestmark = pytest.mark.integration

DAYS = [dt.date(2025, 6, 1) + dt.timedelta(days=n) for n in range(4)]


def _tx(tx_id: str, day: dt.date, amount: float = 12.5) -> str:
    record = {
        "id": tx_id,
        "employee_id": "E00001",
        "vendor_id": "V0001",
        "amount": amount,
        "currency": "EUR",
        "date": day.isoformat(),
        "description": "taxi to the airport",
        "category": "travel",
    }
    return json.dumps(record)


def _day_lines(n: int, day: dt.date) -> list[str]:
    # two accepted rows, one rejected (non-positive amount), one that does not parse
    return [_tx(f"T{n}a", day), _tx(f"T{n}b", day), _tx(f"T{n}x", day, amount=-1), "{not json"]


def _write_day(home, n: int, extra: list[str] = ()) -> None:
    day = DAYS[n - 1]
    write_landing(home, f"transactions/transactions-{day}.jsonl", _day_lines(n, day) + list(extra))


@pytest.fixture(scope="module")
def home():
    with own_home("assay-retention-") as home:
        write_reference(home)
        for n in (1, 2, 3):
            _write_day(home, n)
        run_bronze_silver()
        yield home


def _per_day(conn: psycopg.Connection, table: str) -> dict[dt.date, int]:
    return dict(conn.execute(f"select partition_date, count(*) from {table} group by 1").fetchall())


def _rejects_by_reason(conn: psycopg.Connection) -> dict[str, int]:
    return dict(
        conn.execute(
            "select reason, count(*) from silver.rejects where source = 'transactions' group by 1"
        ).fetchall()
    )


def _assert_remaining_bronze_accounted(conn: psycopg.Connection) -> None:
    """Every bronze row that remains is in silver or rejects, exactly once."""
    bronze = {r[0] for r in conn.execute("select bronze_id from bronze.transactions")}
    silver = [r[0] for r in conn.execute("select bronze_id from silver.transactions")]
    rejected = [
        r[0] for r in conn.execute("select bronze_id from silver.rejects where source = 'transactions'")
    ]
    assert len(set(silver)) == len(silver) and len(set(rejected)) == len(rejected)
    assert not set(silver) & set(rejected)
    assert bronze <= set(silver) | set(rejected)


def _seed_history(conn: psycopg.Connection) -> None:
    conn.execute(
        "insert into quality.check_results (run_id, asset_key, check_name, passed, severity, evaluated_at)"
        " values ('old', 'silver/x', 'c', true, 'ERROR', now() - interval '400 days'),"
        " ('new', 'silver/x', 'c', true, 'ERROR', now() - interval '10 days')"
    )
    runs = conn.execute(
        "insert into agents.runs (task, input_key, status, backend, model, input_hash, prompt_hash,"
        " model_hash, cache_key, created_at)"
        " select 't', k, 'succeeded', 'b', 'm', 'h', 'h', 'h', 'c', now() - interval '400 days'"
        " from unnest(array['answered', 'superseded']) k returning run_id, input_key"
    ).fetchall()
    answered = next(run_id for run_id, key in runs if key == "answered")
    conn.execute(
        "insert into agents.answers (task, input_key, answer, cache_key, run_id, model, backend)"
        " values ('t', 'answered', '{}', 'c', %s, 'm', 'b')",
        [answered],
    )
    conn.execute(
        "insert into audit.api_access (accessed_at, key_id, method, route) values"
        " (now() - interval '31 days', 'old', 'GET', '/v1/marts'),"
        " (now() - interval '29 days', 'kept', 'GET', '/')"
    )


def test_old_bronze_days_go_and_silver_keeps_what_was_made_from_them(home, monkeypatch):
    from assay.core.database import PostgresResource
    from assay.orchestration.cli import main
    from assay.orchestration.maintenance import apply_retention_job

    postgres = PostgresResource()
    # the bronze horizon falls on the second day: the first day is out of the window
    monkeypatch.setenv("ASSAY_RETENTION_BRONZE_DAYS", str((dt.date.today() - DAYS[1]).days))
    monkeypatch.setenv("ASSAY_RETENTION_HISTORY_DAYS", "365")
    monkeypatch.setenv("ASSAY_AUDIT_RETENTION_DAYS", "30")
    monkeypatch.setenv("ASSAY_RETENTION_BATCH_ROWS", "3")  # several batches per table
    with postgres.connect(autocommit=True) as conn:
        _seed_history(conn)
        bronze_before = _per_day(conn, "bronze.transactions")
        silver_before = _per_day(conn, "silver.transactions")
        rejects_before = _rejects_by_reason(conn)
    assert bronze_before == {day: 4 for day in DAYS[:3]}
    assert silver_before == {day: 2 for day in DAYS[:3]}
    assert rejects_before == {"non_positive_amount": 3, "parse_error": 3}

    dry = CliRunner().invoke(main, ["retention", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "bronze.transactions: would remove 4 rows" in dry.output
    assert "quality.check_results: would remove 1 rows" in dry.output
    assert "agents.runs: would remove 1 rows" in dry.output
    assert "audit.api_access: would remove 1 rows" in dry.output
    assert "(dry run: nothing removed)" in dry.output
    with postgres.connect(autocommit=True) as conn:
        assert _per_day(conn, "bronze.transactions") == bronze_before
        assert conn.execute("select count(*) from quality.retention_horizons").fetchone()[0] == 0

    result = apply_retention_job.execute_in_process(resources={"postgres": postgres})
    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    meta = output.event_specific_data.metadata
    assert meta["dry_run"].value is False
    removed = meta["removed"].value
    assert removed["bronze.transactions"] == 4
    assert removed["silver.transactions"] == removed["silver.rejects"] == 0
    assert (removed["quality.check_results"], removed["agents.runs"], removed["audit.api_access"]) == (
        1,
        1,
        1,
    )
    assert meta["horizons"].value["bronze"] == DAYS[1].isoformat()

    with postgres.connect(autocommit=True) as conn:
        assert _per_day(conn, "bronze.transactions") == {day: 4 for day in DAYS[1:3]}
        assert _per_day(conn, "silver.transactions") == silver_before
        assert _rejects_by_reason(conn) == rejects_before
        _assert_remaining_bronze_accounted(conn)
        assert [r[0] for r in conn.execute("select run_id from quality.check_results")] == ["new"]
        assert [r[0] for r in conn.execute("select input_key from agents.runs")] == ["answered"]
        assert [r[0] for r in conn.execute("select key_id from audit.api_access")] == ["kept"]

    # a new day that repeats an id of the removed day: the pipeline rebuilds every day it knows, and
    # neither loads the removed day again (its file is still in landing) nor loses its silver rows;
    # the repeated id is still a duplicate, against the silver row that stayed
    _write_day(home, 4, extra=[_tx("T1a", DAYS[3])])
    run_bronze_silver()
    with postgres.connect(autocommit=True) as conn:
        assert _per_day(conn, "bronze.transactions") == {DAYS[1]: 4, DAYS[2]: 4, DAYS[3]: 5}
        assert _per_day(conn, "silver.transactions") == {day: 2 for day in DAYS}
        assert _rejects_by_reason(conn) == {"non_positive_amount": 4, "parse_error": 4, "duplicate": 1}
        _assert_remaining_bronze_accounted(conn)


def test_a_later_silver_horizon_removes_silver_days_with_their_rejects(home):
    from assay.core import retention
    from assay.core.database import PostgresResource
    from assay.core.settings import RetentionSettings

    postgres = PostgresResource()
    settings = RetentionSettings(bronze_days=365, silver_years=1, batch_rows=2)
    # a year after the third day: silver and bronze keep from the third day on
    today = DAYS[2].replace(year=DAYS[2].year + 1)
    with postgres.connect(autocommit=True) as conn:
        report = retention.apply(conn, settings=settings, today=today)
        assert report.horizons["silver"] == report.horizons["bronze"] == DAYS[2]
        removed = report.by_table()
        assert removed["silver.transactions"] == 4  # the first two days' accepted rows
        assert removed["silver.int_transactions_checked"] == 8  # and every checked row of them
        assert removed["silver.rejects"] == 4  # the first two days' rejects
        assert removed["bronze.transactions"] == 4  # day 2
        assert _per_day(conn, "silver.transactions") == {DAYS[2]: 2, DAYS[3]: 2}
        _assert_remaining_bronze_accounted(conn)
        assert _rejects_by_reason(conn) == {"non_positive_amount": 2, "parse_error": 2, "duplicate": 1}

    # the pipeline rebuilds the days bronze keeps: the repeat of T1a on day 4 no longer has a silver
    # row to repeat (ids are unique within what silver keeps), so it is accepted now
    run_bronze_silver()
    with postgres.connect(autocommit=True) as conn:
        assert _per_day(conn, "bronze.transactions") == {DAYS[2]: 4, DAYS[3]: 5}
        assert _per_day(conn, "silver.transactions") == {DAYS[2]: 2, DAYS[3]: 3}
        assert _rejects_by_reason(conn) == {"non_positive_amount": 2, "parse_error": 2}
        _assert_remaining_bronze_accounted(conn)
        # horizons only move forward: a run with a longer window later removes nothing more
        longer = RetentionSettings(bronze_days=3000, silver_years=10)
        again = retention.apply(conn, settings=longer, today=today)
        assert again.horizons["bronze"] == DAYS[2] and again.by_table()["silver.transactions"] == 0


def test_a_partitioned_table_loses_whole_partitions(home):
    from assay.core import retention
    from assay.core.database import PostgresResource

    with PostgresResource().connect(autocommit=True) as conn:
        conn.execute(
            "create table bronze.readings (day date not null, n int) partition by range (day);"
            "create table bronze.readings_2025_01 partition of bronze.readings"
            " for values from ('2025-01-01') to ('2025-02-01');"
            "create table bronze.readings_2025_02 partition of bronze.readings"
            " for values from ('2025-02-01') to ('2025-03-01');"
            "insert into bronze.readings"
            " select date '2025-01-01' + (g % 59), g from generate_series(1, 590) g"
        )
        target = retention.Target("bronze", "bronze.readings", "day")
        keep_from = dt.date(2025, 2, 15)
        dry = retention.remove(conn, target, keep_from, batch_rows=7, dry_run=True)
        assert (dry.rows, dry.partitions) == (310 + 140, ("bronze.readings_2025_01",))
        done = retention.remove(conn, target, keep_from, batch_rows=7, dry_run=False)
        assert done == dry
        assert conn.execute("select to_regclass('bronze.readings_2025_01')").fetchone()[0] is None
        assert conn.execute("select min(day), count(*) from bronze.readings").fetchone() == (keep_from, 140)


def test_silver_must_outlive_bronze():
    from pydantic import ValidationError

    from assay.core.settings import RetentionSettings

    with pytest.raises(ValidationError, match="ASSAY_RETENTION_SILVER_YEARS .* shorter than"):
        RetentionSettings(bronze_days=400, silver_years=1)


def test_the_retention_job_runs_daily_after_the_backup():
    from dagster import DefaultScheduleStatus

    from assay.orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("daily_retention")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 2 * * *", "UTC")
    assert schedule.job_name == "apply_retention"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_the_horizons_wait_for_a_silver_rebuild_in_progress():
    """A daily silver model holds the shared lock for its transaction (dbt's `delete_window`):
    retention moves no horizon until it ends, so no rebuild reads a day whose bronze rows go."""
    import threading
    import time

    from assay.core import retention
    from assay.core.database import PostgresResource
    from assay.core.settings import RetentionSettings

    with own_home("assay-retention-lock-"):
        postgres = PostgresResource()
        with postgres.connect() as rebuild, postgres.connect(autocommit=True) as watch:
            rebuild.execute("select pg_advisory_xact_lock_shared(hashtext('assay.retention'))")
            done: list = []

            def run() -> None:
                with postgres.connect(autocommit=True) as conn:
                    done.append(retention.apply(conn, settings=RetentionSettings(), today=DAYS[0]))

            worker = threading.Thread(target=run)
            worker.start()
            waiting = (
                "select count(*) from pg_stat_activity"
                " where wait_event_type = 'Lock' and wait_event = 'advisory'"
            )
            while watch.execute(waiting).fetchone()[0] == 0:  # until retention waits on the lock
                assert worker.is_alive(), "retention did not wait for the rebuild's lock"
                time.sleep(0.05)
            assert watch.execute("select count(*) from quality.retention_horizons").fetchone()[0] == 0
            rebuild.commit()  # the rebuild's transaction ends
            worker.join()
            assert done and done[0].horizons["bronze"] == DAYS[0] - dt.timedelta(days=90)
            assert watch.execute("select count(*) from quality.retention_horizons").fetchone()[0] == 6
