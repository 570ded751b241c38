"""Automation: a sensor starts bronze for the sources whose landing files changed; every later layer
follows by declarative automation once its parents are updated and their blocking checks passed.

Why declarative automation rather than hourly schedules: a layer then runs exactly when there is
something new below it, the UI's Automation tab shows for each asset why it did or did not run, and
a failed blocking check (a dbt test or quality gate) keeps the layers above it where they were.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSpec,
    AutomationCondition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assay.assets.partitions import partition_range_tags
from assay.core.settings import get_settings
from assay.landing.files import (
    PARTITIONED_SOURCES,
    SOURCES,
    file_day,
    first_day,
    landing_files,
    not_loaded_messages,
)

UNDATED = "undated"

# Materialise after any parent updates, never while a parent is missing or running, and never on
# top of a parent whose blocking checks failed. A daily partition follows for any day, not only the
# latest: a file that lands late for an older day updates that day's silver partition too.
_BLOCKING_PASSED = AutomationCondition.all_deps_blocking_checks_passed()
DAILY_CONDITION = (
    AutomationCondition.eager().without(AutomationCondition.in_latest_time_window()) & _BLOCKING_PASSED
).with_label("eager (any day), blocking checks passed")
# An unpartitioned asset above the daily ones (gold, rejects) reads all days: days without files are
# missing partitions by nature, so a missing parent partition does not hold it back.
DOWNSTREAM_CONDITION = (
    AutomationCondition.eager().without(~AutomationCondition.any_deps_missing()) & _BLOCKING_PASSED
).with_label("eager, blocking checks passed")


def with_downstream_automation(spec: AssetSpec) -> AssetSpec:
    """Silver, gold and platinum assets follow their parents; bronze is started by the sensor."""
    if spec.group_name == "bronze" or spec.automation_condition is not None:
        return spec
    condition = DAILY_CONDITION if spec.partitions_def is not None else DOWNSTREAM_CONDITION
    return spec.replace_attributes(automation_condition=condition)


def landing_fingerprints(landing_dir: Path, sources: Iterable[str] = SOURCES) -> dict[str, str]:
    """One digest per unpartitioned source, and per day of a partitioned one (`transactions/2025-03-14`),
    over the files' names, sizes and modification times; `<source>/undated` for files without a day.

    Stat only, no reading: the sensor ticks every 30 s over folders that may hold gigabytes. A file
    touched without a content change starts a run that loads nothing (bronze's ledger skips a
    content hash it already has).
    """
    digests: dict[str, hashlib._Hash] = {}
    for source in sources:
        for path in landing_files(landing_dir, source):
            key = source
            if source in PARTITIONED_SOURCES:
                day = file_day(path)
                key = f"{source}/{day.isoformat() if day and day >= first_day() else UNDATED}"
            stat = path.stat()
            digest = digests.setdefault(key, hashlib.sha256())
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    # 16 hex digits are plenty to notice a change and keep a year of days in a small cursor
    return {key: digest.hexdigest()[:16] for key, digest in digests.items()}


def _day_ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days grouped into (first, last) ranges: one run per range."""
    ranges: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return [(first, last) for first, last in ranges]


@sensor(
    name="landing_files",
    description="Materialises bronze for each source whose files in $ASSAY_HOME/landing/<source>/ are "
    "new or changed since the last tick (transactions and events: the days of those files, one run per "
    "range of consecutive days); silver, gold and platinum follow by declarative automation.",
    asset_selection=[AssetKey(["bronze", source]) for source in SOURCES],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    landing_dir = get_settings().landing_dir
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_fingerprints(landing_dir)
    changed = sorted(key for key, digest in current.items() if seen.get(key) != digest)
    if not changed:
        return SkipReason(f"no new or changed files in {landing_dir}")
    context.log.info(f"new or changed landing files for: {', '.join(changed)}")
    for message in not_loaded_messages(landing_dir, first_day()):
        context.log.warning(message)
    requests = []
    plain = [key for key in changed if "/" not in key]
    if plain:
        requests.append(
            RunRequest(
                asset_selection=[AssetKey(["bronze", source]) for source in plain],
                tags={"assay/trigger": "landing_files", "assay/sources": ",".join(plain)},
            )
        )
    days: dict[str, list[dt.date]] = {}
    for key in changed:
        source, _, day = key.partition("/")
        if day and day != UNDATED:
            days.setdefault(source, []).append(dt.date.fromisoformat(day))
    for first, last in _day_ranges(day for source_days in days.values() for day in source_days):
        sources = sorted(s for s, ds in days.items() if any(first <= d <= last for d in ds))
        requests.append(
            RunRequest(
                asset_selection=[AssetKey(["bronze", source]) for source in sources],
                tags={
                    "assay/trigger": "landing_files",
                    "assay/sources": ",".join(sources),
                    **partition_range_tags(first, last),
                },
            )
        )
    # the cursor moves on even when only undated files changed: warned about once, not every tick
    skip = None if requests else f"only files without a day changed in {landing_dir}: see the log"
    return SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True), skip_reason=skip)
