"""The landing sensor asks for bronze only where files are new or changed; the layers above follow
by declarative automation and stop at a failed blocking check."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from homes import own_home

from assay.orchestration.automation import landing_sensor
from assay.orchestration.definitions import defs


@pytest.fixture
def landing() -> Iterator[Path]:
    with own_home("assay-sensor-") as home:
        yield home / "landing"


def _write(landing: Path, rel: str, text: str) -> None:
    path = landing / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _tick(cursor: str | None):
    with DagsterInstance.ephemeral() as instance:
        return landing_sensor(build_sensor_context(instance=instance, cursor=cursor))


def _requested(result: SensorResult) -> list[tuple[set[str], tuple[str, str] | None]]:
    """Each run request as (bronze sources, partition range or None)."""
    out = []
    for request in result.run_requests:
        window = (
            request.tags.get(ASSET_PARTITION_RANGE_START_TAG),
            request.tags.get(ASSET_PARTITION_RANGE_END_TAG),
        )
        out.append(({key.path[1] for key in request.asset_selection}, window if window[0] else None))
    return out


def test_only_sources_and_days_with_new_or_changed_files_are_requested(landing):
    assert isinstance(_tick(None), SkipReason)  # nothing landed yet
    _write(landing, "transactions/transactions-2025-01-01.jsonl", '{"a": 1}\n')
    _write(landing, "transactions/transactions-2025-01-02.jsonl", '{"a": 2}\n')
    _write(landing, "transactions/transactions-2025-01-05.jsonl", '{"a": 5}\n')
    _write(landing, "vendors/vendors.csv", "vendor_id\nV1\n")
    first = _tick(None)
    # one run per range of consecutive days, one for the unpartitioned sources
    assert _requested(first) == [
        ({"vendors"}, None),
        ({"transactions"}, ("2025-01-01", "2025-01-02")),
        ({"transactions"}, ("2025-01-05", "2025-01-05")),
    ]

    assert isinstance(_tick(first.cursor), SkipReason)  # nothing new since

    _write(landing, "events/events-2025-01-02.csv", "case_id\nT1\n")  # a new source
    changed = landing / "transactions/transactions-2025-01-01.jsonl"  # changed: same size, later mtime
    changed.write_text('{"a": 3}\n')
    stamp = time.time() + 5
    os.utime(changed, (stamp, stamp))
    second = _tick(first.cursor)
    assert _requested(second) == [({"events", "transactions"}, ("2025-01-01", "2025-01-02"))]

    _write(landing, "vendors/notes.txt", "not a landing format")  # ignored, as bronze ignores it
    assert isinstance(_tick(second.cursor), SkipReason)

    # a file without a day belongs to no partition: no run, but a warning (and the cursor moves on)
    _write(landing, "transactions/manual-upload.jsonl", '{"a": 4}\n')
    third = _tick(second.cursor)
    assert third.run_requests == [] and "without a day" in third.skip_reason.skip_message
    assert isinstance(_tick(third.cursor), SkipReason)


DAY = "2025-01-02"


def _day(graph, key: AssetKey) -> str | None:
    return DAY if graph.get(key).partitions_def is not None else None


def _automation_requests(instance: DagsterInstance, cursor=None):
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {key.to_user_string() for key in keys if result.get_num_requested(key)}, result.cursor


def test_layers_follow_bronze_and_stop_at_a_failed_blocking_check():
    graph = defs.resolve_asset_graph()
    assert all(
        graph.get(k).automation_condition is None for k in graph.get_all_asset_keys() if k.path[0] == "bronze"
    )
    with DagsterInstance.ephemeral() as instance:
        for key in graph.get_all_asset_keys():  # everything exists and passed, as after a full run
            # (of one day: the daily assets' other days have no files, so their partitions are missing)
            instance.report_runless_asset_event(AssetMaterialization(key, partition=_day(graph, key)))
        for check in graph.asset_check_keys:
            instance.report_runless_asset_event(
                AssetCheckEvaluation(asset_key=check.asset_key, check_name=check.name, passed=True)
            )
        requested, cursor = _automation_requests(instance)
        assert requested == set()

        # new transactions of one day: what is above them follows, nothing beside them
        bronze = AssetKey(["bronze", "transactions"])
        instance.report_runless_asset_event(AssetMaterialization(bronze, partition=DAY))
        requested, cursor = _automation_requests(instance, cursor)
        above = {
            k.to_user_string()
            for k in graph.get_all_asset_keys()
            if bronze in graph.get_ancestor_asset_keys(k)
        }
        # the day's silver partitions first; gold reads every day, so it follows once silver has landed
        # (a run holds either one day range or unpartitioned assets)
        assert {"silver/int_transactions_checked", "silver/transactions"} <= requested
        assert not requested & {"silver/int_vendors_checked", "silver/categories", "bronze/transactions"}
        assert requested <= above

        # silver transactions updates, but one of its blocking checks fails: gold stays put
        silver = AssetKey(["silver", "transactions"])
        blocking = next(
            c for c in graph.asset_check_keys if c.asset_key == silver and graph.get_check_spec(c).blocking
        )

        def silver_run(passed: bool) -> set[str]:
            instance.report_runless_asset_event(AssetMaterialization(silver, partition=DAY))
            instance.report_runless_asset_event(
                AssetCheckEvaluation(
                    asset_key=silver,
                    check_name=blocking.name,
                    passed=passed,
                    severity=AssetCheckSeverity.ERROR,
                )
            )
            nonlocal cursor
            requested, cursor = _automation_requests(instance, cursor)
            return requested

        assert "gold/monthly_summary" not in silver_run(passed=False)
        assert "gold/monthly_summary" in silver_run(passed=True)
