"""`/v1/marts/{mart}/export`: a whole mart (filtered, sorted, `select`ed as on `/rows`) in one streamed
response, CSV, ndjson or Parquet, without the page cap.

CSV and ndjson come from `COPY ... TO STDOUT` on a pooled connection of the read-only role (same
statement timeout as every read) and go to the client block by block; Parquet from a server-side
cursor, one row group per batch (`assay.api.parquet`). Memory stays flat whatever the size.
Exports are never cached: the ETag cache holds pages, not whole marts.
"""

from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from starlette.responses import StreamingResponse

from assay.api import parquet
from assay.api.audit import note
from assay.api.errors import bad_request, error_responses
from assay.api.query import build_export_query, build_export_select, filter_params, parse_page_request
from assay.api.routers.marts import TAG, readable_mart
from assay.api.state import SECURED, AppState

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
PAGE_ONLY = ("limit", "cursor", "count")  # `/rows` parameters that mean nothing for a whole export
ERRORS = error_responses(400, 401, 403, 404, 409, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    marts = state.catalog.marts
    names = sorted(marts)
    allowed = {name: filter_params(mart) for name, mart in marts.items()}

    @app.get(
        "/v1/marts/{mart}/export",
        tags=[TAG],
        responses={
            **ERRORS,
            200: {
                "description": "Every matching row: CSV with a header, one JSON object per line, or Parquet",
                "content": {media: {"schema": {"type": "string"}} for media in FORMATS.values()},
            },
        },
        response_class=StreamingResponse,
        summary="Stream a whole mart as CSV, ndjson or Parquet (the /rows filters, sort, select; no pages)",
        openapi_extra=SECURED,
    )
    async def export_mart(
        mart: Annotated[str, Path(description=f"One of: {', '.join(names)}")],
        request: Request,
        # a plain str, checked in the handler: a bad format must not be a 400 before the key is checked
        format: Annotated[  # noqa: A002 - the parameter's public name
            str,
            Query(
                description="csv (header row), ndjson or parquet (typed columns, zstd)",
                json_schema_extra={"enum": [*FORMATS]},
            ),
        ] = "csv",
    ) -> StreamingResponse:
        found, principal = await readable_mart(request, marts, mart)
        if format not in FORMATS:
            raise bad_request(f"format: expected one of {', '.join(FORMATS)}")
        given = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
        paged = sorted({k for k, _ in given if k in PAGE_ONLY})
        if paged:
            raise bad_request(f"{', '.join(paged)}: an export streams every matching row; drop it")
        page = parse_page_request(
            found,
            given,
            allowed[mart],
            default_limit=1,
            max_limit=1,
            max_in=state.settings.max_in_values,
            masked=principal.masked(found.name),
        )
        table = f"{found.schema}.{found.table}"
        scope = request.scope

        def counted(rows: int) -> None:  # the access audit's row count, once the stream has ended
            note(scope, rows=rows)

        if format == "parquet":
            select, params, columns = build_export_select(found, page, parquet.casts)
            batches = await state.db.batches(
                select, params, size=parquet.BATCH_ROWS, table=table, counted=counted
            )
            stream = parquet.parquet_stream(batches, columns)
        else:
            statement, params = build_export_query(found, page, ndjson=format == "ndjson")
            stream = await state.db.copy_out(
                statement, params, lines=format == "ndjson", table=table, counted=counted
            )
        disposition = f'attachment; filename="{found.name}.{format}"'
        return StreamingResponse(
            stream, media_type=FORMATS[format], headers={"Content-Disposition": disposition}
        )
