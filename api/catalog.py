"""The marts the API may read: the allowlist comes from the dbt manifest, the column types from Postgres.

A mart is a dbt model materialised in the `gold` schema. Its name, relation, descriptions and unique key
come from `dbt_project/target/manifest.json` (written by `dagster-dbt project prepare-and-package`); its
columns and their types come from the database's `information_schema` as the read-only role sees them,
so a column the reader cannot see is never offered. Only these names ever reach SQL, and then only
through `psycopg.sql.Identifier`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg

from assay.core import dbt as dbt_files

log = logging.getLogger("assay.api")

MART_SCHEMA = "gold"

Kind = Literal["integer", "number", "string", "date", "timestamp", "boolean", "other"]

# information_schema.columns.data_type -> how the API parses, filters and documents the column.
_KINDS: dict[str, Kind] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "number",
    "real": "number",
    "double precision": "number",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "uuid": "string",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamp",
    "boolean": "boolean",
}


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str
    nullable: bool
    description: str
    kind: Kind
    scale: tuple[int, int] | None = None
    """(precision, scale) of a constrained `numeric`; None otherwise."""

    @property
    def filterable(self) -> bool:
        return self.kind != "other"

    @property
    def orderable(self) -> bool:
        # range filters and sorting; booleans only compare for equality
        return self.kind not in ("other", "boolean")


@dataclass(frozen=True)
class MartSpec:
    """A gold model as the manifest describes it (no database needed)."""

    name: str
    schema: str
    table: str
    description: str
    column_descriptions: dict[str, str]
    unique_keys: tuple[tuple[str, ...], ...]
    not_null: frozenset[str]


@dataclass(frozen=True)
class Mart:
    name: str
    schema: str
    table: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    """Columns that identify a row: the order of pagination and the lookup's parameters."""
    key_is_unique: bool
    """False when no tested unique key exists and the key is every column (see README)."""
    by_name: dict[str, Column] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})


@dataclass(frozen=True)
class Catalog:
    marts: dict[str, Mart]
    missing: tuple[str, ...]
    """Gold models in the manifest whose table does not exist (not materialised yet)."""


def load_mart_specs(manifest_path: Path | None = None) -> dict[str, MartSpec]:
    """Every gold model of the manifest (default: the one the pipeline uses) but the time spine, by name."""
    manifest_path = manifest_path or dbt_files.manifest_path()
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"dbt manifest missing at {manifest_path}: run `make setup` "
            "(dagster-dbt project prepare-and-package --file assets/dbt_project.py)"
        )
    manifest = json.loads(manifest_path.read_text())
    nodes = manifest["nodes"]
    models = {
        uid: node
        for uid, node in nodes.items()
        if node["resource_type"] == "model"
        and node["schema"] == MART_SCHEMA
        and node["config"].get("materialized") in ("table", "incremental", "view", "materialized_view")
        and not dbt_files.is_time_spine(node)
    }
    unique: dict[str, list[tuple[str, ...]]] = {uid: [] for uid in models}
    not_null: dict[str, set[str]] = {uid: set() for uid in models}
    for node in nodes.values():
        if node["resource_type"] != "test" or node.get("attached_node") not in models:
            continue
        meta = node.get("test_metadata") or {}
        kwargs = meta.get("kwargs") or {}
        target = node["attached_node"]
        if meta.get("name") == "unique" and node.get("column_name"):
            unique[target].append((node["column_name"],))
        elif meta.get("name") == "not_null" and node.get("column_name"):
            not_null[target].add(node["column_name"])
        elif meta.get("name") in ("unique_combination", "unique_combination_of_columns"):
            columns = kwargs.get("columns") or kwargs.get("combination_of_columns") or []
            if columns and all(isinstance(c, str) for c in columns):
                unique[target].append(tuple(columns))
    return {
        node["name"]: MartSpec(
            name=node["name"],
            schema=node["schema"],
            table=node.get("alias") or node["name"],
            description=(node.get("description") or "").strip(),
            column_descriptions={
                name: (col.get("description") or "").strip() for name, col in node["columns"].items()
            },
            unique_keys=tuple(unique[uid]),
            not_null=frozenset(not_null[uid]),
        )
        for uid, node in sorted(models.items(), key=lambda item: item[1]["name"])
    }


def load_catalog(conn: psycopg.Connection, specs: dict[str, MartSpec]) -> Catalog:
    """Join the manifest's marts with their columns as the connected (read-only) role sees them."""
    rows = conn.execute(
        """
        select table_schema, table_name, column_name, data_type, is_nullable = 'YES',
            numeric_precision, numeric_scale
        from information_schema.columns
        where (table_schema, table_name) in (select * from unnest(%s::text[], %s::text[]))
        order by table_schema, table_name, ordinal_position
        """,
        [[s.schema for s in specs.values()], [s.table for s in specs.values()]],
    ).fetchall()
    found: dict[tuple[str, str], list[tuple[str, str, bool, tuple[int, int] | None]]] = {}
    for schema, table, column, data_type, nullable, precision, scale in rows:
        numeric = (precision, scale) if data_type == "numeric" and precision is not None else None
        found.setdefault((schema, table), []).append((column, data_type, nullable, numeric))
    marts: dict[str, Mart] = {}
    missing = []
    for spec in specs.values():
        described = found.get((spec.schema, spec.table))
        if not described:
            log.warning("mart %s: table %s.%s not found or not readable", spec.name, spec.schema, spec.table)
            missing.append(spec.name)
            continue
        columns = tuple(
            Column(
                name=name,
                pg_type=data_type,
                nullable=nullable,
                description=spec.column_descriptions.get(name, ""),
                kind=_KINDS.get(data_type, "other"),
                scale=numeric,
            )
            for name, data_type, nullable, numeric in described
        )
        key, unique = _choose_key(spec, columns)
        marts[spec.name] = Mart(
            name=spec.name,
            schema=spec.schema,
            table=spec.table,
            description=spec.description,
            columns=columns,
            key=key,
            key_is_unique=unique,
        )
    return Catalog(marts=marts, missing=tuple(missing))


def _choose_key(spec: MartSpec, columns: tuple[Column, ...]) -> tuple[tuple[str, ...], bool]:
    """The shortest tested unique key whose columns are all tested not-null and orderable.

    Without one, every orderable column is the key: pagination stays complete unless two rows are
    identical in all of them (then the page boundary may fall between them and one is skipped).
    """
    by_name = {c.name: c for c in columns}
    position = {c.name: i for i, c in enumerate(columns)}
    candidates = [
        key
        for key in spec.unique_keys
        if all(name in by_name and by_name[name].orderable for name in key)
        and all(name in spec.not_null or not by_name[name].nullable for name in key)
    ]
    if candidates:
        best = min(candidates, key=lambda k: (len(k), [position[n] for n in k]))
        return best, True
    log.warning("mart %s has no tested unique key; paginating over all its columns", spec.name)
    return tuple(c.name for c in columns if c.orderable), False
