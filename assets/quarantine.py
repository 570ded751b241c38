"""After a dbt step failed: find the bronze rows that made its models fail and quarantine them.

Reads the failed call's own artifacts (`run_results.json`: which models errored and their compiled
SQL; `manifest.json`: each node's parents and relation names) and hands each failed model to
`landing.quarantine.isolate`, narrowed to the bronze rows of its own lineage: a model that reads a
bronze source directly is narrowed there (`int_transactions_checked` -> `bronze.transactions_active`),
a model on one such model is narrowed on that parent's `bronze_id` (`transactions` ->
`int_transactions_checked`). A failed ERROR test whose failing rows carry a `bronze_id`
(`expression_is_true`: `select * ... where not (...)`) names its rows itself: those are quarantined.
A model with no single bronze lineage (`rejects`, gold) is left as it failed. Only database errors
on data count (SQLSTATE classes 22, 23, 54): a broken connection or SQL is never a row's fault.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import MetadataValue

from assay.assets.metadata import table_value
from assay.core.database import PostgresResource
from assay.landing.quarantine import Probe, QuarantinedRow, failing_rows, isolate, quarantine_rows


def _bronze_lineage(manifest: Mapping[str, Any], unique_id: str) -> tuple[str, str] | None:
    """(bronze source name, relation to narrow) for a model with one bronze lineage, else None."""
    node = manifest["nodes"].get(unique_id)
    if node is None:
        return None
    parents = node.get("depends_on", {}).get("nodes", [])
    bronze = [
        manifest["sources"][p]
        for p in parents
        if p.startswith("source.") and manifest["sources"][p]["source_name"] == "bronze"
    ]
    if len(bronze) == 1:
        return bronze[0]["name"], bronze[0]["relation_name"]
    if bronze:
        return None
    lineages = [
        (lineage[0], manifest["nodes"][p]["relation_name"])
        for p in parents
        if p.startswith("model.") and (lineage := _bronze_lineage(manifest, p)) is not None
    ]
    return lineages[0] if len(lineages) == 1 else None


def failed_nodes(target: Path) -> list[dict[str, Any]]:
    """The results of a dbt call's models that ended in error and tests that failed (ERROR severity:
    a WARN test's status is `warn`), from run_results.json."""
    path = target / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())["results"]
    return [
        r
        for r in results
        if (r["status"] == "error" and r["unique_id"].startswith("model."))
        or (r["status"] == "fail" and r["unique_id"].startswith("test."))
    ]


def quarantine_failures(
    postgres: PostgresResource, target: Path, step: str
) -> list[tuple[Mapping[str, Any], QuarantinedRow]]:
    """Isolate and quarantine the rows that made this call's models fail; returns each quarantined
    row with the manifest node of the model it broke (empty: nothing here was a row's fault, the
    step's error stands)."""
    failed = failed_nodes(target)
    if not failed:
        return []
    manifest = json.loads((target / "manifest.json").read_text())
    done: list[tuple[Mapping[str, Any], QuarantinedRow]] = []
    with postgres.connect(autocommit=True) as conn:
        for result in failed:
            failed_node = manifest["nodes"][result["unique_id"]]
            is_test = failed_node["resource_type"] == "test"
            # a test's rows belong to the model it is attached to
            model_id = failed_node.get("attached_node") if is_test else result["unique_id"]
            node = manifest["nodes"].get(model_id or "")
            lineage = _bronze_lineage(manifest, model_id) if node else None
            compiled = result.get("compiled_code") or failed_node.get("compiled_code")
            if lineage is None or not compiled:
                continue
            source, parent = lineage
            if is_test:
                errors = failing_rows(conn, compiled, f"dbt test {failed_node['name']} fails on this row")
            else:
                exists = conn.execute("select to_regclass(%s)", [node["relation_name"]]).fetchone()[0]
                errors = isolate(conn, Probe(compiled, parent, node["relation_name"] if exists else None))
            rows = quarantine_rows(conn, source, errors, f"{node['schema']}.{node['name']} ({step})")
            done += [(node, row) for row in rows]
    return done


def quarantine_metadata(rows: list[QuarantinedRow]) -> dict[str, MetadataValue]:
    """What a step quarantined, for the asset's metadata in the UI (and the CLI's notes)."""
    return {
        "quarantined_rows": MetadataValue.int(len(rows)),
        "quarantined": table_value(
            [
                {
                    "source": r.source,
                    "bronze_id": r.bronze_id,
                    "error": r.reason,
                    "step": r.step,
                    "release": r.release_command,
                }
                for r in rows
            ]
        ),
        "quarantine_notes": MetadataValue.text(
            "\n".join(
                f"- {r.source} bronze row {r.bronze_id} quarantined: {r.reason} (in {r.step}); "
                f"`{r.release_command}` lets it through again"
                for r in rows
            )
        ),
    }
