"""The semantic layer (dbt_project/models/gold/semantic_layer.yml) read from dbt's manifest, and its
compiler: a structured query (metric, group-by, filters, time range, order, limit) becomes one
parameterised SQL statement.

Identifiers and expressions come only from the declaration, which `dbt parse` validated; every value
(a category, a date) is a bound parameter, so nothing from a question or a model ever becomes SQL.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from assay.agents.tools.db import ToolError
from assay.core import dbt as dbt_files

_AGG = {"sum": "sum", "count": "count", "average": "avg", "min": "min", "max": "max"}
# how a time dimension is shown when a query groups by a grain (sorts as text)
_GRAIN_FORMAT = {
    "day": "YYYY-MM-DD",
    "week": "YYYY-MM-DD",
    "month": "YYYY-MM",
    "quarter": 'YYYY-"Q"Q',
    "half": "YYYY",  # and "-H1" / "-H2" (Postgres has no half-year field)
    "year": "YYYY",
}
GRAINS = tuple(_GRAIN_FORMAT)


@dataclass(frozen=True)
class Dimension:
    name: str
    expr: str
    kind: str  # "categorical" | "time"
    synonyms: tuple[str, ...] = ()  # words for the dimension itself ("team" for department)
    # (word, value): the words analysts use for one of its values ("consultancy" for consulting)
    value_synonyms: tuple[tuple[str, str], ...] = ()
    grain: str | None = None  # a time dimension's granularity: "month" rows cannot be cut into weeks


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    description: str
    unit: str
    synonyms: tuple[str, ...]
    schema: str
    table: str
    aggregate: str  # SQL over the table, from the measure
    time_dimension: Dimension | None  # None: an all-time metric, a time range cannot apply
    dimensions: dict[str, Dimension]  # categorical dimensions by name
    # an all-time metric's twin over a period (meta.per_period): the metric a question that names a
    # period, or a cut only the twin has, is asked of
    per_period: str | None = None
    # meta.average_within: the dimension an average is taken within (the average weekly spend is of
    # one category's weeks: over several categories or all it would be an average of category-weeks)
    average_within: str | None = None

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass
class StructuredQuery:
    """What a question asks for, in the declaration's names only."""

    metric: str
    group_by: str | None = None  # a categorical dimension, or a time grain ("month", "year", ...)
    filters: dict[str, list[str]] = field(default_factory=dict)  # dimension -> accepted values
    start: dt.date | None = None  # time range [start, end)
    end: dt.date | None = None
    order: str = "desc"  # of the value when grouped
    limit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "group_by": self.group_by,
            "filters": self.filters,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "order": self.order,
            "limit": self.limit,
        }


def _meta(node: dict) -> dict:
    return (node.get("config") or {}).get("meta") or node.get("meta") or {}


def _raw(measure: dict) -> str:
    agg = _AGG.get(measure["agg"])
    if agg is None:
        raise ToolError(
            f"measure {measure['name']}: aggregation {measure['agg']!r} is not supported by assay's compiler"
        )
    return f"{agg}({measure.get('expr') or measure['name']})"


def _aggregate(measure: dict) -> str:
    expr = _raw(measure)
    return expr if measure["agg"] == "count" else f"round(({expr})::numeric, 2)"


def load_layer(manifest: dict) -> dict[str, Metric]:
    """Metrics by name from a dbt manifest's `semantic_models` and `metrics`."""
    measures: dict[str, tuple[dict, dict]] = {}
    for model in manifest.get("semantic_models", {}).values():
        for measure in model["measures"]:
            measures[measure["name"]] = (measure, model)
    metrics: dict[str, Metric] = {}
    nodes = {node["name"]: node for node in manifest.get("metrics", {}).values()}
    simple = {name: node for name, node in nodes.items() if node["type"] == "simple"}
    for node in [*simple.values(), *(n for n in nodes.values() if n["type"] == "ratio")]:
        if node["type"] == "ratio":
            # a ratio of two simple metrics over one semantic model: sum(numerator) / sum(denominator)
            parts = [simple.get(node["type_params"][k]["name"]) for k in ("numerator", "denominator")]
            if None in parts:
                continue  # dbt validated it; assay compiles ratios of simple metrics only
            (num, model), (den, other) = (measures[p["type_params"]["measure"]["name"]] for p in parts)
            if model is not other:
                continue  # across semantic models: not compiled
            measure = {"agg": "ratio", "expr": f"{_raw(num)}::numeric / nullif({_raw(den)}, 0)"}
        else:
            measure, model = measures[node["type_params"]["measure"]["name"]]
        dims = {
            d["name"]: Dimension(
                d["name"],
                d.get("expr") or d["name"],
                d["type"],
                tuple(_meta(d).get("synonyms", ())),
                tuple(
                    (str(word), str(value))
                    for value, words in (_meta(d).get("value_synonyms") or {}).items()
                    for word in words
                ),
                (d.get("type_params") or {}).get("time_granularity"),
            )
            for d in model["dimensions"]
        }
        time_name = measure.get("agg_time_dimension") or (model.get("defaults") or {}).get(
            "agg_time_dimension"
        )
        meta = _meta(node)
        metrics[node["name"]] = Metric(
            name=node["name"],
            label=node.get("label") or node["name"],
            description=node.get("description") or "",
            unit=meta.get("unit", ""),
            synonyms=tuple(meta.get("synonyms", ())),
            schema=model["node_relation"]["schema_name"],
            table=model["node_relation"]["alias"],
            aggregate=f"round({measure['expr']}, 2)" if measure["agg"] == "ratio" else _aggregate(measure),
            time_dimension=None if _meta(model).get("all_time") else dims.get(time_name),
            dimensions={n: d for n, d in dims.items() if d.kind == "categorical"},
            per_period=meta.get("per_period"),
            average_within=meta.get("average_within"),
        )
    return metrics


