"""`/v1/marts`: the gold marts, listed with their columns and read page by page.

Each mart gets its own `/rows` and `/lookup` operations, built at start-up from the catalog, so the
OpenAPI schema (and /docs) shows that mart's real columns, types, descriptions and filters.
"""

import csv
import datetime as dt
import io
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Request
from pydantic import BaseModel, Field, create_model
from starlette.responses import Response

from assay.api import compression
from assay.api.audit import note
from assay.api.cache import Cached
from assay.api.catalog import Column, Kind, Mart
from assay.api.errors import ApiError, bad_request, error_responses
from assay.api.keys import Principal
from assay.api.query import (
    IS_VALUES,
    LIST_OPS,
    OR_OPS,
    PATTERN_OPS,
    RANGE_OPS,
    build_count_query,
    build_lookup_query,
    build_page_query,
    check_key_unmasked,
    column_ops,
    encode_cursor,
    filter_params,
    parse_page_request,
    parse_value,
)
from assay.api.state import SECURED, AppState, authenticate

SCOPE = "marts"
TAG = "marts"


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="PostgreSQL type")
    kind: Kind
    nullable: bool
    description: str
    filters: list[str] = Field(
        description="Operators this column accepts as <column>__<op>; eq is <column>; in and nin repeat"
    )
    sortable: bool
    masked: bool = Field(
        False, description="This API key reads the column as null and cannot filter or sort on it"
    )


class MartInfo(BaseModel):
    name: str
    description: str
    key: list[str] = Field(description="Columns identifying a row: pagination order, lookup parameters")
    key_is_unique: bool
    rows: str
    lookup: str | None
    columns: list[ColumnInfo]


class MartList(BaseModel):
    marts: list[MartInfo]


_PY_TYPES: dict[Kind, Any] = {
    "integer": int,
    "number": float,
    "string": str,
    "date": dt.date,
    "timestamp": dt.datetime,
    "boolean": bool,
    "other": Any,
}


def _value_schema(column: Column) -> dict[str, Any]:
    schema: dict[str, Any]
    if column.kind == "integer":
        limit = 10**18 - 1
        schema = {"type": "integer", "minimum": -limit, "maximum": limit}
    elif column.kind == "number":
        schema = {"type": "number"}
    elif column.kind == "date":
        schema = {"type": "string", "format": "date"}
    elif column.kind == "timestamp":
        schema = {"type": "string", "format": "date-time"}
    elif column.kind == "boolean":
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string", "maxLength": 1000, "pattern": "^[^\\x00]*$"}
    return schema


def _info(mart: Mart, masked: frozenset[str] = frozenset()) -> MartInfo:
    return MartInfo(
        name=mart.name,
        description=mart.description,
        key=list(mart.key),
        key_is_unique=mart.key_is_unique,
        rows=f"/v1/marts/{mart.name}/rows",
        lookup=f"/v1/marts/{mart.name}/lookup" if mart.key_is_unique else None,
        columns=[
            ColumnInfo(
                name=c.name,
                type=c.pg_type,
                kind=c.kind,
                nullable=c.nullable,
                description=c.description,
                filters=[] if c.name in masked else column_ops(c),
                sortable=c.orderable and c.name not in masked,
                masked=c.name in masked,
            )
            for c in mart.columns
        ],
    )


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _row_model(mart: Mart) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for c in mart.columns:
        # a column outside the key may be masked for some API keys, which read it as null
        nullable = c.nullable or c.name not in mart.key
        annotation = _PY_TYPES[c.kind] | None if nullable else _PY_TYPES[c.kind]
        fields[c.name] = (annotation, Field(description=c.description or None))
    return create_model(f"{_camel(mart.name)}Row", __doc__=mart.description or None, **fields)


