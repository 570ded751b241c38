"""Schema drift of landing files: the fields a new bronze batch has against the fields expected.

A drifting file still loads into bronze in full (each line's JSON object is kept as it came). The
drift is reported by the bronze asset's `schema_drift` check (WARN, not blocking) with the field diff:

- **extra**: a field some record of the batch has that the source does not define;
- **missing**: a defined field that no record of the batch has;
- **renamed** (a guess): a missing field paired with an extra one whose name is close to it
  (`amount` -> `amt`, `vendor_id` -> `vendor`).

What silver does with such rows is fixed by the `int_<source>_checked` models: unknown fields are
ignored; a missing *required* field rejects the row as `missing_field:<name>` (a renamed required
field is the same thing: the old name is missing); a missing optional field is null in silver.
"""

import difflib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue
from psycopg import sql

# Fields each source defines, as the int_<source>_checked models read them.
REQUIRED_FIELDS = {
    "transactions": ("id", "employee_id", "vendor_id", "amount", "currency", "date"),
    "events": ("case_id", "activity", "timestamp"),
    "vendors": ("vendor_id", "vendor_name"),
    "employees": ("employee_id", "department"),
}
OPTIONAL_FIELDS = {
    "transactions": ("description", "category"),
    "events": ("resource",),
    "vendors": ("country", "default_category"),
    "employees": ("employee_name", "cost_centre"),
}


# Records a file needs before a missing optional field counts as drift (see batch_drift).
MIN_RECORDS_FOR_OPTIONAL = 20


def expected_fields(source: str) -> tuple[str, ...]:
    return (*REQUIRED_FIELDS.get(source, ()), *OPTIONAL_FIELDS.get(source, ()))


@dataclass
class BatchDrift:
    source_file: str
    records: int
    extra: list[str]
    missing: list[str]
    renamed: dict[str, str]  # expected name -> name found instead

    @property
    def drifted(self) -> bool:
        return bool(self.extra or self.missing)


@dataclass
class DriftReport:
    source: str
    batches: list[BatchDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[BatchDrift]:
        return [b for b in self.batches if b.drifted]

    def fields(self, attribute: str) -> list[str]:
        return sorted({name for b in self.drifted for name in getattr(b, attribute)})

    def renamed(self) -> dict[str, str]:
        return {old: new for b in self.drifted for old, new in b.renamed.items()}

    def check_result(self, asset_key: AssetKey) -> AssetCheckResult:
        drifted = self.drifted
        required = set(REQUIRED_FIELDS.get(self.source, ()))
        if not self.batches:
            description = f"No new {self.source} files in this run: nothing to compare."
        elif not drifted:
            description = f"{len(self.batches)} new file(s) have exactly the expected {self.source} fields."
        else:
            missing_required = [f for f in self.fields("missing") if f in required]
            consequence = (
                f" Rows without {', '.join(missing_required)} go to silver.rejects as "
                + ", ".join(f"missing_field:{f}" for f in missing_required)
                + "."
                if missing_required
                else ""
            )
            description = (
                f"{len(drifted)} of {len(self.batches)} new {self.source} file(s) drift from the expected "
                f"fields: extra {self.fields('extra') or '-'}, missing {self.fields('missing') or '-'}, "
                f"probably renamed {self.renamed() or '-'}. Every line is in bronze.{self.source}; unknown "
                f"fields are ignored by silver.{consequence}"
            )
        rows = [
            {
                "file": b.source_file,
                "records": b.records,
                "extra": ", ".join(b.extra) or "-",
                "missing": ", ".join(b.missing) or "-",
                "renamed": ", ".join(f"{old} -> {new}" for old, new in b.renamed.items()) or "-",
            }
            for b in drifted
        ]
        metadata = {
            "expected_fields": ", ".join(expected_fields(self.source)),
            "new_files": len(self.batches),
            "drifted_files": len(drifted),
            "extra_fields": MetadataValue.json(self.fields("extra")),
            "missing_fields": MetadataValue.json(self.fields("missing")),
            "renamed_fields": MetadataValue.json(self.renamed()),
        }
        if rows:
            header = "| file | records | extra | missing | renamed |\n| --- | --- | --- | --- | --- |\n"
            metadata["diff"] = MetadataValue.md(
                header + "\n".join(f"| {' | '.join(str(v) for v in row.values())} |" for row in rows)
            )
        return AssetCheckResult(
            asset_key=asset_key,
            check_name="schema_drift",
            passed=not drifted,
            severity=AssetCheckSeverity.WARN,
            description=description,
            metadata=metadata,
        )


def batch_drift(
    conn: psycopg.Connection, source: str, batch_ids: Sequence[uuid.UUID], table: str | None = None
) -> DriftReport:
    """Compare the field names found in each batch of `bronze.<table>` with `source`'s fields."""
    report = DriftReport(source)
    if not batch_ids:
        return report
    rows = conn.execute(
        sql.SQL(
            """
            select b.batch_id, min(b.source_file), count(*) filter (where b.record is not null),
                   coalesce(array_agg(distinct k.key) filter (where k.key is not null), '{{}}')
            from {table} b
            left join lateral jsonb_object_keys(b.record) as k (key) on true
            where b.batch_id = any(%s)
            group by b.batch_id
            order by 2
            """
        ).format(table=sql.Identifier("bronze", table or source)),
        [list(batch_ids)],
    ).fetchall()
    expected = expected_fields(source)
    for _batch_id, source_file, records, keys in rows:
        if not records:  # nothing parsed: a parse problem, reported by the reject checks, not drift
            report.batches.append(BatchDrift(source_file, 0, [], [], {}))
            continue
        found = set(keys)
        extra = sorted(found - set(expected))
        required = REQUIRED_FIELDS.get(source, ())
        # an optional field that none of a handful of records carries (a small daily file) says
        # nothing about the schema; in a file of some size its absence is drift
        checked = expected if records >= MIN_RECORDS_FOR_OPTIONAL else required
        missing = [f for f in checked if f not in found]
        report.batches.append(BatchDrift(source_file, records, extra, missing, _renames(missing, extra)))
    return report


def _renames(missing: list[str], extra: list[str]) -> dict[str, str]:
    """Pair each missing field with the closest unused extra field, when the names are close."""
    pairs: dict[str, str] = {}
    free = list(extra)
    for name in missing:
        best = max(((_similarity(name, other), other) for other in free), default=(0.0, ""))
        if best[0] >= 0.6:
            pairs[name] = best[1]
            free.remove(best[1])
    return pairs


def _similarity(a: str, b: str) -> float:
    if a in b or b in a:
        return 1.0
    return difflib.SequenceMatcher(None, a, b).ratio()
