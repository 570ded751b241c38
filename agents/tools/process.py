"""Process-mining lookups over `gold.process_*` (written by the process-mining assets).

The tables come from another part of assay and may not exist yet: a lookup then answers
`available: false` instead of failing the run. Assumed tables (one per lookup name):
`gold.process_variants`, `gold.process_bottlenecks`, `gold.process_dfg`, `gold.process_conformance`;
no column names are assumed: a lookup returns the table's columns as they are, at most `row_cap`
rows.
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
    "conformance": "process_conformance",
}

PROCESS_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"lookup": {"enum": sorted(LOOKUPS)}},
    "required": ["lookup"],
    "additionalProperties": False,
}


def run_process_lookup(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    lookup = arguments["lookup"]
    table = LOOKUPS[lookup]
    if not session.table_exists(f"gold.{table}"):
        return {"lookup": lookup, "available": False, "message": f"gold.{table} not available"}
    result = session.query(
        sql.SQL("select * from {} limit {}").format(
            sql.Identifier("gold", table), sql.Literal(session.row_cap + 1)
        )
    )
    return {
        "lookup": lookup,
        "available": True,
        "rows": [
            {k: _plain(v) if not hasattr(v, "isoformat") else v.isoformat() for k, v in r.items()}
            for r in result.records()
        ],
        "truncated": result.truncated,
    }
