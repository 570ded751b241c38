"""`/metrics`: Prometheus exposition (needs a key with the `metrics` scope unless made public)."""

from fastapi import APIRouter
from starlette.responses import Response

from api.errors import error_responses
from api.middleware import metrics_payload
from api.state import Caller

SCOPE = "metrics"


def build_router(public: bool) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    def payload() -> Response:
        body, content_type = metrics_payload()
        return Response(body, media_type=content_type)

    if public:

        @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
        async def metrics_open() -> Response:
            return payload()

    else:

        @router.get(
            "/metrics",
            summary="Prometheus metrics (key with `metrics` scope)",
            response_class=Response,
            responses=error_responses(401, 403, 429, 503),
        )
        async def metrics(principal: Caller) -> Response:
            principal.require(SCOPE)
            return payload()

    return router
