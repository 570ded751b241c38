"""The daily quality report: its schedule asks for one run a day, and the run writes the day's report
(table, file, asset metadata) with the figures the pipeline's tables hold, changing no data."""

from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    build_schedule_context,
    validate_run_config,
)

from assay.assets.daily_report import REPORT_KEY, daily_report_schedule
from assay.core.settings import get_settings
from assay.orchestration.definitions import defs

DAY = "2026-11-25"


def _tick(at: datetime) -> RunRequest:
    with DagsterInstance.ephemeral() as instance:
        return daily_report_schedule(build_schedule_context(instance=instance, scheduled_execution_time=at))


def test_the_schedule_asks_for_the_days_report():
    schedule = defs.resolve_schedule_def("daily_quality_report")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 6 * * *", "UTC")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "quality_report"
    job = defs.resolve_job_def("quality_report")
    assert job.asset_layer.selected_asset_keys == {REPORT_KEY}

    request = _tick(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    assert request.run_key == DAY  # a second evaluation of the same tick starts no second run
    validate_run_config(job, request.run_config)
    assert request.run_config["ops"]["quality__daily_report"]["config"]["report_date"] == DAY
    assert _tick(datetime(2026, 11, 26, 6, 0, tzinfo=UTC)).run_key == "2026-11-26"


def test_the_report_is_in_no_pipeline_job():
    for name in ("pipeline", "pipeline_and_agents"):
        assert REPORT_KEY not in defs.resolve_job_def(name).asset_layer.selected_asset_keys


def _count(conn, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def _run_report(day: str):
    job = defs.resolve_job_def("quality_report")
    config = {"ops": {"quality__daily_report": {"config": {"report_date": day}}}}
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=config, instance=instance)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("quality__daily_report")
    return {k: v.value for k, v in materialization.metadata.items()}


def test_the_report_run_writes_the_days_report(pipeline_run, conn):
    untouched = ("quality.dq_scores", "quality.check_results", "silver.rejects", "silver.transactions")
    before = {t: _count(conn, t) for t in untouched}

    metadata = _run_report(DAY)

    # the figures, computed here from the tables the pipeline wrote
    latest = conn.execute(
        "select table_name, overall, passed from (select distinct on (table_name) * from quality.dq_scores"
        " order by table_name, measured_at desc) t"
    ).fetchall()
    failing = conn.execute(
        "select count(*) filter (where severity = 'ERROR'), count(*) from ("
        " select distinct on (asset_key, check_name) * from quality.check_results"
        " order by asset_key, check_name, evaluated_at desc, result_id desc) t"
        " where not passed"
    ).fetchone()
    reasons = conn.execute(
        "select source, reason, count(*) from silver.rejects group by 1, 2 order by 3 desc, 1, 2 limit 10"
    ).fetchall()
    assert latest and reasons  # the small sample has scored tables and rejected rows
    assert metadata["report_date"] == DAY
    assert metadata["tables_scored"] == len(latest)
    assert metadata["tables_below_threshold"] == sum(not passed for _, _, passed in latest)
    assert metadata["lowest_overall_pct"] == round(100 * min(overall for _, overall, _ in latest), 2)
    assert (metadata["failing_blocking_checks"], metadata["failing_checks"]) == failing
    assert metadata["rejected_rows_top_reasons"] == sum(n for *_, n in reasons)

    # the same report in the table, the file and the UI's markdown
    row = conn.execute(
        "select run_id, report, markdown from quality.daily_reports where report_date = %s", [DAY]
    )
    run_id, report, markdown = row.fetchone()
    assert [(r["source"], r["reason"], r["n"]) for r in report["reject_reasons"]] == [
        tuple(r) for r in reasons
    ]
    path = get_settings().home_dir / "reports" / f"quality-{DAY}.md"
    assert path.read_text() == markdown == metadata["report"]
    assert metadata["path"] == str(path)
    for source, reason, n in reasons:
        assert f"| {source} | {reason} | {n:,} |" in markdown
    for table, overall, _ in latest:
        assert f"| {table} | {100 * overall:.2f}% |" in markdown

    # rerun for the same day: replaced, not added; the data is as it was
    _run_report(DAY)
    assert (
        conn.execute("select count(*) from quality.daily_reports where report_date = %s", [DAY]).fetchone()[0]
        == 1
    )
    assert (
        conn.execute("select run_id from quality.daily_reports where report_date = %s", [DAY]).fetchone()[0]
        != run_id
    )
    assert {t: _count(conn, t) for t in untouched} == before


def test_an_unconfigured_run_reports_today(pipeline_run, conn):
    job = defs.resolve_job_def("quality_report")
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success
    today = datetime.now(UTC).date()
    assert conn.execute("select 1 from quality.daily_reports where report_date = %s", [today]).fetchone()
