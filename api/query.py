"""Turn a mart request's query string into one parameterised SELECT.

Query parameters (per mart, documented in the OpenAPI schema):
- `<column>=v` equality, `<column>__neq=v` inequality (rows where the column is null do not match);
  `<column>__in=a&<column>__in=b` membership, `<column>__nin=...` its negation (repeat the parameter);
  `<column>__is=null|notnull`; `<column>__like|__ilike=pat` on text (`%`, `_` wildcards, bound);
  `<column>__gt|__gte|__lt|__lte=v` ranges on numbers, dates, timestamps and text;
- `sort=col,-other` (or repeated): order, `-` for descending, nulls last; the mart's unique key is
  appended, so the order is total;
- `limit`, `cursor` (keyset pagination: the `next_cursor` of the previous page), `format=json|csv`;
- `or=(col.eq.a,other.lt.b)`: any of these conditions (PostgREST style; `"..."` quotes a value with
  commas or parentheses; repeat `or` for several groups, each and-ed with the rest);
- `select=col,other` (or repeated): only these columns, in this order; `count=exact`: also the number
  of rows matching the filters (all pages), as `total` and a `Content-Range: */<total>` header.

Every value is parsed by its column's type and bound as a parameter; every identifier comes from the
catalog and is quoted with `sql.Identifier`. Nothing from the request is ever spliced into SQL text.

Columns the API key masks (`PageRequest.masked`) are rendered as null in every format, and a filter
or sort on one is refused with 403 (its answers would disclose the values by bisection).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from psycopg import sql

from assay.api.catalog import Column, Kind, Mart
from assay.api.errors import ApiError, bad_request

RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
LIST_OPS = ("in", "nin")  # repeat the parameter for several values
PATTERN_OPS = {"like": "like", "ilike": "ilike"}  # text columns; % and _ are the wildcards
IS_VALUES = {"null": True, "notnull": False}  # <column>__is=null | notnull
RESERVED = ("limit", "cursor", "sort", "format", "select", "count", "or")
OR_OPS = ("eq", "neq", "is", *RANGE_OPS, *PATTERN_OPS)  # `or=(col.op.value,...)`: one value per term
MAX_TEXT = 1000

# re.ASCII: `\d` alone also matches other scripts' digits (U+0663, ...), which int() and Decimal()
# would then read; `str.isdigit()` is wider still (U+00B2, U+2460: int() raises on those).
_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)
_LIMIT = re.compile(r"\d{1,9}", re.ASCII)
_NUMBER = re.compile(r"[+-]?(\d{1,40}(\.\d{0,40})?|\.\d{1,40})([eE][+-]?\d{1,3})?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII
)
_BOOL = {"true": True, "1": True, "false": False, "0": False}


def _parse_int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise ValueError("an integer")
    return int(text)


def _parse_number(text: str) -> Decimal:
    if not _NUMBER.fullmatch(text):
        raise ValueError("a decimal number")
    return Decimal(text)


def _parse_string(text: str) -> str:
    if "\x00" in text or len(text) > MAX_TEXT:
        raise ValueError(f"text without NUL characters, at most {MAX_TEXT} characters")
    return text


def _parse_date(text: str) -> dt.date:
    try:
        if _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError("a date (YYYY-MM-DD)")


def _parse_timestamp(text: str) -> dt.datetime:
    try:
        if _TIMESTAMP.fullmatch(text):
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    raise ValueError("an ISO 8601 timestamp")


def _parse_bool(text: str) -> bool:
    try:
        return _BOOL[text.lower()]
    except KeyError:
        raise ValueError("true or false") from None


PARSERS: dict[Kind, Callable[[str], Any]] = {
    "integer": _parse_int,
    "number": _parse_number,
    "string": _parse_string,
    "date": _parse_date,
    "timestamp": _parse_timestamp,
    "boolean": _parse_bool,
}


def parse_value(column: Column, text: str, param: str) -> Any:
    try:
        return PARSERS[column.kind](text)
    except (ValueError, InvalidOperation) as exc:
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "a valid value"
        raise bad_request(f"{param}: expected {reason} for column {column.name} ({column.pg_type})") from None


def to_text(column: Column, value: Any) -> str | None:
    """A fetched key value as text its column's parser reads back (for cursors)."""
    if value is None:
        return None
    if column.kind == "boolean":
        return "true" if value else "false"
    if column.kind in ("date", "timestamp"):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Filter:
    column: Column
    op: str  # "eq" | "neq" | "is" | one of LIST_OPS, RANGE_OPS, PATTERN_OPS | "or" (value: Filters)
    value: Any


