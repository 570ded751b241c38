"""Daily partitions of the dated sources (transactions, events), from bronze through silver.

A landing file of a partitioned source carries its day in its name (`transactions-2025-03-14.jsonl`);
partition D of bronze loads the files of day D, and the daily silver models rebuild the window of
days a run covers (dbt vars `min_date` / `max_date`). A range backfill is one run
(`BackfillPolicy.single_run()`): one bronze pass and one dbt call for the whole range.
"""

import datetime as dt
import re
from pathlib import Path

from dagster import BackfillPolicy, DailyPartitionsDefinition, TimeWindow

from orchestration.settings import get_settings

PARTITIONED_SOURCES = ("transactions", "events")
EXPECTED_NAME = "<name>-YYYY-MM-DD.<csv|jsonl|ndjson|parquet>, e.g. transactions-2025-03-14.jsonl"
_DAY_IN_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?!.*\d{4}-\d{2}-\d{2})")  # the last date in the name

# end_offset=1: today's partition exists, so files landing today load today.
daily_partitions = DailyPartitionsDefinition(
    start_date=get_settings().partitions_start.isoformat(), end_offset=1
)
single_run = BackfillPolicy.single_run()


def file_day(path: Path) -> dt.date | None:
    """The day in a landing file's name, or None when it has no (valid) date."""
    match = _DAY_IN_NAME.search(path.name)
    if not match:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:  # 2025-02-30
        return None


def window_days(window: TimeWindow) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a run's partition window (its end is exclusive)."""
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def first_day() -> dt.date:
    return get_settings().partitions_start
