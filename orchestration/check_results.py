"""Every check result of every run reaches `quality.check_results`, through one path.

Asset checks (dbt tests via dagster-dbt, the quality gates, GX suites, drift, the agents' checks)
only yield their results; Dagster writes them to the run's event log. After a run ends, whatever
its outcome, these sensors (in the Dagster daemon: `assay ui`, or a deployment's daemon) copy the
run's check evaluations into the table with `record_run_checks`; `assay run`, which needs no daemon,
calls the same function after its in-process run. Recording a run twice rewrites its rows. Then
the alerts not sent yet go out (quality/alerts.py).
"""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from assay.core.database import PostgresResource
from assay.core.settings import get_settings
from assay.quality.alerts import notify_new
from assay.quality.store import record_run_checks


def _check_results_sensor(status: DagsterRunStatus) -> SensorDefinition:
    word = status.value.lower()

    @run_status_sensor(
        run_status=status,
        name=f"record_check_results_{word}",
        description=f"Copies the check results of every {word} run into quality.check_results.",
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _record(context: RunStatusSensorContext, postgres: PostgresResource) -> None:
        run_id = context.dagster_run.run_id
        recorded = record_run_checks(postgres, context.instance, run_id)
        if recorded:
            context.log.info(f"run {run_id}: {recorded} check results recorded")
        # failed blocking checks (and a failed run, once recorded) notify ASSAY_ALERT_URLS, once each
        with postgres.connect(autocommit=True) as conn:
            for alert in notify_new(conn, get_settings().alert_urls):
                context.log.info(f"alert sent: {alert.title}")

    return _record


check_result_sensors = [
    _check_results_sensor(status)
    for status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
]
