"""Freshness windows per layer come from settings; the Dagster policies follow them."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from assay.assets.freshness import freshness_policy
from assay.core.settings import FreshnessSettings


def test_defaults_are_a_day_to_warn_two_to_fail_for_every_layer():
    settings = FreshnessSettings()
    for layer in ("bronze", "silver", "gold", "platinum"):
        assert settings.window(layer) == (timedelta(hours=24), timedelta(hours=48))


def test_one_layer_overridden_by_environment(monkeypatch):
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_WARN_HOURS", "2")
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_FAIL_HOURS", "6")
    policy = freshness_policy("gold")
    assert policy.fail_window.to_timedelta() == timedelta(hours=6)
    assert policy.warn_window.to_timedelta() == timedelta(hours=2)
    assert freshness_policy("silver").fail_window.to_timedelta() == timedelta(hours=48)
    assert freshness_policy("quality") is None


def test_warn_longer_than_fail_is_refused_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("ASSAY_FRESHNESS_SILVER_WARN_HOURS", "72")
    with pytest.raises(ValidationError, match="ASSAY_FRESHNESS_SILVER_WARN_HOURS"):
        FreshnessSettings()
