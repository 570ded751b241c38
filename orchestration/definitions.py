"""The one Dagster `Definitions` of assay: bronze -> silver -> gold -> platinum -> agents."""

from dagster import AssetSelection, Definitions, define_asset_job

from agents.assets import GROUP as AGENTS_GROUP
from agents.assets import agent_assets
from assets.bronze import bronze_assets
from assets.dbt import dbt_models, dbt_resource
from orchestration.database import PostgresResource
from orchestration.llm import LLMResource

# What `assay run` executes: every asset except the LLM agents, which run an LLM over every input
# (minutes on a CPU) and so are asked for explicitly (`assay run --agents`, or the UI).
pipeline_job = define_asset_job(
    "pipeline",
    selection=AssetSelection.all() - AssetSelection.groups(AGENTS_GROUP),
    description="Every data asset, bronze to platinum (not the LLM agents).",
)
# The same plus the agents, in one run: an upstream blocking check that fails stops the agents.
pipeline_and_agents_job = define_asset_job(
    "pipeline_and_agents",
    selection=AssetSelection.all(),
    description="Every asset, bronze to platinum, then the LLM agent tasks.",
)

defs = Definitions(
    assets=[*bronze_assets, dbt_models, *agent_assets],
    jobs=[pipeline_job, pipeline_and_agents_job],
    resources={"postgres": PostgresResource(), "dbt": dbt_resource(), "llm": LLMResource()},
)
