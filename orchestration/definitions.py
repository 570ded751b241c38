"""The one Dagster `Definitions` of assay: bronze -> silver -> gold -> platinum, with quality gates."""

from dagster import AssetsDefinition, AssetSpec, Definitions, apply_freshness_policy, define_asset_job

from assets.bronze import bronze_assets
from assets.dbt import dbt_models, dbt_resource
from assets.process import process_assets
from orchestration.automation import landing_sensor, with_downstream_automation
from orchestration.database import PostgresResource
from quality.checks import quality_checks
from quality.freshness import freshness_policy

# The whole graph, in dependency order: what `assay run` executes.
pipeline_job = define_asset_job("pipeline", selection="*", description="Every asset, bronze to platinum.")


def _layer_freshness(spec: AssetSpec) -> AssetSpec:
    """Every asset gets its layer's freshness policy (the group is the layer), unless it has one."""
    policy = freshness_policy(spec.group_name or "")
    return apply_freshness_policy(spec, policy, overwrite_existing=False) if policy else spec


def _layer_policies(spec: AssetSpec) -> AssetSpec:
    return with_downstream_automation(_layer_freshness(spec))


def _with_policies(assets: list[AssetsDefinition]) -> list[AssetsDefinition]:
    """Freshness per layer; automation above bronze (orchestration/automation.py)."""
    return [a.map_asset_specs(_layer_policies) for a in assets]


defs = Definitions(
    assets=_with_policies([*bronze_assets, *dbt_models, *process_assets]),
    asset_checks=quality_checks,
    jobs=[pipeline_job],
    sensors=[landing_sensor],
    resources={"postgres": PostgresResource(), "dbt": dbt_resource()},
)
