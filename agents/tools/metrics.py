"""The metric tool: a small catalogue of metrics and dimensions over gold, compiled to safe SQL.

The model picks names from the catalogue and filter values; identifiers and expressions come only
from the constants below and every value is a bound parameter, so no text from the model or the data
ever becomes SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import sql

from assay.agents.tools.db import ReaderSession, ToolError


@dataclass(frozen=True)
class Metric:
    table: str
    expression: str
    description: str
    dimensions: dict[str, str]  # dimension -> SQL expression over `table`


_MONTHLY_DIMS = {
    "category": "category",
    "department": "department",
    "month": "to_char(month, 'YYYY-MM')",
}
_TREND_DIMS = {"category": "category", "month": "to_char(week_start, 'YYYY-MM')", "week": "week_start::text"}
_VENDOR_DIMS = {"vendor": "vendor_name"}

METRICS: dict[str, Metric] = {
    "total_spend_eur": Metric(
        "gold.monthly_summary", "round(sum(total_amount_eur), 2)", "total spend in EUR", _MONTHLY_DIMS
    ),
    "transaction_count": Metric(
        "gold.monthly_summary", "sum(transaction_count)", "number of transactions", _MONTHLY_DIMS
    ),
    "vendor_spend_eur": Metric(
        "gold.vendor_spend", "round(sum(total_amount_eur), 2)", "spend per vendor in EUR", _VENDOR_DIMS
    ),
    "vendor_share_pct": Metric(
        "gold.vendor_spend",
        "round(sum(share_of_spend_pct), 2)",
        "vendor's share of all spend in %",
        _VENDOR_DIMS,
    ),
    "anomaly_weeks": Metric(
        "gold.category_trends",
        "count(*) filter (where is_anomaly)",
        "weeks flagged as anomalous",
        _TREND_DIMS,
    ),
    "weekly_spend_eur": Metric(
        "gold.category_trends", "round(avg(total_amount_eur), 2)", "average weekly spend in EUR", _TREND_DIMS
    ),
}
DIMENSIONS = sorted({d for m in METRICS.values() for d in m.dimensions})

METRIC_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metric": {"enum": sorted(METRICS)},
        "group_by": {"enum": ["none", *DIMENSIONS]},
        "filters": {
            "type": "object",
            "properties": {
                "category": {"type": "string", "maxLength": 40},
                "department": {"type": "string", "maxLength": 40},
                "month": {"type": "string", "pattern": "^20[0-9]{2}-(0[1-9]|1[0-2])$"},
                "vendor": {"type": "string", "maxLength": 80},
            },
            "additionalProperties": False,
        },
    },
    "required": ["metric", "group_by"],
    "additionalProperties": False,
}


def compile_metric(
    metric: str, group_by: str = "none", filters: dict[str, str] | None = None, *, cap: int = 50
):
    """(query, params) for a catalogue metric; raises ToolError for names outside the catalogue."""
    spec = METRICS.get(metric)
    if spec is None:
        raise ToolError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    if group_by != "none" and group_by not in spec.dimensions:
        raise ToolError(f"{metric} cannot be grouped by {group_by!r}; use one of {sorted(spec.dimensions)}")
    schema, table = spec.table.split(".")
    conditions, params = [], []
    for name, value in sorted((filters or {}).items()):
        if name not in spec.dimensions:
            raise ToolError(f"{metric} cannot be filtered by {name!r}; use one of {sorted(spec.dimensions)}")
        conditions.append(sql.SQL("{} = %s").format(sql.SQL(spec.dimensions[name])))
        params.append(value)
    where = sql.SQL(" where ") + sql.SQL(" and ").join(conditions) if conditions else sql.SQL("")
    value = sql.SQL(spec.expression)
    if group_by == "none":
        query = sql.SQL("select {} as value from {}{}").format(value, sql.Identifier(schema, table), where)
    else:
        query = sql.SQL(
            "select {dim} as {alias}, {value} as value from {table}{where}"
            " group by 1 order by 2 desc nulls last, 1 limit {cap}"
        ).format(
            dim=sql.SQL(spec.dimensions[group_by]),
            alias=sql.Identifier(group_by),
            value=value,
            table=sql.Identifier(schema, table),
            where=where,
            cap=sql.Literal(cap),
        )
    return query, params


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def run_metric(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    query, params = compile_metric(
        arguments["metric"], arguments.get("group_by", "none"), arguments.get("filters"), cap=session.row_cap
    )
    result = session.query(query, params)
    return {
        "metric": arguments["metric"],
        "rows": [{k: _plain(v) for k, v in r.items()} for r in result.records()],
        "truncated": result.truncated,
    }
