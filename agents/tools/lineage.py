"""Where a transaction an answer names came from: its landing file and line number.

The reader cannot read silver or bronze; `agents.transaction_sources` (core/migrations/0016) follows
silver.transactions' lineage to the bronze row and the file's ledger entry in one set-based query
for all the ids at once, never one query per row.
"""

from __future__ import annotations

from dataclasses import dataclass

from assay.agents.tools.db import ReaderSession


@dataclass(frozen=True)
class Source:
    transaction_id: str
    source: str
    source_file: str  # landing-relative, as in bronze.load_batches
    line_number: int

    def __str__(self) -> str:
        return f"{self.source_file}:{self.line_number}"


def transaction_sources(session: ReaderSession, ids: list[str]) -> dict[str, Source]:
    """The landing file and line of each transaction id (ids not in silver are left out)."""
    if not ids:
        return {}
    result = session.query(
        "select transaction_id, source, source_file, line_number from agents.transaction_sources(%s)",
        [list(dict.fromkeys(str(i) for i in ids))],
        cap=len(ids),
    )
    return {row[0]: Source(row[0], row[1], row[2], row[3]) for row in result.rows}
