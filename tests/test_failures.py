"""Transient database errors are retried with backoff, others are not; failed runs are recorded, and
so are the check results of every run, whatever its outcome."""

import psycopg
import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    asset,
    build_run_status_sensor_context,
    define_asset_job,
    materialize,
    multi_asset,
)

from assay.core import retries
from assay.core.database import DatabaseError
from assay.core.retries import is_transient, retry_transient
from assay.orchestration.check_results import check_result_sensors
from assay.orchestration.failures import record_run_failures


@pytest.fixture
def no_wait(monkeypatch):
    monkeypatch.setattr(retries, "BASE_SECONDS", 0.01)


def test_transient_errors_are_retried_and_others_fail_at_once(no_wait):
    calls = {"flaky": 0, "generator": 0, "broken": 0}

    @asset
    @retry_transient
    def flaky(context: AssetExecutionContext) -> MaterializeResult:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return MaterializeResult()

    class Knob(Config):
        n: int = 1

    @multi_asset(specs=[AssetSpec("mined")])
    @retry_transient
    def generator(context: AssetExecutionContext, config: Knob):
        calls["generator"] += 1
        if calls["generator"] < 2:
            raise DatabaseError("cannot connect") from psycopg.errors.DeadlockDetected("deadlock")
        yield MaterializeResult(asset_key="mined")

    @asset
    @retry_transient
    def broken(context: AssetExecutionContext):
        calls["broken"] += 1
        raise ValueError("a bad file is not transient")

    assert materialize([flaky, generator]).success
    assert calls == {"flaky": 3, "generator": 2, "broken": 0}
    assert not materialize([broken], raise_on_error=False).success
    assert calls["broken"] == 1


def test_backoff_grows_exponentially():
    assert is_transient(psycopg.errors.SerializationFailure()) and not is_transient(ValueError())
    for attempt, base in enumerate((2, 4, 8)):
        assert 0.75 * base <= retries.backoff_seconds(attempt) <= 1.25 * base


def test_a_failed_run_is_recorded_in_quality_run_failures(postgres, conn):
    @asset
    def explodes():
        raise RuntimeError("landing folder unreadable\nsecond line")

    job = define_asset_job("nightly", selection=[explodes.key])
    instance = DagsterInstance.ephemeral()
    result = (
        Definitions(assets=[explodes], jobs=[job])
        .resolve_job_def("nightly")
        .execute_in_process(instance=instance, raise_on_error=False, tags={"assay/trigger": "test"})
    )
    assert not result.success
    context = build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"postgres": postgres},
    ).for_run_failure()
    record_run_failures(context)
    row = conn.execute(
        "select job_name, failed_steps, errors, tags->>'assay/trigger' from quality.run_failures "
        "where run_id = %s",
        [result.run_id],
    ).fetchone()
    assert row[0] == "nightly" and row[1] == ["explodes"] and row[3] == "test"
    # the whole root cause, as `assay run` prints it
    assert row[2]["explodes"] == "RuntimeError: landing folder unreadable\nsecond line"


def test_the_check_result_sensors_record_each_check_of_a_run_once(postgres, conn):
    """A succeeded and a failed run, each with a check: the sensor of each outcome records the run's
    check results, and a second tick over the same run rewrites them instead of adding rows."""
    sensors = {s.name: s for s in check_result_sensors}

    @asset(check_specs=[AssetCheckSpec("has_rows", asset="counted")])
    def counted():
        return MaterializeResult(check_results=[AssetCheckResult(passed=True, metadata={"rows": 3})])

    @asset(check_specs=[AssetCheckSpec("has_rows", asset="broken_count")])
    def broken_count(context: AssetExecutionContext):
        yield MaterializeResult(check_results=[AssetCheckResult(passed=False, description="no rows")])
        raise RuntimeError("after the check")

    instance = DagsterInstance.ephemeral()
    ok = materialize([counted], instance=instance)
    failed = materialize([broken_count], instance=instance, raise_on_error=False)
    assert ok.success and not failed.success
    for _ in range(2):
        sensors["record_check_results_success"](
            build_run_status_sensor_context(
                sensor_name="record_check_results_success",
                dagster_instance=instance,
                dagster_run=ok.dagster_run,
                dagster_event=ok.get_run_success_event(),
                resources={"postgres": postgres},
            )
        )
        sensors["record_check_results_failure"](
            build_run_status_sensor_context(
                sensor_name="record_check_results_failure",
                dagster_instance=instance,
                dagster_run=failed.dagster_run,
                dagster_event=failed.get_run_failure_event(),
                resources={"postgres": postgres},
            ).for_run_failure()
        )
    rows = conn.execute(
        "select run_id, asset_key, check_name, passed, severity, description, metadata"
        " from quality.check_results where run_id = any(%s) order by passed",
        [[ok.run_id, failed.run_id]],
    ).fetchall()
    conn.execute("delete from quality.check_results where run_id = any(%s)", [[ok.run_id, failed.run_id]])
    assert rows == [
        (failed.run_id, "broken_count", "has_rows", False, "ERROR", "no rows", {}),
        (ok.run_id, "counted", "has_rows", True, "ERROR", None, {"rows": 3}),
    ]
