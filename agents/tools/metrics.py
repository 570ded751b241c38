"""The metric tool: the semantic layer's metrics and dimensions over gold, compiled to safe SQL.

The model picks names from the layer and filter values; identifiers and expressions come only
from the dbt declaration and every value is a bound parameter, so no text from the model or the data
ever becomes SQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from assay.agents.tools.db import ReaderSession
from assay.agents.tools.semantic import StructuredQuery, compile_query, semantic_layer

# The catalogue is the semantic layer (dbt_project/models/gold/semantic_layer.yml), read from the
# shipped manifest once at import: the tool's JSON schema lists its names for constrained decoding.
METRICS = semantic_layer()
DIMENSIONS = sorted({d for m in METRICS.values() for d in m.dimensions if d != "is_anomaly"} | {"month"})

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


def structured(metric: str, group_by: str = "none", filters: dict[str, str] | None = None) -> StructuredQuery:
    """The tool's arguments as a structured query of the semantic layer (a month filter is a range)."""
    filters = dict(filters or {})
    start = end = None
    if month := filters.pop("month", None):
        year, number = (int(part) for part in month.split("-"))
        start, end = dt.date(year, number, 1), dt.date(year + number // 12, number % 12 + 1, 1)
    return StructuredQuery(
        metric,
        None if group_by == "none" else group_by,
        {name: [value] for name, value in filters.items()},
        start,
        end,
    )


def compile_metric(
    metric: str, group_by: str = "none", filters: dict[str, str] | None = None, *, cap: int = 50
):
    """(query, params) for a metric of the semantic layer; ToolError for names it does not declare."""
    return compile_query(structured(metric, group_by, filters), METRICS, cap=cap)


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
