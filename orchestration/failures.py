"""Failed runs are recorded in `quality.run_failures` and logged, whoever started them.

The sensor runs in the Dagster daemon (`assay ui`, or a deployment's daemon) after any run of this
code location fails: sensor- and automation-started runs included, which nobody watches live.
`assay run` executes in-process without the daemon, so it records its own failure through the same
function (`record_failure`).
"""

import re

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from psycopg.types.json import Jsonb

from assay.core.database import PostgresResource
from assay.core.settings import get_settings
from assay.core.text import printable
from assay.quality.alerts import notify_new

DBT_ERRORS = "Errors parsed from dbt logs:"


def root_cause(error) -> str:
    """What made a step fail, whole: dbt's own error report (model, database error, where the
    compiled SQL is) when dbt failed, else the innermost exception of the chain with its type.
    Control characters (from data, or terminal colours) are shown escaped, never sent raw."""
    if error is None:
        return "unknown error"
    chain = [error]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    dbt = next((e.message for e in chain if DBT_ERRORS in e.message), None)
    if dbt is not None:
        text = dbt.split(DBT_ERRORS, 1)[1].strip()
    else:
        innermost = chain[-1]
        text = innermost.message.strip()
        if innermost.cls_name and not text.startswith(f"{innermost.cls_name}:"):
            text = f"{innermost.cls_name}: {text}"  # Dagster's message usually names the type already
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # dbt's colours
    return printable(text)


def step_errors(step_failure_events) -> dict[str, str]:
    """Step key -> root cause, for a run's STEP_FAILURE events."""
    return {
        event.step_key or "?": root_cause(event.step_failure_data.error if event.step_failure_data else None)
        for event in step_failure_events
    }


def record_failure(
    postgres: PostgresResource, run_id: str, job_name: str, errors: dict[str, str], message: str, tags: dict
) -> None:
    """Keep one row per failed run (a later record of the same run replaces it)."""
    with postgres.connect(autocommit=True) as conn:
        conn.execute(
            """insert into quality.run_failures (run_id, job_name, failed_steps, message, errors, tags)
               values (%(run_id)s, %(job_name)s, %(failed_steps)s, %(message)s, %(errors)s, %(tags)s)
               on conflict (run_id) do update set failed_at = now(), failed_steps = excluded.failed_steps,
                   message = excluded.message, errors = excluded.errors, tags = excluded.tags""",
            {
                "run_id": run_id,
                "job_name": job_name,
                "failed_steps": sorted(errors),
                "message": message,
                "errors": Jsonb(errors),
                "tags": Jsonb(tags),
            },
        )


@run_failure_sensor(
    name="record_run_failures",
    description="Records every failed run (steps and the root cause of each) in quality.run_failures.",
    default_status=DefaultSensorStatus.RUNNING,
)
def record_run_failures(context: RunFailureSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    errors = step_errors(context.get_step_failure_events())
    steps = (
        ", ".join(f"{step}: {error.splitlines()[0]}" for step, error in errors.items()) or "no step failed"
    )
    context.log.error(f"run {run.run_id} of job {run.job_name} failed - {steps}")
    message = context.failure_event.message or "run failed"
    record_failure(postgres, run.run_id, run.job_name, errors, message, dict(run.tags))
    # one alert per failed run (quality.alerts_sent), naming each step's cause and the command after
    with postgres.connect(autocommit=True) as conn:
        for alert in notify_new(conn, get_settings().alert_urls):
            context.log.info(f"alert sent: {alert.title}")


@sensor(
    name="send_alerts",
    description="Sends alerts not sent yet, stale layers included (ASSAY_ALERT_URLS), every 10 minutes.",
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.RUNNING,
)
def send_alerts(context: SensorEvaluationContext, postgres: PostgresResource) -> SkipReason:
    # Staleness has no run to hang on (no run is the problem), so it is looked for on a timer.
    with postgres.connect(autocommit=True) as conn:
        sent = notify_new(conn, get_settings().alert_urls)
    return SkipReason(f"{len(sent)} alert(s) sent" if sent else "nothing new to alert")
