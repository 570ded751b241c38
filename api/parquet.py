"""Rows of a mart as a Parquet stream: one row group per fetched batch, written as it comes.

Each column keeps its Postgres type where Arrow has one (a constrained `numeric` stays an exact
decimal); an unconstrained `numeric` becomes float64 and any other type its text, both cast in SQL
(`casts`), so the file's schema is fixed before the first row and every batch fits it.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from assay.api.catalog import Column

_ARROW: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "text": pa.string(),
    "character varying": pa.string(),
    "character": pa.string(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
}

BATCH_ROWS = 50_000  # one row group; about this many rows in memory at once


def arrow_type(column: Column) -> pa.DataType:
    if column.pg_type == "numeric":
        return pa.decimal128(*column.scale) if column.scale else pa.float64()
    return _ARROW.get(column.pg_type, pa.string())


def casts(columns: Sequence[Column]) -> dict[str, str]:
    """The SQL casts the Arrow types need: an unconstrained numeric has no fixed scale for a decimal
    column (float64); a type Arrow does not have is exported as its text."""
    found = {c.name: "float8" for c in columns if c.pg_type == "numeric" and not c.scale}
    found.update({c.name: "text" for c in columns if c.pg_type != "numeric" and c.pg_type not in _ARROW})
    return found


class _Chunks:
    """A write-only file for pyarrow that hands what was written so far to the response."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


async def parquet_stream(
    batches: AsyncIterator[list[tuple[Any, ...]]], columns: Sequence[Column]
) -> AsyncIterator[bytes]:
    schema = pa.schema([pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in columns])
    sink = _Chunks()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        async for rows in batches:
            if not rows:
                continue
            by_column = zip(*rows, strict=True)
            arrays = [pa.array(values, type=f.type) for values, f in zip(by_column, schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()  # the footer
