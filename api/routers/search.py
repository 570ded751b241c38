"""`/v1/search`: vector, full-text and hybrid search over the platinum corpus, with filters.

Reads `platinum.embeddings` and `platinum.embedding_models` through `assets.search.Searcher`, the one
search library (the agents' search tool and the embedding checks use it too). The library is written
against blocking psycopg, so each search runs on a connection of the API's blocking pool in a worker
thread (`Database.run_sync`): same read-only role and session settings, and the event loop keeps
serving meanwhile. The embedding model loads once per process (`core/models.py`), when the app
starts (`load_model`, in the background) or else on the first search, outside any transaction.

Queries are encoded before the search takes a connection, through a `QueryBatcher`: the queries of
concurrent requests go to the model in one call (micro-batching), and the search then uses the
precomputed vector (`PrecomputedEncoder`) for the configured model.
"""

import datetime as dt
import logging
import threading
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from assay.api.audit import note
from assay.api.batching import PrecomputedEncoder, QueryBatcher
from assay.api.errors import ApiError, error_responses
from assay.api.keys import Principal
from assay.api.state import SECURED, AppState, admit
from assay.core.models import EmbeddingModelResource, Encoder
from assay.search.searcher import Filters, Mode, Searcher

SCOPE = "search"
TAG = "search"
EMBEDDINGS = "platinum.embeddings"  # with platinum.embedding_models: the library reads only these
MAX_QUERY_CHARS = 1000
MAX_FILTER_CHARS = 200

# The marts whose data each document type discloses (platinum.documents): a transaction document
# carries the category, department, vendor, date and amount that all four marts aggregate, a vendor
# document the vendor that vendor_spend names. A key whose marts are restricted sees a document type
# only if it may read every mart listed for it; the restriction is a bound filter in the search's SQL,
# so `k` counts only documents the key may see. A key that masks any column of one of those marts does
# not see the type either: a document's text carries the values a mask hides (vendor names, amounts).
DOCUMENT_MARTS: dict[str, tuple[str, ...]] = {
    "transaction": ("category_trends", "monthly_summary", "vendor_monthly", "vendor_spend"),
    "vendor": ("vendor_spend",),
}

log = logging.getLogger("assay.api")

_load_lock = threading.Lock()
_encoders: dict[str, Encoder] = {}


def _encoder(name: str) -> Encoder:
    # One load per process even when the first searches arrive together; after that a dictionary
    # lookup (building the resource reads the settings, a tenth of a search's time when done each time).
    encoder = _encoders.get(name)
    if encoder is None:
        with _load_lock:
            encoder = _encoders.get(name) or EmbeddingModelResource().encoder_for(name)
            _encoders[name] = encoder
    return encoder


def load_model() -> None:
    """Load the configured embedding model now (the app calls this in a thread at start-up), so the
    first search does not wait for torch and the model (7 to 20 s on a busy CPU)."""
    name = EmbeddingModelResource().model_name()
    try:
        _encoder(name)
    except Exception:  # noqa: BLE001 - the first search will try again and report it
        log.exception("could not load the embedding model %s at start-up", name)
    else:
        log.info("embedding model %s loaded", name)


FilterValues = list[Annotated[str, Field(min_length=1, max_length=MAX_FILTER_CHARS, pattern=r"^[^\x00]*$")]]


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"^[^\x00]*$", description="What to look for"
    )
    method: Mode = Field(
        "hybrid", description="vector (embeddings), fulltext (Postgres text search) or hybrid (both, fused)"
    )
    date_from: dt.date | None = Field(None, description="Documents dated on or after (inclusive)")
    date_to: dt.date | None = Field(None, description="Documents dated on or before (inclusive)")

    @model_validator(mode="after")
    def _dates_in_order(self) -> "SearchParams":
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


