"""Failed runs are recorded in `quality.run_failures` and logged, whoever started them.

The sensor runs in the Dagster daemon (`assay ui`, or a deployment's daemon) after any run of this
code location fails: sensor- and automation-started runs included, which nobody watches live.
"""

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor
from psycopg.types.json import Jsonb

from assay.core.database import PostgresResource


def failure_record(context: RunFailureSensorContext) -> dict:
    """What is worth keeping about a failed run: which steps failed and why, in one row."""
    run = context.dagster_run
    errors: dict[str, str] = {}
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:  # Dagster's wrapper -> the user's error
            error = error.cause
        text = error.message.strip().splitlines()[0] if error and error.message.strip() else "unknown error"
        errors[event.step_key or "?"] = text
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "failed_steps": sorted(errors),
        "message": context.failure_event.message or "run failed",
        "errors": errors,
        "tags": dict(run.tags),
    }


@run_failure_sensor(
    name="record_run_failures",
    description="Records every failed run (steps and first error line) in quality.run_failures.",
    default_status=DefaultSensorStatus.RUNNING,
)
def record_run_failures(context: RunFailureSensorContext, postgres: PostgresResource) -> None:
    record = failure_record(context)
    steps = ", ".join(f"{step}: {error}" for step, error in record["errors"].items()) or "no step failed"
    context.log.error(f"run {record['run_id']} of job {record['job_name']} failed - {steps}")
    with postgres.connect(autocommit=True) as conn:
        conn.execute(
            """insert into quality.run_failures (run_id, job_name, failed_steps, message, errors, tags)
               values (%(run_id)s, %(job_name)s, %(failed_steps)s, %(message)s, %(errors)s, %(tags)s)
               on conflict (run_id) do update set failed_at = now(), failed_steps = excluded.failed_steps,
                   message = excluded.message, errors = excluded.errors, tags = excluded.tags""",
            {**record, "errors": Jsonb(record["errors"]), "tags": Jsonb(record["tags"])},
        )
