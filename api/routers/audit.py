"""`/v1/audit`: the access audit over the API, who read what, when (as `assay audit`).

Reads `audit.api_access` (one row per admitted request, one per group of refused ones, written by
`api/audit.py`) joined to `api.keys` for the key's name, with the same query as `assay audit`
(`assay.api.audit.HISTORY`), values bound. Its scope `audit` is only given by name: a `*` key does not
have it. Newest first, `limit` rows; `truncated` says more matched (narrow with `since`, `key_id`,
`route`).
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from assay.api.audit import HISTORY, history_params, note
from assay.api.errors import error_responses
from assay.api.state import SECURED, AppState, admit

SCOPE = "audit"
TAG = "audit"
ACCESS = "audit.api_access"
MAX_ROWS = 1000

_TEXT = {"max_length": 200, "pattern": r"^[^\x00]*$"}


class Access(BaseModel):
    accessed_at: AwareDatetime
    key_id: str | None = Field(description="The key's id; null for a refusal without a valid key")
    key_name: str | None
    method: str
    route: str = Field(description="The route's template, e.g. /v1/search or /v1/marts/<mart>/rows")
    mart: str | None = Field(description="The mart read, when the route names one")
    status: int | None = Field(
        description="The response's status (200, 304, 400, 403, 404, 429, 500, ...); null in rows written"
        " before the audit recorded served requests' status"
    )
    client: str | None = Field(description="The client's address (refusals)")
    requests: int = Field(description="How many requests the row stands for (refusals are counted)")
    filters: str | None = Field(description="The query string, decoded, at most 1,000 characters")
    row_count: int | None = Field(
        description="Rows the response carried (a page, an export, a search's hits); null where none apply"
    )
    subject: str | None = Field(
        description="What was asked: a search's or a question's text, an answer's task/key (500 characters)"
    )


class Accesses(BaseModel):
    accesses: list[Access]
    truncated: bool = Field(description="More rows matched than `limit`")


class AuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_id: str | None = Field(None, description="Only this API key's id", **_TEXT)
    since: dt.datetime | None = Field(None, description="From this time (ISO 8601; without offset: UTC)")
    route: str | None = Field(None, description="Routes starting with this, e.g. /v1/marts", **_TEXT)
    refused: bool = Field(False, description="Only refused requests (401, 403, 429)")
    limit: int = Field(100, ge=1, le=MAX_ROWS, description="Newest rows returned")


ERRORS = error_responses(400, 401, 403, 409, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    @app.get(
        "/v1/audit",
        tags=[TAG],
        responses=ERRORS,
        response_model=Accesses,
        summary="Who read what, when: the access audit, newest first (scope audit, never through *)",
        openapi_extra=SECURED,
        dependencies=[admit(SCOPE)],  # key and scope, before any parameter is validated
    )
    async def audit(params: Annotated[AuditParams, Query()], request: Request) -> dict[str, Any]:
        since = params.since
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        values = history_params(params.key_id, since, params.route, params.refused, params.limit + 1)
        rows = await state.db.fetch(HISTORY, values, table=ACCESS)
        note(request.scope, rows=min(len(rows), params.limit))
        return {
            "accesses": [dict(zip(Access.model_fields, r, strict=True)) for r in rows[: params.limit]],
            "truncated": len(rows) > params.limit,
        }
