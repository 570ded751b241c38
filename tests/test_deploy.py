"""The production Dagster instance (`deploy/dagster.yaml`) loads through Dagster's own config code.

With `--external-postgres` it is instantiated against that server and stores a real run there.
"""

import shutil
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, asset, materialize
from dagster._core.instance.config import dagster_instance_config
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