def _rows_parameters(mart: Mart, max_limit: int, default_limit: int, max_in: int) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, (column, op) in filter_params(mart).items():
        value = _value_schema(column)
        about = column.description or column.name
        if op == "eq":
            described = f"`{column.name} =` value. {about}"
            params.append({"name": name, "in": "query", "description": described, "schema": value})
        elif op == "neq":
            described = f"`{column.name} <>` value (rows where it is null do not match). {about}"
            params.append({"name": name, "in": "query", "description": described, "schema": value})
        elif op == "is":
            schema = {"type": "string", "enum": list(IS_VALUES)}
            described = f"`null` or `notnull`. {about}"
            params.append({"name": name, "in": "query", "description": described, "schema": schema})
        elif op in PATTERN_OPS:
            described = f"`{PATTERN_OPS[op]}` pattern: `%` any text, `_` one character. {about}"
            params.append({"name": name, "in": "query", "description": described, "schema": value})
        elif op in LIST_OPS:
            which = "One of" if op == "in" else "None of"
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "description": f"{which} these values (repeat the parameter). {about}",
                    "schema": {"type": "array", "items": value, "minItems": 1, "maxItems": max_in},
                    "style": "form",
                    "explode": True,
                }
            )
        else:
            # in code: a description starting with `>` would render as a Markdown quote, `<` as a tag
            described = f"`{column.name} {RANGE_OPS[op]}` value. {about}"
            params.append({"name": name, "in": "query", "description": described, "schema": value})
    sortable = [c.name for c in mart.columns if c.orderable]
    params += [
        {
            "name": "sort",
            "in": "query",
            "description": "Columns to order by, `-` for descending (nulls last); the key "
            f"({', '.join(mart.key)}) is appended to make the order total.",
            "schema": {
                "type": "array",
                "items": {"type": "string", "enum": [p + n for n in sortable for p in ("", "-")]},
                "maxItems": len(sortable),
                "uniqueItems": True,
            },
            "style": "form",
            "explode": False,
        },
        {
            "name": "limit",
            "in": "query",
            "description": "Rows per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "`next_cursor` of the previous page (keep the same `sort`).",
            "schema": {"type": "string", "maxLength": 2048},
        },
        {
            "name": "format",
            "in": "query",
            "description": "json (default) or csv (also chosen by `Accept: text/csv`).",
            "schema": {"type": "string", "enum": ["json", "csv"]},
        },
        {
            "name": "or",
            "in": "query",
            "description": "Any of these conditions: `(column.op.value,...)`, op one of "
            f'{", ".join(OR_OPS)}; `"..."` quotes a value with commas or parentheses. Repeat for '
            "several groups (all apply).",
            "schema": {"type": "array", "items": {"type": "string", "maxLength": 2048}},
            "style": "form",
            "explode": True,
        },
        {
            "name": "select",
            "in": "query",
            "description": "Only these columns, in this order (an unknown column is a 400).",
            "schema": {
                "type": "array",
                "items": {"type": "string", "enum": [c.name for c in mart.columns]},
                "maxItems": len(mart.columns),
                "uniqueItems": True,
            },
            "style": "form",
            "explode": False,
        },
        {
            "name": "count",
            "in": "query",
            "description": "exact: also count the rows matching the filters (`total`, `Content-Range: */N`).",
            "schema": {"type": "string", "enum": ["exact"]},
        },
    ]
    return params


ERRORS = error_responses(400, 401, 403, 404, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    marts = state.catalog.marts
    # the per-mart routes first: routes are matched in order, and they are the busy ones
    for mart in marts.values():
        _add_mart_routes(app, state, mart)

    @app.get(
        "/v1/marts",
        tags=[TAG],
        responses=ERRORS,
        response_model=MartList,
        summary="List the marts this key may read",
        openapi_extra=SECURED,
    )
    async def list_marts(request: Request) -> MartList:
        principal = await authenticate(request)
        principal.require(SCOPE)
        return MartList(
            marts=[_info(m, principal.masked(m.name)) for m in marts.values() if principal.may_read(m.name)]
        )

    names = sorted(marts)

    @app.get(
        "/v1/marts/{mart}",
        tags=[TAG],
        responses=ERRORS,
        response_model=MartInfo,
        summary="One mart's columns, types and key",
        openapi_extra=SECURED,
    )
    async def describe_mart(
        mart: Annotated[str, Path(description=f"One of: {', '.join(names)}")],
        request: Request,
    ) -> MartInfo:
        found, principal = await readable_mart(request, marts, mart)
        return _info(found, principal.masked(found.name))


async def readable_mart(request: Request, marts: dict[str, Mart], name: str) -> tuple[Mart, Principal]:
    """The mart `name` and this request's key: 401 without a valid key, 403 outside the marts scope or
    the key's marts, 404 when there is no such mart (asked after the scope, so it reveals nothing)."""
    principal = await authenticate(request)
    principal.require(SCOPE)
    found = marts.get(name)
    if found is None:
        raise ApiError(404, f"no mart {name!r}; marts are {', '.join(sorted(marts))}")
    principal.require(SCOPE, found.name)
    return found, principal


def _add_fast_route(app: FastAPI, path: str, endpoint) -> None:
    """Serve `path` with a plain Starlette route, ahead of the FastAPI route of the same path.

    The handlers take only the request and parse it themselves, so FastAPI's per-request parameter
    machinery would be pure overhead (a third of a cached page's time). The FastAPI route added
    right after stays for the OpenAPI document and /docs; requests never reach it.
    """
    endpoint.route_path = path  # the metrics' route label (see GuardMiddleware)
    app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)


