"""What "good data" means for the quality gates, read from where it is declared, never restated.

- **Reject reasons** are declared once, in the dbt seed `reject_reasons.csv`: each class, the DQ
  dimension it counts against, and the sources whose checked model can produce it. `silver.rejects`
  may only hold declared classes (a dbt relationships test).
- **Gold rules** are the gold models' dbt tests, read from the manifest: `not_null` columns are
  required (completeness), `unique` / `unique_combination` columns are keys (uniqueness),
  `expression_is_true` tests are validity rules, or timeliness rules where the test's
  `meta: {dq_dimension: timeliness}` says so.

Every score is a share of rows in [0, 1]:

**silver** (`transactions`, `events`, `vendors`, `employees`): the rows are the bronze rows of the
table's source. Each bronze row is either in silver or in `silver.rejects` with the first rule it
failed (see the `int_*_checked` models); the reason's class decides the dimension it counts against,
and bronze rows found in neither count against completeness. Overall = silver rows / bronze rows.
A rejected row counts against exactly one dimension, so `1 - overall` is the sum of the four
shortfalls. A source with no bronze rows scores 1.

**gold**: the rows are the table's own rows: completeness = rows whose required columns are all set;
uniqueness = rows that are the first with each of their keys; validity = rows meeting every validity
rule; timeliness = rows meeting every timeliness rule; overall = rows passing all four. An empty
gold table scores 1 (dbt's reconciliation test catches a gold table that is empty when silver is not).
"""

import csv
import functools
import json
from dataclasses import dataclass

from assay.core import dbt as dbt_files
from assay.landing.files import SOURCES

DIMENSIONS = ("completeness", "uniqueness", "validity", "timeliness")
SILVER_TABLES = SOURCES  # silver.<source> is the clean side of bronze.<source>
GOLD_FOLDER = "gold"


@dataclass(frozen=True)
class RejectReason:
    reason_class: str
    dimension: str
    sources: tuple[str, ...]
    description: str


@functools.cache
def reject_reasons() -> dict[str, RejectReason]:
    """The declared reject reason classes, by class (the `reject_reasons` seed)."""
    with open(dbt_files.project_dir() / "seeds" / "reject_reasons.csv", newline="") as f:
        return {
            row["reason_class"]: RejectReason(
                row["reason_class"], row["dimension"], tuple(row["sources"].split()), row["description"]
            )
            for row in csv.DictReader(f)
        }


def reason_dimension(reason_class: str) -> str:
    """The dimension a reason class counts against (validity for a class nobody declared)."""
    reason = reject_reasons().get(reason_class)
    return reason.dimension if reason else "validity"


def source_reasons(source: str) -> tuple[str, ...]:
    """The reason classes the checked model of `source` can produce."""
    return tuple(c for c, reason in reject_reasons().items() if source in reason.sources)


@dataclass(frozen=True)
class GoldRules:
    keys: tuple[tuple[str, ...], ...]
    required: tuple[str, ...]
    valid: tuple[str, ...]  # SQL boolean expressions over one row; null counts as failing
    timely: tuple[str, ...]
    upstream: tuple[str, ...]  # the tables (layer.name) the model reads


@functools.cache
def gold_rules() -> dict[str, GoldRules]:
    """The rules of every gold dbt model, from its tests in the manifest."""
    manifest = json.loads(dbt_files.manifest_path().read_text())
    nodes = manifest["nodes"]
    models = {
        uid: node
        for uid, node in nodes.items()
        if node["resource_type"] == "model"
        and node["fqn"][1:2] == [GOLD_FOLDER]
        and not dbt_files.is_time_spine(node)
    }
    found: dict[str, dict[str, list]] = {
        uid: {"keys": [], "required": [], "valid": [], "timely": []} for uid in models
    }
    for node in nodes.values():
        meta = node.get("test_metadata") or {}
        target = node.get("attached_node")
        if node["resource_type"] != "test" or target not in found:
            continue
        kwargs, rules = meta.get("kwargs", {}), found[target]
        name = meta.get("name")
        if name == "not_null":
            rules["required"].append(kwargs["column_name"])
        elif name == "unique":
            rules["keys"].append((kwargs["column_name"],))
        elif name == "unique_combination":
            rules["keys"].append(tuple(kwargs["columns"]))
        elif name == "expression_is_true":
            dimension = node["config"].get("meta", {}).get("dq_dimension", "validity")
            rules["timely" if dimension == "timeliness" else "valid"].append(kwargs["expression"])
    return {
        node["name"]: GoldRules(
            keys=tuple(dict.fromkeys(found[uid]["keys"])),
            required=tuple(dict.fromkeys(found[uid]["required"])),
            valid=tuple(dict.fromkeys(found[uid]["valid"])),
            timely=tuple(dict.fromkeys(found[uid]["timely"])),
            upstream=tuple(
                f"{nodes[dep]['fqn'][1]}.{nodes[dep]['name']}"
                for dep in node["depends_on"]["nodes"]
                if dep in nodes and nodes[dep]["resource_type"] == "model"
            ),
        )
        for uid, node in sorted(models.items())
    }
