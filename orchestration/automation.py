"""Automation: a sensor starts bronze for the sources whose landing files changed; every later layer
follows by declarative automation once its parents are updated and their blocking checks passed.

Why declarative automation rather than hourly schedules: a layer then runs exactly when there is
something new below it, the UI's Automation tab shows for each asset why it did or did not run, and
a failed blocking check (a dbt test or quality gate) keeps the layers above it where they were.
"""

from __future__ import annotations

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

from assets.bronze import SOURCES, landing_files
from orchestration.settings import get_settings

# Materialise after any parent updates, never while a parent is missing or running, and never on
# top of a parent whose blocking checks failed.
DOWNSTREAM_CONDITION = (
    AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, blocking checks passed")


def with_downstream_automation(spec: AssetSpec) -> AssetSpec:
    """Silver, gold and platinum assets follow their parents; bronze is started by the sensor."""
    if spec.group_name == "bronze" or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=DOWNSTREAM_CONDITION)


def landing_fingerprints(landing_dir: Path, sources: Iterable[str] = SOURCES) -> dict[str, str]:
    """One digest per source over its files' names, sizes and modification times.

    Stat only, no reading: the sensor ticks every 30 s over folders that may hold gigabytes. A file
    touched without a content change starts a run that loads nothing (bronze's ledger skips a
    content hash it already has).
    """
    prints: dict[str, str] = {}
    for source in sources:
        files = landing_files(landing_dir, source)
        if not files:
            continue
        digest = hashlib.sha256()
        for path in files:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        prints[source] = digest.hexdigest()
    return prints


@sensor(
    name="landing_files",
    description="Materialises bronze for each source whose files in $ASSAY_HOME/landing/<source>/ are "
    "new or changed since the last tick; silver, gold and platinum follow by declarative automation.",
    asset_selection=[AssetKey(["bronze", source]) for source in SOURCES],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    landing_dir = get_settings().landing_dir
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = landing_fingerprints(landing_dir)
    changed = sorted(source for source, digest in current.items() if seen.get(source) != digest)
    if not changed:
        return SkipReason(f"no new or changed files in {landing_dir}")
    context.log.info(f"new or changed landing files for: {', '.join(changed)}")
    request = RunRequest(
        asset_selection=[AssetKey(["bronze", source]) for source in changed],
        tags={"assay/trigger": "landing_files", "assay/sources": ",".join(changed)},
    )
    return SensorResult(run_requests=[request], cursor=json.dumps(current, sort_keys=True))
