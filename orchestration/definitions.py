"""The one Dagster `Definitions` of assay: bronze -> silver -> gold -> platinum, with quality gates."""

from dagster import AssetsDefinition, AssetSpec, Definitions, apply_freshness_policy, define_asset_job

from assets.bronze import bronze_assets
from assets.dbt import dbt_models, dbt_resource
from assets.embeddings import embedding_checks, embeddings
from assets.process import process_assets
from orchestration.database import PostgresResource
from orchestration.models import EmbeddingModelResource
from quality.checks import quality_checks
from quality.freshness import freshness_policy

# The whole graph, in dependency order: what `assay run` executes.
pipeline_job = define_asset_job("pipeline", selection="*", description="Every asset, bronze to platinum.")


def _layer_freshness(spec: AssetSpec) -> AssetSpec:
    """Every asset gets its layer's freshness policy (the group is the layer), unless it has one."""
    policy = freshness_policy(spec.group_name or "")
    return apply_freshness_policy(spec, policy, overwrite_existing=False) if policy else spec


def _with_freshness(assets: list[AssetsDefinition]) -> list[AssetsDefinition]:
    return [a.map_asset_specs(_layer_freshness) for a in assets]


defs = Definitions(
    assets=_with_freshness([*bronze_assets, *dbt_models, *process_assets, embeddings]),
    asset_checks=[*quality_checks, *embedding_checks],
    jobs=[pipeline_job],
    resources={
        "postgres": PostgresResource(),
        "dbt": dbt_resource(),
        "embedding_model": EmbeddingModelResource(),
    },
)
