"""Daily partitions of the dated sources (transactions, events), from bronze through silver.

A landing file of a partitioned source carries its day in its name (`transactions-2025-03-14.jsonl`);
partition D of bronze loads the files of day D, and the daily silver models rebuild the window of
days a run covers (ASSAY_MIN_DATE / ASSAY_MAX_DATE in dbt's environment). A range backfill is one run
(`BackfillPolicy.single_run()`): one bronze pass and one dbt call for the whole range.
"""

import datetime as dt
from collections.abc import Mapping

from dagster import BackfillPolicy, DailyPartitionsDefinition, TimeWindow

from assay.landing.files import first_day

# Dagster's documented run tags for a run over a range of partitions (a single-run backfill).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"  # a run of one partition

# end_offset=1: today's partition exists, so files landing today load today.
daily_partitions = DailyPartitionsDefinition(start_date=first_day().isoformat(), end_offset=1)
single_run = BackfillPolicy.single_run()


def window_days(window: TimeWindow) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a run's partition window (its end is exclusive)."""
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def partition_range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """Run tags that make one run cover the daily partitions first..last (a single-run backfill)."""
    return {PARTITION_RANGE_START_TAG: first.isoformat(), PARTITION_RANGE_END_TAG: last.isoformat()}


def run_window(tags: Mapping[str, str]) -> tuple[dt.date, dt.date] | None:
    """The days (first, last) a run's tags give its daily partitions, or None for a run without them
    (the window the daily dbt models of the same run rebuild)."""
    if PARTITION_RANGE_START_TAG in tags and PARTITION_RANGE_END_TAG in tags:
        return (
            dt.date.fromisoformat(tags[PARTITION_RANGE_START_TAG]),
            dt.date.fromisoformat(tags[PARTITION_RANGE_END_TAG]),
        )
    if PARTITION_TAG in tags:
        day = dt.date.fromisoformat(tags[PARTITION_TAG])
        return day, day
    return None
