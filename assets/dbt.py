"""The dbt project as Dagster assets: silver, gold and platinum models, seeds, and their tests.

Asset keys are `[layer, model]` and groups are the layer (the model's folder), never the physical
schema, so keys do not change between environments. dbt tests arrive as asset checks.

Each layer is its own `@dbt_assets` step (its own `dbt build --select path:models/<layer>`), so
Dagster's blocking checks sit *between* layers: a failing silver test or quality gate
(`quality/checks.py`) stops gold, and a failing gold one stops platinum. Inside one `dbt build`,
dbt itself skips the children of a failed test.
"""

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    MetadataValue,
    Output,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from assets.dbt_project import DBT_PROJECT_DIR, dbt_executable, dbt_project
from orchestration.database import PostgresResource
from quality.store import CheckRecorder

LAYERS = ("silver", "gold", "platinum")
# dbt selection per layer; seeds are reference data that silver validates against.
LAYER_SELECT = {
    "silver": "path:models/silver path:seeds",
    "gold": "path:models/gold",
    "platinum": "path:models/platinum",
}

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


def _layer_assets(layer: str) -> AssetsDefinition:
    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=LAYER_SELECT[layer],
        name=f"dbt_{layer}",
        dagster_dbt_translator=AssayTranslator(
            settings=DagsterDbtTranslatorSettings(enable_code_references=False)
        ),
    )
    def _models(context: AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource) -> Iterator:
        # dbt inherits this process's environment; profiles.yml reads the connection from it.
        os.environ.update(postgres.dbt_env())
        # a test runs in the layer where all its parents are built (a gold test that reads silver runs
        # with gold, not before it); dagster-dbt still overrides this when it subsets checks
        os.environ.setdefault("DBT_INDIRECT_SELECTION", "buildable")
        # every dbt test result also goes to quality.check_results, which `assay quality` reads
        invocation = dbt.cli(["build"], context=context)
        try:
            with CheckRecorder(postgres, context.run_id) as recorder:
                for event in invocation.stream().fetch_row_counts():
                    if isinstance(event, AssetCheckResult):
                        recorder.add(event)
                    elif (
                        isinstance(event, Output)
                        and context.asset_key_for_output(event.output_name) == REJECTS
                    ):
                        event = event.with_metadata({**event.metadata, **_reject_metadata(postgres)})
                    yield event
        finally:
            _keep_partial_parse(invocation.target_path)

    return _models


def _keep_partial_parse(invocation_target: Path) -> None:
    """Let the next layer's dbt call reuse this call's parse (a full parse costs seconds).

    The prepared `partial_parse.msgpack` was made with the default connection settings; dbt throws
    it away when the profile differs (it does: the real host is known only at run time), so each
    layer would parse the whole project again. Replaced atomically; a read-only project just
    parses again.
    """
    source = invocation_target / "partial_parse.msgpack"
    target = dbt_project.project_dir / dbt_project.target_path / "partial_parse.msgpack"
    if not source.exists():
        return
    try:
        staging = target.with_name(f".partial_parse.{os.getpid()}.tmp")
        shutil.copyfile(source, staging)
        os.replace(staging, target)
    except OSError:
        pass


dbt_models = [_layer_assets(layer) for layer in LAYERS]


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