def filter_params(mart: Mart) -> dict[str, tuple[Column, str]]:
    """Every filter parameter the mart accepts: name -> (column, operator)."""
    params: dict[str, tuple[Column, str]] = {}
    for column in mart.columns:
        if not column.filterable or column.name in RESERVED:
            continue
        for op in column_ops(column):
            params[column.name if op == "eq" else f"{column.name}__{op}"] = (column, op)
    return params


def column_ops(column: Column) -> list[str]:
    """The filter operators a column accepts (`<column>__<op>`; eq is plain `<column>`)."""
    if not column.filterable:
        return []
    ops = ["eq", "neq", *LIST_OPS, "is"]
    if column.orderable:
        ops += RANGE_OPS
    if column.kind == "string":
        ops += PATTERN_OPS
    return ops


@dataclass(frozen=True)
class PageRequest:
    filters: tuple[Filter, ...]
    order: tuple[tuple[Column, bool], ...]  # (column, descending)
    limit: int
    after: tuple[Any, ...] | None
    csv: bool
    columns: tuple[Column, ...] = ()  # `select`; empty: all of them
    count: bool = False  # `count=exact`
    masked: frozenset[str] = frozenset()  # columns the key reads as null

    @property
    def sort_signature(self) -> str:
        return ",".join(("-" if desc else "") + c.name for c, desc in self.order)


def parse_page_request(
    mart: Mart,
    params: Sequence[tuple[str, str]],
    allowed: dict[str, tuple[Column, str]],
    *,
    default_limit: int,
    max_limit: int,
    max_in: int,
    accept: str = "",
    masked: frozenset[str] = frozenset(),
) -> PageRequest:
    check_key_unmasked(mart, masked)
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    unknown = [name for name in grouped if name not in allowed and name not in RESERVED]
    if unknown:
        raise bad_request(
            f"unknown parameter {unknown[0]!r}; filters are <column>, <column>__neq|in|nin|is|gte|gt|lte|lt"
            " (like|ilike on text) "
            f"on {mart.name}'s columns ({', '.join(c.name for c in mart.columns)}), "
            f"plus {', '.join(RESERVED)}"
        )
    for name in ("limit", "cursor", "format", "count"):
        if len(grouped.get(name, ())) > 1:
            raise bad_request(f"{name} given more than once")

    filters = [_parse_or(mart, text, allowed, max_in, masked) for text in grouped.get("or", [])]
    for name, values in grouped.items():
        if name in RESERVED:
            continue
        column, op = allowed[name]
        if column.name in masked:
            raise masked_column(mart, column, name)
        if op in LIST_OPS:
            if len(values) > max_in:
                raise bad_request(f"{name}: at most {max_in} values")
            parsed = [parse_value(column, v, name) for v in values]
            filters.append(Filter(column, op, parsed))
            continue
        if len(values) > 1:
            hint = f"; use {column.name}__in for several values" if op == "eq" else ""
            raise bad_request(f"{name} given more than once{hint}")
        if op == "is":
            if values[0] not in IS_VALUES:
                raise bad_request(f"{name}: expected null or notnull")
            filters.append(Filter(column, op, IS_VALUES[values[0]]))
        else:
            filters.append(Filter(column, op, parse_value(column, values[0], name)))

    order = _parse_sort(mart, grouped.get("sort", []), masked)

    limit = default_limit
    if "limit" in grouped:
        text = grouped["limit"][0]
        if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= max_limit:
            raise bad_request(f"limit: expected a whole number from 1 to {max_limit}")
        limit = int(text)

    fmt = grouped.get("format", [""])[0]
    if fmt not in ("", "json", "csv"):
        raise bad_request("format: expected json or csv")
    csv = fmt == "csv" or (not fmt and "text/csv" in accept and "application/json" not in accept)

    if grouped.get("count", ["exact"]) != ["exact"]:
        raise bad_request("count: the only choice is exact")
    columns = _parse_select(mart, grouped["select"]) if "select" in grouped else ()
    request = PageRequest(tuple(filters), order, limit, None, csv, columns, "count" in grouped, masked)
    if "cursor" in grouped:
        request = replace(request, after=decode_cursor(mart, request, grouped["cursor"][0]))
    return request


