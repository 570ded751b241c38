"""Rows as typed table metadata: the UI renders them as a sortable table with column types."""

import datetime as dt
from decimal import Decimal
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema


def _plain(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _type(values: list) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    return "string"


def table_value(rows: list[dict]) -> MetadataValue:
    """`rows` (dicts, keys in order of first appearance) as a `MetadataValue.table`."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    plain = [{c: _plain(row.get(c)) for c in columns} for row in rows]
    schema = TableSchema(columns=[TableColumn(c, _type([r[c] for r in plain])) for c in columns])
    return MetadataValue.table([TableRecord(r) for r in plain], schema)
