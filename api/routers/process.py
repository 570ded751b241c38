"""`/v1/process/*`: the process-mining results (variants, directly-follows graph, conformance,
bottlenecks) as the process-mining asset wrote them.

Reads `gold.process_variants`, `gold.process_dfg`, `gold.process_bottlenecks`, `gold.process_model`
and `gold.process_conformance` (columns as in `assets/process.py`; the asset rewrites each table
whole). Column names come from the response models below, never from the request; filters are
bound values. Until the pipeline has built a table its endpoint answers 409 (no Retry-After).
"""

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from assay.api import pages
from assay.api.audit import note
from assay.api.errors import error_responses
from assay.api.state import SECURED, AppState, admit

SCOPE = "process"
TAG = "process"
SCHEMA = "gold"
VARIANTS, DFG, BOTTLENECKS = "process_variants", "process_dfg", "process_bottlenecks"
MODELS, CONFORMANCE = "process_model", "process_conformance"
# The graph and bottleneck lists are bounded by the number of activities (tens); this cap only
# guards against a pathological log.
MAX_ROWS = 10_000


class Variant(BaseModel):
    variant_id: str
    variant_rank: int = Field(description="1 = the most frequent")
    variant: str = Field(description="The activity sequence as text")
    activities: list[str]
    length: int
    cases: int
    case_share: float
    mean_hours: float | None
    median_hours: float | None
    p95_hours: float | None
    min_hours: float | None
    max_hours: float | None


class Edge(BaseModel):
    edge_kind: str = Field(description="follows, or start / end (cases starting / ending at an activity)")
    source: str | None
    target: str | None
    frequency: int
    mean_hours: float | None
    median_hours: float | None
    p95_hours: float | None
    min_hours: float | None
    max_hours: float | None


class Bottleneck(BaseModel):
    kind: str = Field(description="activity (waiting before it) or edge (transition time)")
    source: str | None
    target: str
    occurrences: int
    mean_hours: float | None
    median_hours: float | None
    p95_hours: float | None
    total_hours: float | None
    share_of_wait: float | None
    rank_by_total: int
    rank_by_mean: int


class ModelFitness(BaseModel):
    model: str = Field(description="discovered (inductive miner) or reference")
    source: str
    version: str | None
    places: int
    transitions: int
    silent_transitions: int
    arcs: int
    log_fitness: float = Field(description="Token-replay fitness of the whole log against the model")
    fitting_case_share: float


class CaseConformance(BaseModel):
    case_id: str
    variant_id: str
    is_fit: bool
    trace_fitness: float
    missing_tokens: int
    remaining_tokens: int
    consumed_tokens: int
    produced_tokens: int
    deviations: str | None
    reference_version: str


class VariantPage(pages.Page):
    variants: list[Variant]


class Dfg(BaseModel):
    edges: list[Edge]
    truncated: bool


class Bottlenecks(BaseModel):
    bottlenecks: list[Bottleneck]
    truncated: bool


class Conformance(BaseModel):
    models: list[ModelFitness]
    cases: str = Field(description="Where the per-case results are")


class CasePage(pages.Page):
    cases: list[CaseConformance]


