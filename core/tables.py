"""Bulk moves between Postgres and polars: COPY out into a frame, COPY a frame into a replaced table.

Used by the process-mining assets, which read whole layers and rewrite whole gold tables.
"""

import io
from collections.abc import Sequence

import polars as pl
import psycopg
from dagster import TableColumn, TableSchema
from psycopg import sql

Columns = Sequence[tuple[str, str]]
"""(column name, Postgres type as `format_type` spells it, optionally followed by ` not null`)."""


def read_frame(
    conn: psycopg.Connection, query: str | sql.Composable, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """Run `query` through `COPY ... TO STDOUT (FORMAT csv)` and parse it with polars.

    `schema` names the query's columns in order. Timestamp columns (`pl.Datetime`) travel as
    integer microseconds since the epoch, which parse far faster than timestamp text.
    """
    inner = sql.SQL(query) if isinstance(query, str) else query
    columns = [
        sql.SQL("(extract(epoch from q.{0}) * 1000000)::int8").format(sql.Identifier(name))
        if _is_datetime(dtype)
        else sql.SQL("q.{}").format(sql.Identifier(name))
        for name, dtype in schema.items()
    ]
    aliases = sql.SQL(", ").join(map(sql.Identifier, schema))
    copy_sql = sql.SQL("copy (select {} from ({}) as q ({})) to stdout (format csv)").format(
        sql.SQL(", ").join(columns), inner, aliases
    )
    buffer = io.BytesIO()
    with conn.cursor().copy(copy_sql) as copy:
        for block in copy:
            buffer.write(block)
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    buffer.seek(0)
    wire = {name: (pl.Int64 if _is_datetime(dtype) else dtype) for name, dtype in schema.items()}
    frame = pl.read_csv(buffer, has_header=False, new_columns=list(schema), schema=wire)
    return frame.with_columns(
        pl.from_epoch(name, time_unit="us").dt.replace_time_zone(dtype.time_zone or None)
        for name, dtype in schema.items()
        if _is_datetime(dtype)
    )


def _is_datetime(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Datetime) or dtype == pl.Datetime


def replace_table(
    conn: psycopg.Connection,
    table: str,
    columns: Columns,
    frame: pl.DataFrame,
    *,
    primary_key: Sequence[str] = (),
    comment: str | None = None,
) -> int:
    """Replace the contents of `schema.table` with `frame` in one transaction; returns rows written.

    The table is created when missing and rebuilt when its columns changed; otherwise it is
    truncated, so views or grants on it survive. Readers see the old rows until the commit.
    `conn` must be in autocommit mode so that `conn.transaction()` is a real transaction.
    """
    schema_name, table_name = table.split(".")
    ident = sql.Identifier(schema_name, table_name)
    names = [name for name, _ in columns]
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"assay.table.{table}"])
        existing = conn.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
            [table],
        ).fetchall()
        wanted = [(name, ddl.split(" not null")[0].strip()) for name, ddl in columns]
        if existing and [tuple(row) for row in existing] != wanted:
            conn.execute(sql.SQL("drop table {}").format(ident))
            existing = []
        if existing:
            conn.execute(sql.SQL("truncate {}").format(ident))
        else:
            parts = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(ddl)) for n, ddl in columns]
            conn.execute(sql.SQL("create table {} ({})").format(ident, sql.SQL(", ").join(parts)))
        # the key is built after the COPY: one sort instead of an index insert per row
        pkey = sql.Identifier(f"{table_name}_pkey")
        conn.execute(sql.SQL("alter table {} drop constraint if exists {}").format(ident, pkey))
        if comment:
            conn.execute(sql.SQL("comment on table {} is {}").format(ident, sql.Literal(comment)))
        buffer = io.BytesIO()
        frame.select(names).write_csv(buffer, include_header=False, datetime_format="%Y-%m-%dT%H:%M:%S%.f%z")
        copy_sql = sql.SQL("copy {} ({}) from stdin (format csv)").format(
            ident, sql.SQL(", ").join(map(sql.Identifier, names))
        )
        with conn.cursor().copy(copy_sql) as copy:
            copy.write(buffer.getbuffer())
        if primary_key:
            conn.execute(
                sql.SQL("alter table {} add constraint {} primary key ({})").format(
                    ident, pkey, sql.SQL(", ").join(map(sql.Identifier, primary_key))
                )
            )
    return frame.height


def table_schema(columns: Columns, descriptions: dict[str, str] | None = None) -> TableSchema:
    """Dagster column metadata (`dagster/column_schema`) from the same column list as the DDL."""
    descriptions = descriptions or {}
    return TableSchema(
        columns=[
            TableColumn(name, ddl.split(" not null")[0].strip(), description=descriptions.get(name))
            for name, ddl in columns
        ]
    )