@functools.cache
def _layer_at(path: Path, mtime: float) -> dict[str, Metric]:
    return load_layer(json.loads(path.read_text()))


def semantic_layer() -> dict[str, Metric]:
    """The project's metrics, from the shipped (or locally parsed) manifest; cached per file version."""
    path = dbt_files.manifest_path()
    if not path.exists():
        raise ToolError(
            f"no dbt manifest at {path}: run"
            " `dagster-dbt project prepare-and-package --file assets/dbt_project.py`"
        )
    return _layer_at(path, path.stat().st_mtime)


def compile_query(
    query: StructuredQuery, layer: dict[str, Metric], *, cap: int = 50
) -> tuple[sql.Composed, list]:
    """(SQL, parameters) for a structured query; ToolError names what the declaration does not allow."""
    metric = layer.get(query.metric)
    if metric is None:
        raise ToolError(f"unknown metric {query.metric!r}; known: {sorted(layer)}")
    conditions, params = [], []
    for name, values in sorted(query.filters.items()):
        dim = metric.dimensions.get(name)
        if dim is None:
            raise ToolError(
                f"{metric.name} cannot be filtered by {name!r}; use one of {sorted(metric.dimensions)}"
            )
        conditions.append(sql.SQL("{} = any(%s)").format(sql.SQL(dim.expr)))
        params.append(list(values))
    if query.start or query.end:
        if metric.time_dimension is None:
            raise ToolError(f"{metric.name} is an all-time figure: it cannot be restricted to a period")
        time = sql.SQL(metric.time_dimension.expr)
        if query.start:
            conditions.append(sql.SQL("{} >= %s").format(time))
            params.append(query.start)
        if query.end:
            conditions.append(sql.SQL("{} < %s").format(time))
            params.append(query.end)
    where = sql.SQL(" where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
    table = sql.Identifier(metric.schema, metric.table)
    value = sql.SQL(metric.aggregate)
    if query.group_by is None:
        return sql.SQL("select {} as value from {}{}").format(value, table, where), params
    if query.group_by in metric.dimensions:
        key = sql.SQL(metric.dimensions[query.group_by].expr)
    elif query.group_by in _GRAIN_FORMAT and metric.time_dimension is not None:
        kept = metric.time_dimension.grain
        if kept in GRAINS and GRAINS.index(query.group_by) < GRAINS.index(kept):
            raise ToolError(f"{metric.name} is kept per {kept}: it cannot be grouped by {query.group_by!r}")
        time = sql.SQL(metric.time_dimension.expr)
        trunc = "year" if query.group_by == "half" else query.group_by
        key = sql.SQL("to_char(date_trunc({}, {}), {})").format(
            sql.Literal(trunc), time, sql.Literal(_GRAIN_FORMAT[query.group_by])
        )
        if query.group_by == "half":
            key = sql.SQL("{} || case when extract(month from {}) <= 6 then '-H1' else '-H2' end").format(
                key, time
            )
    else:
        allowed = sorted(metric.dimensions) + (list(GRAINS) if metric.time_dimension else [])
        raise ToolError(f"{metric.name} cannot be grouped by {query.group_by!r}; use one of {allowed}")
    order = sql.SQL("asc" if query.order == "asc" else "desc")
    limit = min(query.limit or cap, cap)
    statement = sql.SQL(
        "select {key} as {alias}, {value} as value from {table}{where}"
        " group by 1 order by 2 {order} nulls last, 1 limit {limit}"
    ).format(
        key=key,
        alias=sql.Identifier(query.group_by),
        value=value,
        table=table,
        where=where,
        order=order,
        limit=sql.Literal(limit),
    )
    return statement, params