def _select(model: type[BaseModel], table: str, tail: str) -> sql.Composed:
    """`select <the model's fields> from gold.<table> <tail>` (tail: constant SQL with %s values)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, model.model_fields))
    return sql.SQL("select {} from {} " + tail).format(columns, sql.Identifier(SCHEMA, table))


def _rows(model: type[BaseModel], rows: list[tuple]) -> list[dict[str, Any]]:
    return [dict(zip(model.model_fields, row, strict=True)) for row in rows]


class EdgeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edge_kind: Literal["follows", "start", "end"] | None = Field(None, description="Only edges of this kind")


class BottleneckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["activity", "edge"] | None = Field(None, description="Only activities or only edges")


ERRORS = error_responses(400, 401, 403, 409, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    admitted = admit(SCOPE)  # key and scope, before any parameter is validated
    settings = state.settings
    db = state.db
    name = f"{SCHEMA}.{{}}".format
    VariantParams = pages.params_model("VariantParams", settings.page_size_default, settings.page_size_max)
    CaseParams = pages.params_model(
        "CaseParams",
        settings.page_size_default,
        settings.page_size_max,
        is_fit=(bool | None, Field(None, description="Only cases that fit (or do not fit) the model")),
        variant_id=(
            str | None,
            Field(None, max_length=200, pattern=r"^[^\x00]*$", description="One variant"),
        ),
    )

    first_variants = _select(Variant, VARIANTS, "order by variant_rank, variant_id limit %s")
    next_variants = _select(
        Variant,
        VARIANTS,
        "where (variant_rank, variant_id) > (%s, %s) order by variant_rank, variant_id limit %s",
    )

    @app.get(
        "/v1/process/variants",
        tags=[TAG],
        responses=ERRORS,
        response_model=VariantPage,
        summary="Process variants, most frequent first",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def variants(params: Annotated[VariantParams, Query()], request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        if params.cursor:
            after = pages.decode(params.cursor, (int, str))
            rows = await db.fetch(next_variants, [*after, params.limit + 1], table=name(VARIANTS))
        else:
            rows = await db.fetch(first_variants, [params.limit + 1], table=name(VARIANTS))
        rows, cursor = pages.split(rows, params.limit, lambda r: (r[1], r[0]))  # rank, id
        note(request.scope, rows=len(rows))
        return {"variants": _rows(Variant, rows), "next_cursor": cursor}

    dfg_query = _select(
        Edge,
        DFG,
        "where %(kind)s::text is null or edge_kind = %(kind)s"
        " order by frequency desc, edge_kind, source nulls first, target nulls first limit %(limit)s",
    )

    @app.get(
        "/v1/process/dfg",
        tags=[TAG],
        responses=ERRORS,
        response_model=Dfg,
        summary="The directly-follows graph: edges with frequency and transition times",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def dfg(params: Annotated[EdgeParams, Query()], request: Request) -> dict[str, Any]:
        rows = await db.fetch(dfg_query, {"kind": params.edge_kind, "limit": MAX_ROWS + 1}, table=name(DFG))
        note(request.scope, rows=min(len(rows), MAX_ROWS))
        return {"edges": _rows(Edge, rows[:MAX_ROWS]), "truncated": len(rows) > MAX_ROWS}

    bottleneck_query = _select(
        Bottleneck,
        BOTTLENECKS,
        "where %(kind)s::text is null or kind = %(kind)s"
        " order by rank_by_total, kind, source nulls first, target limit %(limit)s",
    )

    @app.get(
        "/v1/process/bottlenecks",
        tags=[TAG],
        responses=ERRORS,
        response_model=Bottlenecks,
        summary="Activities and edges ranked by the time cases wait for them",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def bottlenecks(params: Annotated[BottleneckParams, Query()], request: Request) -> dict[str, Any]:
        rows = await db.fetch(
            bottleneck_query, {"kind": params.kind, "limit": MAX_ROWS + 1}, table=name(BOTTLENECKS)
        )
        note(request.scope, rows=min(len(rows), MAX_ROWS))
        return {"bottlenecks": _rows(Bottleneck, rows[:MAX_ROWS]), "truncated": len(rows) > MAX_ROWS}

    models_query = _select(ModelFitness, MODELS, "order by model")

    @app.get(
        "/v1/process/conformance",
        tags=[TAG],
        responses=ERRORS,
        response_model=Conformance,
        summary="Fitness of the log against the discovered and the reference model",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def conformance(request: Request) -> dict[str, Any]:
        rows = await db.fetch(models_query, table=name(MODELS))
        note(request.scope, rows=len(rows))
        return {"models": _rows(ModelFitness, rows), "cases": "/v1/process/conformance/cases"}

    cases_filter = (
        "where (%(fit)s::boolean is null or is_fit = %(fit)s)"
        " and (%(variant)s::text is null or variant_id = %(variant)s)"
    )
    first_cases = _select(CaseConformance, CONFORMANCE, cases_filter + " order by case_id limit %(limit)s")
    next_cases = _select(
        CaseConformance,
        CONFORMANCE,
        cases_filter + " and case_id > %(after)s order by case_id limit %(limit)s",
    )

    @app.get(
        "/v1/process/conformance/cases",
        tags=[TAG],
        responses=ERRORS,
        response_model=CasePage,
        summary="Token-replay conformance of each case against the reference model",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def conformance_cases(params: Annotated[CaseParams, Query()], request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        values: dict[str, Any] = {
            "fit": params.is_fit,
            "variant": params.variant_id,
            "limit": params.limit + 1,
        }
        query = first_cases
        if params.cursor:
            (values["after"],) = pages.decode(params.cursor, (str,))
            query = next_cases
        rows = await db.fetch(query, values, table=name(CONFORMANCE))
        rows, cursor = pages.split(rows, params.limit, lambda r: r[:1])
        note(request.scope, rows=len(rows))
        return {"cases": _rows(CaseConformance, rows), "next_cursor": cursor}
