"""Freshness policies per layer: how old an asset's latest materialisation may get.

assay is a daily batch pipeline: by default an asset last built more than a day ago is worth a look
(WARN) and one older than two days has missed a run (FAIL); each layer's window is a setting
(`ASSAY_FRESHNESS_<LAYER>_WARN_HOURS` / `..._FAIL_HOURS`, core/settings.py). `orchestration/definitions.py`
gives every asset the policy of its layer (its group). The Dagster UI shows each asset's freshness state
once the instance has `freshness: enabled: true` in its `dagster.yaml` (`assay run` and `assay ui`
write that file under `$ASSAY_HOME/dagster`).
"""

from dagster import FreshnessPolicy

from assay.core.settings import FRESHNESS_LAYERS, get_settings

LAYERS_WITH_POLICY = FRESHNESS_LAYERS


def freshness_policy(layer: str) -> FreshnessPolicy | None:
    """The policy of every asset in `layer` (None for layers that are not rebuilt on a schedule)."""
    if layer not in LAYERS_WITH_POLICY:
        return None
    warn, fail = get_settings().freshness.window(layer)
    return FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)