class Hit(BaseModel):
    rank: int
    score: float = Field(description="vector: cosine similarity; fulltext: ts_rank_cd; hybrid: RRF score")
    doc_id: str
    doc_type: str | None
    title: str | None
    body: str
    category: str | None
    department: str | None
    vendor_id: str | None
    doc_date: dt.date | None
    amount_eur: float | None
    vector_rank: int | None = Field(None, description="hybrid: rank in the vector list")
    text_rank: int | None = Field(None, description="hybrid: rank in the full-text list")


class SearchResponse(BaseModel):
    method: str
    query: str
    k: int
    model: str | None = Field(description="The embedding model searched (null: no embeddings yet)")
    exact_fallback: bool = Field(description="The filters were too selective for the index scan")
    hits: list[Hit]


def _params_model(max_k: int, max_values: int) -> type[SearchParams]:
    listed = (FilterValues | None, Field(None, max_length=max_values, description="Any of these values"))
    return create_model(
        "SearchParamsModel",
        __base__=SearchParams,
        k=(int, Field(10, ge=1, le=max_k, description="Hits to return")),
        category=listed,
        department=listed,
        vendor_id=listed,
        doc_type=listed,
    )


def _response(result) -> dict[str, Any]:
    return {
        "method": result.mode,
        "query": result.query,
        "k": result.k,
        "model": result.model,
        "exact_fallback": result.exact_fallback,
        "hits": [
            {
                **{name: getattr(hit, name) for name in Hit.model_fields},
                "amount_eur": float(hit.amount_eur) if hit.amount_eur is not None else None,
            }
            for hit in result.hits
        ],
    }


ERRORS = error_responses(400, 401, 403, 409, 429, 503)


def visible_doc_types(principal: Principal, asked: list[str] | None) -> list[str] | None:
    """The `doc_type` filter for this key: the asked types (None: all) less those it may not see."""
    visible = [
        t
        for t, marts in DOCUMENT_MARTS.items()
        if all(principal.may_read(m) and not principal.masked(m) for m in marts)
    ]
    if not visible:
        needs = "; ".join(
            f"{t} documents need marts {', '.join(m)}, unmasked" for t, m in DOCUMENT_MARTS.items()
        )
        raise ApiError(403, f"this API key may read no search documents ({needs}); use a key with them")
    if len(visible) == len(DOCUMENT_MARTS):
        return asked
    return [t for t in asked if t in visible] if asked else visible


def install(app: FastAPI, state: AppState) -> None:
    admitted = admit(SCOPE)  # key and scope, before any parameter is validated
    settings = state.settings
    Params = _params_model(settings.search_max_k, settings.max_in_values)
    configured = EmbeddingModelResource().model_name()
    batcher = QueryBatcher(
        lambda texts: _encoder(configured).encode_queries(texts), max_batch=settings.search_batch_max
    )
    app.state.search_batcher = batcher

    @app.get(
        "/v1/search",
        tags=[TAG],
        responses=ERRORS,
        response_model=SearchResponse,
        summary="Vector, full-text or hybrid search over the platinum documents",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def search(
        params: Annotated[Params, Query()],  # type: ignore[valid-type]
        principal: Annotated[Principal, admitted],
        request: Request,
    ) -> dict[str, Any]:
        note(request.scope, subject=params.q)
        filters = Filters(
            category=params.category,
            department=params.department,
            vendor_id=params.vendor_id,
            doc_type=visible_doc_types(principal, params.doc_type),
            date_from=params.date_from,
            date_to=params.date_to,
        )
        vectors = {}
        if params.method != "fulltext":
            # Encoded here, with the queries of concurrent requests, before a connection is taken;
            # a first load of the model also happens here, outside the search's transaction (which
            # the server would end as idle after 10 s).
            vectors[params.q] = await batcher.encode(params.q)

        def encoders(name: str):
            encoder = _encoder(name)
            return PrecomputedEncoder(encoder, vectors) if name == configured and vectors else encoder

        def run(conn: psycopg.Connection):
            return Searcher(conn, encoders).search(params.q, params.method, params.k, filters)

        result = await state.db.run_sync(run, table=EMBEDDINGS)
        note(request.scope, rows=len(result.hits))
        return _response(result)
