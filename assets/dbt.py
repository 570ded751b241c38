"""The dbt project as Dagster assets: silver, gold and platinum models, seeds, and their tests.

Asset keys are `[layer, model]` and groups are the layer (the model's folder), never the physical
schema, so keys do not change between environments. dbt tests arrive as asset checks.
"""

import os
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MetadataValue, Output
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from assets.dbt_project import DBT_PROJECT_DIR, dbt_executable, dbt_project
from orchestration.database import PostgresResource

LAYERS = ("silver", "gold", "platinum")

if not dbt_project.manifest_path.exists():
    raise FileNotFoundError(
        f"dbt manifest missing at {dbt_project.manifest_path}: run `make setup` "
        "(it runs `dagster-dbt project prepare-and-package --file assets/dbt_project.py`)"
    )


class AssayTranslator(DagsterDbtTranslator):
    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = self.get_resource_props(manifest, unique_id)
        if node["resource_type"] == "source":
            return spec  # the key comes from meta.dagster.asset_key: the bronze asset itself
        layer = _layer(node)
        return spec.replace_attributes(
            key=AssetKey([layer, node["name"]]), group_name=layer
        ).merge_attributes(kinds={"postgres"})


def _layer(node: Mapping[str, Any]) -> str:
    # fqn is [project, folder, ..., name]; seeds live beside silver, which validates against them.
    folder = node["fqn"][1] if len(node["fqn"]) > 2 else ""
    return folder if folder in LAYERS else "silver"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=AssayTranslator(
        settings=DagsterDbtTranslatorSettings(enable_code_references=False)
    ),
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> Iterator:
    # dbt inherits this process's environment; profiles.yml reads the connection from it.
    os.environ.update(postgres.dbt_env())
    for event in dbt.cli(["build"], context=context).stream().fetch_row_counts():
        if isinstance(event, Output) and context.asset_key_for_output(event.output_name) == REJECTS:
            event = event.with_metadata({**event.metadata, **_reject_metadata(postgres)})
        yield event


REJECTS = AssetKey(["silver", "rejects"])


def _reject_metadata(postgres: PostgresResource) -> dict[str, MetadataValue]:
    """Rejected rows by source and reason, so the UI shows why rows did not reach silver."""
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select source, reason, count(*) from silver.rejects group by 1, 2 order by 1, 3 desc"
        ).fetchall()
    table = "\n".join(f"| {source} | `{reason}` | {n:,} |" for source, reason, n in rows)
    return {
        "rejects_by_reason": MetadataValue.md("| source | reason | rows |\n| --- | --- | ---: |\n" + table),
        **{f"rejects/{source}/{reason}": MetadataValue.int(n) for source, reason, n in rows},
    }


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )
