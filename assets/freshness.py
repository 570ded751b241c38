"""Freshness policies per layer: how old an asset's latest materialisation may get.

assay is a daily batch pipeline: an asset last built more than a day ago is worth a look (WARN) and
one older than two days has missed a run (FAIL). `orchestration/definitions.py` gives every asset the
policy of its layer (its group). The Dagster UI shows each asset's freshness state
once the instance has `freshness: enabled: true` in its `dagster.yaml` (`assay run` and `assay ui`
write that file under `$ASSAY_HOME/dagster`).
"""

from datetime import timedelta

from dagster import FreshnessPolicy

WARN_AFTER = timedelta(hours=24)
FAIL_AFTER = timedelta(hours=48)
LAYERS_WITH_POLICY = ("bronze", "silver", "gold", "platinum")


def freshness_policy(layer: str) -> FreshnessPolicy | None:
    """The policy of every asset in `layer` (None for layers that are not rebuilt on a schedule)."""
    if layer not in LAYERS_WITH_POLICY:
        return None
    return FreshnessPolicy.time_window(fail_window=FAIL_AFTER, warn_window=WARN_AFTER)
