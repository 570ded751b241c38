"""The daily quality report: what `assay quality` shows, written once a day by a schedule.

The schedule `daily_quality_report` (06:00 UTC) runs the job `quality_report`, which materialises
`quality/daily_report`: the latest DQ scores, failing checks and top reject reasons, kept as
- a row of `quality.daily_reports` (one per day: JSON and markdown; a rerun replaces the day's),
- a file `$ASSAY_HOME/reports/quality-<day>.md`,
- the asset's metadata (the markdown and the headline counts), so the UI shows it beside the runs.

It only reads the data (`quality.*` and `silver.rejects`); it is not part of `assay run`: the
transforms follow new data, the report follows the calendar.
"""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    DefaultScheduleStatus,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RunConfig,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from assay.core.database import PostgresResource
from assay.core.settings import get_settings
from assay.quality.report import QualityReport, build_report, render_markdown

GROUP = "quality"
REPORT_KEY = AssetKey([GROUP, "daily_report"])
CRON = "0 6 * * *"  # after a night's loads, before the working day


class ReportConfig(Config):
    report_date: str | None = None
    """The day the report is for (ISO date; the schedule passes its tick's day). Unset: today, UTC."""
    reasons: int = 10
    """How many reject reasons to list."""


@asset(
    key=REPORT_KEY,
    group_name=GROUP,
    description="The daily quality report: latest DQ scores per table, failing checks and top reject "
    "reasons, written to quality.daily_reports and $ASSAY_HOME/reports/quality-<day>.md.",
    kinds={"postgres", "markdown"},
    # scheduled once a day: a report older than a day and a bit means a missed tick
    freshness_policy=FreshnessPolicy.time_window(
        fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
    ),
)
def daily_report(
    context: AssetExecutionContext, config: ReportConfig, postgres: PostgresResource
) -> MaterializeResult:
    day = date.fromisoformat(config.report_date) if config.report_date else datetime.now(UTC).date()
    with postgres.connect(autocommit=True) as conn:
        report = build_report(conn, reasons=config.reasons, examples=1)
        markdown = render_markdown(report, f"assay quality report, {day}")
        conn.execute(
            """
            insert into quality.daily_reports (report_date, run_id, report, markdown) values (%s, %s, %s, %s)
            on conflict (report_date) do update set run_id = excluded.run_id, report = excluded.report,
                markdown = excluded.markdown, created_at = now()
            """,
            [day, context.run_id, json.dumps(dataclasses.asdict(report), default=str), markdown],
        )
    path = get_settings().home_dir / "reports" / f"quality-{day}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown)
    context.log.info(f"quality report for {day}: {path}")
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(markdown),
            "path": MetadataValue.path(str(path)),
            **headline(report, day),
        }
    )


def headline(report: QualityReport, day: date) -> dict:
    """The counts a reader looks at first (numbers, so the UI can chart them day by day)."""
    overall = [s["overall"] for s in report.scores]
    return {
        "report_date": day.isoformat(),
        "tables_scored": len(report.scores),
        "tables_below_threshold": sum(not s["passed"] for s in report.scores),
        "lowest_overall_pct": round(100 * min(overall), 2) if overall else None,
        "failing_checks": len(report.failing_checks),
        "failing_blocking_checks": sum(c["severity"] == "ERROR" for c in report.failing_checks),
        "rejected_rows_top_reasons": sum(r["n"] for r in report.reject_reasons),
        "quarantined_rows_open": len(report.quarantined),
    }


quality_report_job = define_asset_job(
    "quality_report",
    selection=[REPORT_KEY],
    description="Write the day's quality report (quality.daily_reports, $ASSAY_HOME/reports/).",
)


@schedule(
    name="daily_quality_report",
    job=quality_report_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: that day's quality report (reads only; quality/daily_report.py).",
)
def daily_report_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    day = context.scheduled_execution_time.astimezone(UTC).date().isoformat()
    return RunRequest(
        run_key=day,  # one report run per day, however often the tick is evaluated
        run_config=RunConfig(ops={daily_report.op.name: ReportConfig(report_date=day)}),
        tags={"assay/trigger": "daily_quality_report", "assay/report_date": day},
    )
