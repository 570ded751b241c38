"""`/v1/quality/*`: data-quality scores and check status, as the pipeline recorded them.

Reads `quality.dq_scores` (one row per table per run: the four dimensions, overall, threshold) and
`quality.check_results` (one row per check evaluation: dbt tests, DQ gates, GX suites, drift); both
are written by `quality/store.py` and keep their history. By default each endpoint answers the latest
row per table (per check); `history=n` returns the latest n. Filters are bound values.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from psycopg import sql
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from assay.api.audit import note
from assay.api.errors import error_responses
from assay.api.state import SECURED, AppState, admit

SCOPE = "quality"
TAG = "quality"
SCORES = "quality.dq_scores"
CHECKS = "quality.check_results"
MAX_HISTORY = 100
MAX_ROWS = 10_000

_TEXT = {"max_length": 300, "pattern": r"^[^\x00]*$"}


class Score(BaseModel):
    table: str = Field(description="schema.table")
    layer: str
    run_id: str = Field(description="The Dagster run that measured it")
    row_count: int = Field(description="Rows scored: the window's rows when the score has a window")
    input_rows: int = Field(description="Rows the scores are shares of (bronze rows for silver)")
    window_start: dt.date | None = Field(
        description="First day scored (inclusive) for a gate on a daily table's run; null: the whole table"
    )
    window_end: dt.date | None = Field(description="Last day scored (inclusive); null: the whole table")
    table_rows: int | None = Field(
        description="The whole table's rows at the same moment (null on scores from before windows)"
    )
    completeness: float
    uniqueness: float
    validity: float
    timeliness: float
    overall: float
    threshold: float
    passed: bool
    details: dict[str, Any]
    measured_at: AwareDatetime


class CheckResult(BaseModel):
    asset_key: str
    check_name: str
    passed: bool
    severity: str = Field(description="ERROR blocks downstream assets, WARN does not")
    description: str | None
    metadata: dict[str, Any]
    run_id: str
    evaluated_at: AwareDatetime


class Scores(BaseModel):
    scores: list[Score]
    truncated: bool


class Checks(BaseModel):
    checks: list[CheckResult]
    failing: int = Field(description="How many of the listed results did not pass")
    truncated: bool


def _history(what: str):
    return Field(1, ge=1, le=MAX_HISTORY, description=f"The latest n {what} (1: the current state)")


class ScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str | None = Field(None, description="One table (schema.table)", **_TEXT)
    layer: str | None = Field(None, description="silver, gold, ...", **_TEXT)
    history: int = _history("scorings per table")


class CheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_key: str | None = Field(None, description="One asset (e.g. gold/monthly_summary)", **_TEXT)
    check_name: str | None = Field(None, description="One check", **_TEXT)
    passed: bool | None = Field(None, description="Only passing (true) or failing (false) results")
    history: int = _history("evaluations per check")


# Column lists from the response models; `table` is the stored `table_name`.
_SCORE_COLUMNS = sql.SQL(", ").join(
    sql.Identifier("table_name" if name == "table" else name) for name in Score.model_fields
)
_SCORES = sql.SQL(
    "select {columns} from ("
    " select *, row_number() over (partition by table_name order by measured_at desc, run_id desc) as n"
    " from {table}"
    " where (%(table)s::text is null or table_name = %(table)s)"
    " and (%(layer)s::text is null or layer = %(layer)s)"
    ") s where n <= %(history)s order by table_name, n limit %(limit)s"
).format(columns=_SCORE_COLUMNS, table=sql.Identifier(*SCORES.split(".")))

# Filters on passed apply to the latest evaluations, not before choosing them: "failing now".
_CHECKS = sql.SQL(
    "select {columns} from ("
    " select *, row_number() over (partition by asset_key, check_name"
    " order by evaluated_at desc, result_id desc) as n"
    " from {table}"
    " where (%(asset)s::text is null or asset_key = %(asset)s)"
    " and (%(check)s::text is null or check_name = %(check)s)"
    ") c where n <= %(history)s and (%(passed)s::boolean is null or passed = %(passed)s)"
    " order by asset_key, check_name, n limit %(limit)s"
).format(
    columns=sql.SQL(", ").join(map(sql.Identifier, CheckResult.model_fields)),
    table=sql.Identifier(*CHECKS.split(".")),
)

ERRORS = error_responses(400, 401, 403, 409, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    admitted = admit(SCOPE)  # key and scope, before any parameter is validated

    @app.get(
        "/v1/quality/scores",
        tags=[TAG],
        responses=ERRORS,
        response_model=Scores,
        summary="Data-quality scores per table: completeness, uniqueness, validity, timeliness",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def scores(params: Annotated[ScoreParams, Query()], request: Request) -> dict[str, Any]:
        values = {"table": params.table, "layer": params.layer, "history": params.history}
        rows = await state.db.fetch(_SCORES, {**values, "limit": MAX_ROWS + 1}, table=SCORES)
        note(request.scope, rows=min(len(rows), MAX_ROWS))
        return {
            "scores": [dict(zip(Score.model_fields, r, strict=True)) for r in rows[:MAX_ROWS]],
            "truncated": len(rows) > MAX_ROWS,
        }

    @app.get(
        "/v1/quality/checks",
        tags=[TAG],
        responses=ERRORS,
        response_model=Checks,
        summary="The latest result of every asset check (dbt tests, DQ gates, expectations, drift)",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def checks(params: Annotated[CheckParams, Query()], request: Request) -> dict[str, Any]:
        values = {
            "asset": params.asset_key,
            "check": params.check_name,
            "passed": params.passed,
            "history": params.history,
            "limit": MAX_ROWS + 1,
        }
        rows = await state.db.fetch(_CHECKS, values, table=CHECKS)
        listed = [dict(zip(CheckResult.model_fields, r, strict=True)) for r in rows[:MAX_ROWS]]
        note(request.scope, rows=len(listed))
        return {
            "checks": listed,
            "failing": sum(not c["passed"] for c in listed),
            "truncated": len(rows) > MAX_ROWS,
        }
