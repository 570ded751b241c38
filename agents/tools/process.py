"""Process-mining lookups over `gold.process_*` (written by the process-mining assets).

The tables come from another part of assay and may not exist yet: a lookup then answers
`available: false` instead of failing the run. One table per lookup name (below); no column is
required: a lookup returns the table's columns as they are, at most `row_cap` rows, largest first
when the table has the column named in ORDER_BY.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from agents.tools.db import ReaderSession
from agents.tools.metrics import _plain

LOOKUPS = {
    "variants": "process_variants",
    "bottlenecks": "process_bottlenecks",
    "dfg": "process_dfg",
    "case_durations": "process_case_durations",
    "conformance": "process_conformance",
}
ORDER_BY = {"variants": "cases", "dfg": "frequency"}

PROCESS_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"lookup": {"enum": sorted(LOOKUPS)}},
    "required": ["lookup"],
    "additionalProperties": False,
}


def _json(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else _plain(value)


def run_process_lookup(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    lookup = arguments["lookup"]
    table = LOOKUPS[lookup]
    if not session.table_exists(f"gold.{table}"):
        return {"lookup": lookup, "available": False, "message": f"gold.{table} not available"}
    order = sql.SQL("")
    column = ORDER_BY.get(lookup)
    if (
        column
        and session.query(
            "select 1 from information_schema.columns where table_schema = 'gold' and table_name = %s"
            " and column_name = %s",
            [table, column],
        ).rows
    ):
        order = sql.SQL(" order by {} desc").format(sql.Identifier(column))
    result = session.query(
        sql.SQL("select * from {}{} limit {}").format(
            sql.Identifier("gold", table), order, sql.Literal(session.row_cap + 1)
        )
    )
    return {
        "lookup": lookup,
        "available": True,
        "rows": [{k: _json(v) for k, v in r.items()} for r in result.records()],
        "truncated": result.truncated,
    }
