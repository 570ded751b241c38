"""The one Dagster `Definitions` of assay: bronze -> silver -> gold -> platinum."""

from dagster import Definitions, define_asset_job

from assets.bronze import bronze_assets
from assets.dbt import dbt_models, dbt_resource
from assets.process import process_assets
from orchestration.database import PostgresResource

# The whole graph, in dependency order: what `assay run` executes.
pipeline_job = define_asset_job("pipeline", selection="*", description="Every asset, bronze to platinum.")

defs = Definitions(
    assets=[*bronze_assets, dbt_models, *process_assets],
    jobs=[pipeline_job],
    resources={"postgres": PostgresResource(), "dbt": dbt_resource()},
)