def _response(request: Request, entry: Cached, max_age: int) -> Response:
    """The entry as a response: 304 when the client holds this body already (`If-None-Match`),
    br or gzip when the client accepts it and it is worth it, with an ETag and how long to trust it."""
    headers = {"ETag": entry.etag, "Cache-Control": f"private, max-age={max_age}", "Vary": "Accept-Encoding"}
    if entry.cursor:
        headers["X-Next-Cursor"] = entry.cursor
    if entry.total is not None:
        headers["Content-Range"] = f"*/{entry.total}"  # PostgREST's count=exact, without an offset
    modified = entry.last_modified
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified, usegmt=True)
    if _not_modified(request, entry.etag, modified):
        return Response(status_code=304, headers=headers)
    note(request.scope, rows=entry.rows)
    encoding = compression.negotiate(request.headers.get("accept-encoding", ""))
    if encoding is not None and len(entry.body) >= compression.MIN_BYTES:
        headers["Content-Encoding"] = encoding
        return Response(entry.encoded(encoding), media_type=entry.media_type, headers=headers)
    return Response(entry.body, media_type=entry.media_type, headers=headers)


def _not_modified(request: Request, etag: str, modified: dt.datetime | None) -> bool:
    """RFC 9110: `If-None-Match` decides when present; otherwise `If-Modified-Since` (a date the
    client got from `Last-Modified`; an unparsable one is ignored, as is a year past 9999)."""
    given = request.headers.get("if-none-match")
    if given is not None:
        return given.strip() == "*" or etag in (t.strip() for t in given.split(","))
    since = request.headers.get("if-modified-since")
    if since is None or modified is None:
        return False
    try:
        return modified <= parsedate_to_datetime(since)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year such as 99999999999
        return False


def _csv_by_accept(accept: str) -> bool:
    return "text/csv" in accept and "application/json" not in accept


