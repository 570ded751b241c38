"""`/health/live`, `/health/ready`: is the process up; can it serve, and how fresh is gold.

Freshness comes from `pg_stat_user_tables.last_analyze`: dbt analyzes every gold table right after
building it (`+post-hook: analyze` in `dbt_project.yml`), so it is the time of the last materialisation.
Postgres forgets these statistics after a crash (not after a clean restart) and a manual `ANALYZE` also
sets them; the response names its source so nobody mistakes it for Dagster's own record.

A gold mart older than gold's fail window (`ASSAY_FRESHNESS_GOLD_FAIL_HOURS`, 48 h by default) makes
the API not ready: 503 with the same body, `status: "stale"` and the stale marts named, so a load
balancer takes it out while the data is known to be old. A mart never built is listed in
`missing_marts` but does not fail readiness.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from assay.api.catalog import MART_SCHEMA
from assay.api.db import unavailable
from assay.api.errors import error_responses
from assay.api.state import app_state
from assay.core.settings import get_settings

FRESHNESS_SOURCE = "pg_stat_user_tables.last_analyze (dbt analyzes each gold table right after building it)"

_FRESHNESS = """
select relname, last_analyze, extract(epoch from now() - last_analyze)::float8
from pg_stat_user_tables
where schemaname = %s and relname = any(%s)
"""


def install(app: FastAPI) -> None:
    # read once, when the app is made (not at import): settings come from the environment
    _, gold_fail = get_settings().freshness.window("gold")
    fail_after_s = gold_fail.total_seconds()

    @app.get("/health/live", tags=["health"], summary="The process is up (no database call)")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get(
        "/health/ready",
        tags=["health"],
        summary="The database answers and gold is within its freshness window",
        responses=error_responses(503),
    )
    async def ready(request: Request) -> Any:
        state = app_state(request)
        tables = {m.table: m.name for m in state.catalog.marts.values()}
        rows = await state.db.fetch(_FRESHNESS, [MART_SCHEMA, list(tables)])
        if rows is None:  # pragma: no cover - fetch raises instead
            raise unavailable()
        marts = {
            tables[name]: {
                "materialised_at": at.isoformat() if at else None,
                "age_seconds": round(age, 1) if age is not None else None,
            }
            for name, at, age in rows
        }
        ages = [m["age_seconds"] for m in marts.values() if m["age_seconds"] is not None]
        stale = sorted(n for n, m in marts.items() if (m["age_seconds"] or 0) > fail_after_s)
        body = {
            "status": "stale" if stale else "ready",
            "database": "ok",
            "gold_age_seconds": min(ages) if ages else None,
            "freshness_source": FRESHNESS_SOURCE,
            "marts": dict(sorted(marts.items())),
            "missing_marts": list(state.catalog.missing),
            "gold_fail_after_seconds": fail_after_s,
            "stale_marts": stale,
        }
        if stale:
            body["reason"] = (
                f"gold marts older than {fail_after_s / 3600:g} h (ASSAY_FRESHNESS_GOLD_FAIL_HOURS):"
                f" {', '.join(stale)}; rebuild them with `assay run`"
            )
            return JSONResponse(body, status_code=503, headers={"Retry-After": "60"})
        return body