def masked_column(mart: Mart, column: Column, param: str) -> ApiError:
    return ApiError(
        403,
        f"{param}: this API key masks {mart.name}.{column.name} (it reads as null), so it cannot filter or"
        " sort on it; use a key without that mask",
    )


def check_key_unmasked(mart: Mart, masked: frozenset[str]) -> None:
    """Refuse a key that masks a column of the mart's key: cursors and lookups would disclose it.
    (`assay api-key create` refuses such a mask; this holds should the catalog choose another key.)"""
    hidden = [name for name in mart.key if name in masked]
    if hidden:
        raise ApiError(
            403,
            f"this API key masks {mart.name}.{hidden[0]}, part of the mart's key (cursors and lookups"
            " carry it), so it cannot read this mart; use a key without that mask",
        )


_OR_TERM = re.compile(r'\s*([^.,()"]+)\.([a-z]+)\.("(?:[^"\\]|\\.)*"|[^,()"]*)\s*(,|$)')


def _parse_or(
    mart: Mart, text: str, allowed: dict[str, tuple[Column, str]], max_in: int, masked: frozenset[str]
) -> Filter:
    """`(col.op.value,...)` as one Filter whose value is its terms; each term is checked against the
    same allowlist as a plain filter (`col` for eq, `col__op` otherwise) and its value parsed by type."""
    usage = "or: expected (column.op.value,...), e.g. or=(category.eq.travel,total_amount_eur.gt.100)"
    if not (text.startswith("(") and text.endswith(")")) or len(text) < 3:
        raise bad_request(usage)
    inner, terms, at = text[1:-1], [], 0
    while at < len(inner):
        match = _OR_TERM.match(inner, at)
        if match is None:
            raise bad_request(f"{usage}; could not read {inner[at : at + 40]!r}")
        name, op, raw, _ = match.groups()
        name = name.strip()
        found = allowed.get(name if op == "eq" else f"{name}__{op}")
        if op not in OR_OPS or found is None or found[1] != op:
            raise bad_request(
                f"or: {name}.{op} is not a filter of {mart.name} (operators here: {', '.join(OR_OPS)}; "
                f"columns: {', '.join(c.name for c in mart.columns)})"
            )
        column = found[0]
        if column.name in masked:
            raise masked_column(mart, column, f"or: {name}.{op}")
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        if op == "is":
            if value not in IS_VALUES:
                raise bad_request(f"or: {name}.is: expected null or notnull")
            terms.append(Filter(column, op, IS_VALUES[value]))
        else:
            terms.append(Filter(column, op, parse_value(column, value, f"or: {name}")))
        at = match.end()
    if not 1 <= len(terms) <= max_in:
        raise bad_request(f"or: give 1 to {max_in} conditions")
    return Filter(terms[0].column, "or", tuple(terms))


