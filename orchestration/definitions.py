"""The one Dagster `Definitions` of assay: bronze -> silver -> gold -> platinum -> agents, gated."""

import importlib.util

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Definitions,
    apply_freshness_policy,
    define_asset_job,
)

from assay.agents.backends import LLMResource
from assay.assets.agents import GROUP as AGENTS_GROUP
from assay.assets.agents import agent_assets
from assay.assets.bronze import bronze_assets
from assay.assets.daily_report import GROUP as REPORT_GROUP
from assay.assets.daily_report import daily_report, daily_report_schedule, quality_report_job
from assay.assets.dbt import dbt_models, dbt_resource
from assay.assets.embeddings import embedding_checks, embeddings
from assay.assets.freshness import freshness_policy
from assay.assets.process import process_assets
from assay.assets.quality import quality_checks
from assay.core.database import PostgresResource
from assay.core.models import EmbeddingModelResource
from assay.orchestration.automation import landing_sensor, with_downstream_automation
from assay.orchestration.check_results import check_result_sensors
from assay.orchestration.failures import record_run_failures, send_alerts
from assay.orchestration.maintenance import (
    apply_retention_job,
    backup_database_job,
    backup_schedule,
    retention_schedule,
    retract_file_job,
)

# The daily quality report follows the calendar (its schedule), not the data: in no pipeline job.
_DATA = AssetSelection.all() - AssetSelection.groups(REPORT_GROUP)
# What `assay run` executes: every asset except the LLM agents, which run an LLM over every input
# (minutes on a CPU) and so are asked for explicitly (`assay run --agents`, or the UI).
pipeline_job = define_asset_job(
    "pipeline",
    selection=_DATA - AssetSelection.groups(AGENTS_GROUP),
    description="Every data asset, bronze to platinum (not the LLM agents).",
)
# The same plus the agents, in one run: an upstream blocking check that fails stops the agents.
pipeline_and_agents_job = define_asset_job(
    "pipeline_and_agents",
    selection=_DATA,
    description="Every asset, bronze to platinum, then the LLM agent tasks.",
)


def _scale_out_jobs() -> list:
    """`pipeline_celery`: the same graph, each step a task on Celery workers (deploy/celery/), where
    the `deploy` extra (dagster-celery) is installed."""
    if importlib.util.find_spec("dagster_celery") is None:
        return []
    from dagster_celery import celery_executor

    description = "Every asset, each step a Celery task (run config: deploy/celery/run_config.yaml)."
    return [
        define_asset_job(
            "pipeline_celery", selection=_DATA, executor_def=celery_executor, description=description
        )
    ]


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
    # The agents get no eager automation: an LLM pass is started on purpose, not by every new file.
    assets=[
        *_with_policies([*bronze_assets, *dbt_models, *process_assets, embeddings]),
        *agent_assets,
        daily_report,
    ],
    asset_checks=[*quality_checks, *embedding_checks],
    jobs=[
        pipeline_job,
        pipeline_and_agents_job,
        *_scale_out_jobs(),
        quality_report_job,
        retract_file_job,
        backup_database_job,
        apply_retention_job,
    ],
    schedules=[daily_report_schedule, backup_schedule, retention_schedule],
    sensors=[landing_sensor, record_run_failures, send_alerts, *check_result_sensors],
    resources={
        "postgres": PostgresResource(),
        "dbt": dbt_resource(),
        "embedding_model": EmbeddingModelResource(),
        "llm": LLMResource(),
    },
)
