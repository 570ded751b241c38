"""The deployment files in `deploy/` load through Dagster's own config code.

With `--external-postgres` it is instantiated against that server and stores a real run there.
"""

import shutil
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterInstance, asset, materialize, validate_run_config
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import configurable_class_data
from dagster._serdes.config_class import class_from_code_pointer
from psycopg.conninfo import conninfo_to_dict

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    params = conninfo_to_dict(url)
    for name, key in (("HOST", "host"), ("PORT", "port"), ("DB", "dbname"), ("USER", "user")):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", str(params[key]))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", params.get("password", ""))


def test_production_instance_config_validates(monkeypatch):
    _point_at(monkeypatch, "host=db.example.org port=5432 dbname=dagster user=assay_owner password=x")
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    assert set(config["storage"]["postgres"]["postgres_db"]) >= {"hostname", "db_name", "password"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["freshness"] == {"enabled": True}


def test_production_instance_keeps_runs_and_events_in_postgres(external_postgres, monkeypatch, tmp_path):
    if external_postgres is None:
        pytest.skip("needs --external-postgres (make test runs it)")
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    url = external_postgres.create_database("dagster", vector=False)
    _point_at(monkeypatch, url)

    @asset
    def hello() -> int:
        return 1

    # as deployed: the file alone in DAGSTER_HOME (compute logs and artifacts are written beside it)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        result = materialize([hello], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(hello.key) is not None
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from runs where run_id = %s", [result.run_id]).fetchone()[0] == 1


def _configurable(entry: dict):
    """Dagster's own path from a `module`/`class`/`config` entry to a validated config, short of
    instantiating the class (a K8sRunLauncher would look for a cluster)."""
    data = configurable_class_data(entry)
    cls = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(cls.config_type(), data.config_dict)
    assert result.success, result.errors
    return cls


def test_kubernetes_instance_validates(monkeypatch):
    pytest.importorskip("dagster_k8s", reason='the "deploy" extra (dagster-k8s) is not installed')
    _point_at(monkeypatch, "host=db port=5432 dbname=dagster user=assay_owner password=x")
    monkeypatch.setenv("ASSAY_IMAGE", "registry.example.com/assay:0.1.0")
    config, _ = dagster_instance_config(str(DEPLOY / "k8s"))
    assert _configurable(config["run_launcher"]).__name__ == "K8sRunLauncher"
    assert _configurable(config["run_coordinator"]).__name__ == "QueuedRunCoordinator"


def test_celery_run_config_validates_against_the_pipeline(monkeypatch):
    pytest.importorskip("dagster_celery", reason='the "deploy" extra (dagster-celery) is not installed')
    from orchestration.definitions import defs

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://localhost:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://localhost:6379/1")
    job = defs.resolve_job_def("pipeline_celery")
    assert job.executor_def.name == "celery"
    run_config = yaml.safe_load((DEPLOY / "celery" / "run_config.yaml").read_text())
    validate_run_config(job, run_config)
    with pytest.raises(Exception, match="broker"):
        validate_run_config(job, {"execution": {"config": {"broker": 42}}})
