"""What `assay run` asks of Dagster's instance for a run over a range of days: one planned event
per asset, and SQLite commits at `synchronous=normal` (see README, "A first run")."""

import datetime as dt
import os

import pytest
import sqlalchemy
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DagsterEventType,
    DailyPartitionsDefinition,
    asset,
    materialize,
)

from assay.assets.partitions import partition_range_tags
from assay.orchestration.pipeline import PLANNED_EVENTS_ENV, dagster_instance, plan_ranges_once

DAYS = DailyPartitionsDefinition(start_date="2025-01-01")


@asset(partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run())
def days_seen(context: AssetExecutionContext) -> None:
    context.log.info(f"{len(context.partition_keys)} days")


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSAY_HOME", str(tmp_path))
    monkeypatch.delenv(PLANNED_EVENTS_ENV, raising=False)
    plan_ranges_once()
    with dagster_instance() as instance:
        yield instance
    monkeypatch.delenv(PLANNED_EVENTS_ENV, raising=False)


def test_a_range_of_days_is_planned_once_per_asset_and_materialised_per_day(instance):
    result = materialize(
        [days_seen], instance=instance, tags=partition_range_tags(dt.date(2025, 1, 1), dt.date(2025, 1, 5))
    )
    assert result.success
    planned = instance.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    done = instance.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    assert len(planned) == 1
    assert planned[0].dagster_event.event_specific_data.partitions_subset.get_partition_keys() == [
        f"2025-01-0{d}" for d in range(1, 6)
    ]
    assert sorted(e.dagster_event.partition for e in done) == [f"2025-01-0{d}" for d in range(1, 6)]


def test_an_explicit_setting_wins(monkeypatch):
    monkeypatch.setenv(PLANNED_EVENTS_ENV, "false")
    plan_ranges_once()
    assert os.environ[PLANNED_EVENTS_ENV] == "false"


def test_the_run_history_commits_at_synchronous_normal(instance):
    result = materialize(
        [days_seen], instance=instance, tags=partition_range_tags(dt.date(2025, 1, 1), dt.date(2025, 1, 2))
    )
    with instance.event_log_storage.run_connection(result.run_id) as conn:
        assert conn.execute(sqlalchemy.text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(sqlalchemy.text("pragma synchronous")).scalar() == 1  # normal (full is 2)