def _parse_select(mart: Mart, values: list[str]) -> tuple[Column, ...]:
    names = [name.strip() for value in values for name in value.split(",")]
    unknown = [name for name in names if name not in mart.by_name]
    if unknown:
        raise bad_request(
            f"select: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"{mart.name}'s columns are {', '.join(c.name for c in mart.columns)}"
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise bad_request(f"select: {', '.join(map(repr, twice))} given twice")
    return tuple(mart.by_name[name] for name in names)


def _parse_sort(mart: Mart, values: list[str], masked: frozenset[str]) -> tuple[tuple[Column, bool], ...]:
    order: list[tuple[Column, bool]] = []
    seen: set[str] = set()
    for token in (t.strip() for v in values for t in v.split(",")):
        if not token:
            continue
        desc = token.startswith("-")
        name = token[1:] if desc else token
        column = mart.by_name.get(name)
        if column is None or not column.orderable:
            sortable = ", ".join(c.name for c in mart.columns if c.orderable)
            raise bad_request(f"sort: {name!r} is not a sortable column of {mart.name} ({sortable})")
        if name in masked:
            raise masked_column(mart, column, "sort")
        if name in seen:
            raise bad_request(f"sort: {name!r} given twice")
        seen.add(name)
        order.append((column, desc))
    # the key makes the order total, so keyset pagination never skips or repeats a row
    order.extend((mart.by_name[name], False) for name in mart.key if name not in seen)
    return tuple(order)


def encode_cursor(request: PageRequest, values: Sequence[Any]) -> str:
    texts = [to_text(column, v) for (column, _), v in zip(request.order, values, strict=True)]
    raw = orjson.dumps({"s": request.sort_signature, "v": texts})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(mart: Mart, request: PageRequest, cursor: str) -> tuple[Any, ...]:
    invalid = bad_request("cursor: not a cursor this endpoint returned; start again without one")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid from None
    if not isinstance(payload, dict) or not isinstance(payload.get("v"), list):
        raise invalid
    if payload.get("s") != request.sort_signature:
        raise bad_request("cursor: it belongs to a different sort order; keep `sort` as on the first page")
    texts = payload["v"]
    if len(texts) != len(request.order):
        raise invalid
    values = []
    for (column, _), text in zip(request.order, texts, strict=True):
        if text is None:
            values.append(None)
        elif isinstance(text, str):
            values.append(parse_value(column, text, "cursor"))
        else:
            raise invalid
    return tuple(values)


def _col(column: Column) -> sql.Composable:
    return sql.SQL("t.{}").format(sql.Identifier(column.name))


def _after(request: PageRequest, params: list[Any]) -> sql.Composable:
    """Rows strictly after the cursor row in (sort..., key...) order, nulls last in every column.

    `(c1 after v1) or (c1 = v1 and c2 after v2) or ...`, where "after" includes null (nulls sort last)
    and a null cursor value has nothing after it but the rows equal to it (null) on that column.
    """
    assert request.after is not None
    terms: list[sql.Composable] = []
    prefix: list[sql.Composable] = []
    prefix_values: list[Any] = []
    for (column, desc), value in zip(request.order, request.after, strict=True):
        if value is not None:
            after = sql.SQL("{} {} %s").format(_col(column), sql.SQL("<" if desc else ">"))
            if column.nullable:
                after = sql.SQL("({} or {} is null)").format(after, _col(column))
            terms.append(sql.SQL(" and ").join([*prefix, after]))
            params.extend([*prefix_values, value])
            prefix.append(sql.SQL("{} = %s").format(_col(column)))
            prefix_values.append(value)
        else:
            prefix.append(sql.SQL("{} is null").format(_col(column)))
    if not terms:
        return sql.SQL("false")
    return sql.SQL("({})").format(sql.SQL(" or ").join(sql.SQL("({})").format(t) for t in terms))


def _filters(request: PageRequest, params: list[Any]) -> list[sql.Composable]:
    """The request's filters as conditions, their values appended to `params`."""
    return [_condition(f, params) for f in request.filters]


def _condition(f: Filter, params: list[Any]) -> sql.Composable:
    column = _col(f.column)
    if f.op == "or":
        terms = sql.SQL(" or ").join(_condition(term, params) for term in f.value)
        return sql.SQL("({})").format(terms)
    if f.op == "is":  # no value to bind: the operator itself is the choice
        return sql.SQL("{} is null" if f.value else "{} is not null").format(column)
    params.append(f.value)
    if f.op == "eq":
        return sql.SQL("{} = %s").format(column)
    if f.op == "neq":
        return sql.SQL("{} <> %s").format(column)
    if f.op == "in":
        return sql.SQL("{} = any(%s)").format(column)
    if f.op == "nin":
        return sql.SQL("{} <> all(%s)").format(column)
    if f.op in PATTERN_OPS:
        return sql.SQL("{} {} %s").format(column, sql.SQL(PATTERN_OPS[f.op]))
    return sql.SQL("{} {} %s").format(column, sql.SQL(RANGE_OPS[f.op]))


def _order_by(request: PageRequest) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {} nulls last").format(_col(c), sql.SQL("desc" if desc else "asc"))
        for c, desc in request.order
    )


def _value(column: Column, masked: frozenset[str]) -> sql.Composable:
    """The column's value, or null where the key masks it."""
    return sql.SQL("null") if column.name in masked else _col(column)


def _json_object(columns: Sequence[Column], masked: frozenset[str]) -> sql.Composable:
    """The row's chosen columns as a JSON object's text (`select`), in their order."""
    pairs = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(c.name), _value(c, masked)) for c in columns
    )
    return sql.SQL("json_build_object({})::text").format(pairs)


def _named_values(columns: Sequence[Column], masked: frozenset[str]) -> sql.Composable:
    """The columns as a select list under their own names (a CSV header), masked ones as null."""
    return sql.SQL(", ").join(
        sql.SQL("null as {}").format(sql.Identifier(c.name)) if c.name in masked else _col(c) for c in columns
    )


def _where(where: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" where ") + sql.SQL(" and ").join(where) if where else sql.SQL("")