def _add_mart_routes(app: FastAPI, state: AppState, mart: Mart) -> None:
    settings = state.settings
    cache = state.cache
    # a client may keep a page as long as the server would (one version poll), then revalidate
    max_age = int(settings.cache_poll_seconds) if cache.enabled else 0
    allowed = filter_params(mart)
    row_model = _row_model(mart)
    page_model = create_model(
        f"{_camel(mart.name)}Page",
        mart=(str, ...),
        rows=(list[row_model], ...),
        next_cursor=(str | None, Field(description="Pass as `cursor` for the next page; null on the last")),
        total=(int | None, Field(None, description="`count=exact`: rows matching the filters, all pages")),
    )
    mart_json = orjson.dumps(mart.name).decode()

    async def read_rows(request: Request) -> Response:
        principal = await authenticate(request)
        principal.require(SCOPE, mart.name)
        accept = request.headers.get("accept", "")
        masked = principal.masked(mart.name)
        # the raw query string is the key: a request that was valid once is valid again; and the key's
        # masks, so that a page rendered for one key never reaches a key with other masks
        key = (mart.name, "rows", request.scope["query_string"], _csv_by_accept(accept), masked)
        hit, version = cache.lookup(mart.name, key)
        if hit is not None:
            return _response(request, hit, max_age)
        if version is None:
            return _response(request, await render(request, accept, key, version, masked), max_age)
        entry = await cache.single_flight(key, lambda: render(request, accept, key, version, masked))
        return _response(request, entry, max_age)

    async def render(
        request: Request, accept: str, key: tuple, version: tuple | None, masked: frozenset[str]
    ) -> Cached:
        page = parse_page_request(
            mart,
            request.query_params.multi_items(),
            allowed,
            default_limit=min(settings.page_size_default, settings.page_size_max),
            max_limit=settings.page_size_max,
            max_in=settings.max_in_values,
            accept=accept,
            masked=masked,
        )
        query, params = build_page_query(mart, page)
        rows = await state.db.fetch(query, params)
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        n_order = len(page.order)
        cursor = encode_cursor(page, rows[-1][-n_order:]) if more and rows else None
        total = None
        if page.count:
            total = (await state.db.fetch(*build_count_query(mart, page)))[0][0]
        if page.csv:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([c.name for c in page.columns or mart.columns])
            writer.writerows(r[:-n_order] for r in rows)
            entry = Cached(
                version, out.getvalue().encode(), "text/csv; charset=utf-8", cursor, total, len(rows)
            )
        else:
            counted = "" if total is None else f',"total":{total}'
            body = '{"mart":%s,"rows":[%s],"next_cursor":%s%s}' % (  # noqa: UP031 - rows are JSON already
                mart_json,
                ",".join(r[0] for r in rows),
                orjson.dumps(cursor).decode(),
                counted,
            )
            entry = Cached(version, body.encode(), "application/json", cursor, total, len(rows))
        if version is not None:
            cache.put(key, entry)
        return entry

    _add_fast_route(app, f"/v1/marts/{mart.name}/rows", read_rows)
    app.add_api_route(
        f"/v1/marts/{mart.name}/rows",
        read_rows,
        tags=[TAG],
        methods=["GET"],
        name=f"read_{mart.name}",
        operation_id=f"read_{mart.name}",
        summary=f"Read {mart.name}: filter, sort, page",
        description=(mart.description or "") + "\n\nRows come in pages of `limit`; follow `next_cursor`.",
        response_model=None,
        responses={
            **ERRORS,
            200: {
                "model": page_model,
                "description": "A page of rows",
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "headers": {
                    "X-Next-Cursor": {"schema": {"type": "string"}, "description": "next page"},
                    "Content-Range": {"schema": {"type": "string"}, "description": "count=exact: */<total>"},
                },
            },
        },
        openapi_extra={
            **SECURED,
            "parameters": _rows_parameters(
                mart,
                settings.page_size_max,
                min(settings.page_size_default, settings.page_size_max),
                settings.max_in_values,
            ),
        },
    )

    if not mart.key_is_unique:
        return
    key_columns = [mart.by_name[name] for name in mart.key]
    lookup_query = build_lookup_query(mart)

    async def lookup(request: Request) -> Response:
        principal = await authenticate(request)
        principal.require(SCOPE, mart.name)
        masked = principal.masked(mart.name)
        key = (mart.name, "lookup", request.scope["query_string"], masked)
        hit, version = cache.lookup(mart.name, key)
        if hit is not None:
            return _response(request, hit, max_age)
        if version is None:
            return _response(request, await find(request, key, version, masked), max_age)
        return _response(
            request, await cache.single_flight(key, lambda: find(request, key, version, masked)), max_age
        )

    async def find(request: Request, key: tuple, version: tuple | None, masked: frozenset[str]) -> Cached:
        check_key_unmasked(mart, masked)
        given = request.query_params
        unknown = [name for name in given if name not in mart.key]
        if unknown:
            raise bad_request(f"unknown parameter {unknown[0]!r}; a lookup takes {', '.join(mart.key)}")
        values = []
        for column in key_columns:
            texts = given.getlist(column.name)
            if len(texts) != 1:
                raise bad_request(f"{column.name}: give exactly one value (the key is {', '.join(mart.key)})")
            values.append(parse_value(column, texts[0], column.name))
        rows = await state.db.fetch(build_lookup_query(mart, masked) if masked else lookup_query, values)
        if not rows:
            raise ApiError(404, f"no row of {mart.name} with that key")
        entry = Cached(version, rows[0][0].encode(), "application/json", None, rows=1)
        if version is not None:
            cache.put(key, entry)
        return entry

    _add_fast_route(app, f"/v1/marts/{mart.name}/lookup", lookup)
    app.add_api_route(
        f"/v1/marts/{mart.name}/lookup",
        lookup,
        tags=[TAG],
        methods=["GET"],
        name=f"lookup_{mart.name}",
        operation_id=f"lookup_{mart.name}",
        summary=f"One row of {mart.name} by its key ({', '.join(mart.key)})",
        response_model=None,
        responses={**ERRORS, 200: {"model": row_model, "description": "The row"}},
        openapi_extra={
            **SECURED,
            "parameters": [
                {
                    "name": c.name,
                    "in": "query",
                    "required": True,
                    "description": c.description or c.name,
                    "schema": _value_schema(c),
                }
                for c in key_columns
            ],
        },
    )
