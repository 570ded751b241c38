"""Process-mining lookups over `gold.process_*` (written by `assets/process.py`).

One lookup per question an analyst asks of the approval process; each reads one table, a fixed list
of its columns, in a fixed order, at most `PROCESS_ROWS` rows (and never more than the row cap). The
tables come from the process-mining assets, upstream of the question-answering asset; where they have
not been built (a database that never ran process mining) a lookup answers `available: false`
instead of failing the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from assay.agents.tools.db import ReaderSession
from assay.agents.tools.metrics import _plain

PROCESS_ROWS = 10  # enough to answer from; more only lengthens the answer prompt


@dataclass(frozen=True)
class Lookup:
    table: str  # in schema gold
    columns: tuple[str, ...]
    order_by: str  # a fixed SQL ordering over `columns`


LOOKUPS: dict[str, Lookup] = {
    "variants": Lookup(
        "process_variants", ("variant_rank", "variant", "cases", "case_share", "median_hours"), "variant_rank"
    ),
    "bottlenecks": Lookup(
        "process_bottlenecks",
        ("kind", "source", "target", "occurrences", "mean_hours", "total_hours", "share_of_wait"),
        "rank_by_total",
    ),
    "dfg": Lookup(
        "process_dfg", ("edge_kind", "source", "target", "frequency", "median_hours"), "frequency desc"
    ),
    "case_durations": Lookup(
        "process_case_durations",
        ("grouping", "department", "category", "cases", "median_hours"),
        "cases desc",
    ),
    "conformance": Lookup("process_model", ("model", "source", "log_fitness", "fitting_case_share"), "model"),
    "deviations": Lookup(
        "process_variant_deviations",
        ("variant_rank", "variant", "cases", "move_type", "activity"),
        "variant_rank, move_number",
    ),
}
# the asset keys the lookups read: the question-answering asset is downstream of them
LOOKUP_TABLES = tuple(sorted({lookup.table for lookup in LOOKUPS.values()}))

PROCESS_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"lookup": {"enum": sorted(LOOKUPS)}},
    "required": ["lookup"],
    "additionalProperties": False,
}


def _json(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else _plain(value)


def run_process_lookup(session: ReaderSession, arguments: dict[str, Any]) -> dict[str, Any]:
    name = arguments["lookup"]
    lookup = LOOKUPS[name]
    if not session.table_exists(f"gold.{lookup.table}"):
        return {"lookup": name, "available": False, "message": f"gold.{lookup.table} not available"}
    result = session.query(
        sql.SQL("select {} from {} order by {} limit {}").format(
            sql.SQL(", ").join(map(sql.Identifier, lookup.columns)),
            sql.Identifier("gold", lookup.table),
            sql.SQL(lookup.order_by),  # a constant above, never text from the model
            sql.Literal(min(PROCESS_ROWS, session.row_cap) + 1),
        ),
        cap=min(PROCESS_ROWS, session.row_cap),
    )
    return {
        "lookup": name,
        "available": True,
        "rows": [{k: _json(v) for k, v in r.items()} for r in result.records()],
        "truncated": result.truncated,
    }