def build_count_query(mart: Mart, request: PageRequest) -> tuple[sql.Composed, list[Any]]:
    """SELECT count(*) of the rows matching the request's filters (every page: no cursor)."""
    params: list[Any] = []
    query = sql.SQL("select count(*) from {} as t{}").format(
        sql.Identifier(mart.schema, mart.table), _where(_filters(request, params))
    )
    return query, params


def build_page_query(mart: Mart, request: PageRequest) -> tuple[sql.Composed, list[Any]]:
    """SELECT of one page (limit + 1 rows, to know whether another page follows).

    Each row comes back as its JSON object (or its columns as text for CSV) followed by its order
    values, which become the next cursor.
    """
    params: list[Any] = []
    where = _filters(request, params)
    if request.after is not None:
        where.append(_after(request, params))
    columns = request.columns or mart.columns
    if request.csv:
        payload = sql.SQL(", ").join(sql.SQL("{}::text").format(_value(c, request.masked)) for c in columns)
    elif request.columns or request.masked:
        payload = _json_object(columns, request.masked)
    else:
        payload = sql.SQL("to_json(t)::text")
    order_values = sql.SQL(", ").join(_col(c) for c, _ in request.order)
    order_by = _order_by(request)
    # Rows are chosen in the inner query and rendered in the outer one: rendering in the inner query
    # would turn every row of the mart into JSON before the sort picks a page (5x slower here). The
    # outer ORDER BY repeats the inner one; Postgres sees the rows already in that order and skips it.
    template = (
        "select {payload}, {order_values} from"
        " (select * from {table} as t{where} order by {order_by} limit %s) as t"
        " order by {order_by}"
    )
    query = sql.SQL(template).format(
        payload=payload,
        order_values=order_values,
        table=sql.Identifier(mart.schema, mart.table),
        where=_where(where),
        order_by=order_by,
    )
    params.append(request.limit + 1)
    return query, params


def build_export_select(
    mart: Mart, request: PageRequest, casts: Callable[[Sequence[Column]], dict[str, str]]
) -> tuple[sql.Composed, list[Any], tuple[Column, ...]]:
    """SELECT of every row matching the filters, in the request's order, for a typed export (Parquet):
    the chosen columns with their own types, except those `casts` maps to another (a fixed type
    name from the caller's code, never from the request). A masked column comes back null, and
    nullable in the returned columns."""
    params: list[Any] = []
    where = _filters(request, params)
    masked = request.masked
    columns = tuple(
        replace(c, nullable=True) if c.name in masked else c for c in request.columns or mart.columns
    )
    cast = casts(columns)
    payload = sql.SQL(", ").join(
        sql.SQL("null")
        if c.name in masked
        else sql.SQL("{}::{}").format(_col(c), sql.SQL(cast[c.name]))
        if c.name in cast
        else _col(c)
        for c in columns
    )
    query = sql.SQL("select {} from {} as t{} order by {}").format(
        payload, sql.Identifier(mart.schema, mart.table), _where(where), _order_by(request)
    )
    return query, params, columns


def build_export_query(mart: Mart, request: PageRequest, ndjson: bool) -> tuple[sql.Composed, list[Any]]:
    """`COPY (SELECT ...) TO STDOUT` of every row matching the filters, in the request's order: CSV
    with a header, or one JSON object per row (ndjson). psycopg binds the values client-side (COPY
    takes no server-side parameters), quoted by their types like any other bound value."""
    params: list[Any] = []
    where = _filters(request, params)
    columns = request.columns or mart.columns
    if ndjson:
        payload = _json_object(columns, request.masked)
        options = sql.SQL("")
    else:
        payload = _named_values(columns, request.masked)
        options = sql.SQL(" (format csv, header)")
    order_by = _order_by(request)
    query = sql.SQL("copy (select {} from {} as t{} order by {}) to stdout{}").format(
        payload, sql.Identifier(mart.schema, mart.table), _where(where), order_by, options
    )
    return query, params


def build_lookup_query(mart: Mart, masked: frozenset[str] = frozenset()) -> sql.Composed:
    where = sql.SQL(" and ").join(sql.SQL("{} = %s").format(_col(mart.by_name[n])) for n in mart.key)
    payload = _json_object(mart.columns, masked) if masked else sql.SQL("to_json(t)::text")
    return sql.SQL("select {} from {} as t where {} limit 2").format(
        payload, sql.Identifier(mart.schema, mart.table), where
    )
