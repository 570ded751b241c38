"""`/metrics`: Prometheus exposition (needs a key with the `metrics` scope unless made public)."""

from fastapi import FastAPI, Request
from starlette.responses import Response

from assay.api.errors import error_responses
from assay.api.middleware import metrics_payload
from assay.api.state import SECURED, authenticate

SCOPE = "metrics"


def install(app: FastAPI, public: bool) -> None:

    def payload() -> Response:
        body, content_type = metrics_payload()
        return Response(body, media_type=content_type)

    if public:

        @app.get("/metrics", tags=["metrics"], summary="Prometheus metrics", response_class=Response)
        async def metrics_open() -> Response:
            return payload()

    else:

        @app.get(
            "/metrics",
            tags=["metrics"],
            summary="Prometheus metrics (key with `metrics` scope)",
            response_class=Response,
            responses=error_responses(401, 403, 429, 503),
            openapi_extra=SECURED,
        )
        async def metrics(request: Request) -> Response:
            principal = await authenticate(request)
            principal.require(SCOPE)
            return payload()
