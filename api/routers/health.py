"""`/health/live`, `/health/ready`: is the process up; can it serve, and how fresh is gold.

Freshness comes from `pg_stat_user_tables.last_analyze`: dbt analyzes every gold table right after
building it (`+post-hook: analyze` in `dbt_project.yml`), so it is the time of the last materialisation.
Postgres forgets these statistics after a crash (not after a clean restart) and a manual `ANALYZE` also
sets them; the response names its source so nobody mistakes it for Dagster's own record.
"""

from typing import Any

from fastapi import FastAPI, Request

from assay.api.catalog import MART_SCHEMA
from assay.api.db import unavailable
from assay.api.errors import error_responses
from assay.api.state import app_state

FRESHNESS_SOURCE = "pg_stat_user_tables.last_analyze (dbt analyzes each gold table right after building it)"

_FRESHNESS = """
select relname, last_analyze, extract(epoch from now() - last_analyze)::float8
from pg_stat_user_tables
where schemaname = %s and relname = any(%s)
"""


def install(app: FastAPI) -> None:
    @app.get("/health/live", tags=["health"], summary="The process is up (no database call)")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get(
        "/health/ready",
        tags=["health"],
        summary="The database answers; age of the last gold materialisation",
        responses=error_responses(503),
    )
    async def ready(request: Request) -> dict[str, Any]:
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
        return {
            "status": "ready",
            "database": "ok",
            "gold_age_seconds": min(ages) if ages else None,
            "freshness_source": FRESHNESS_SOURCE,
            "marts": dict(sorted(marts.items())),
            "missing_marts": list(state.catalog.missing),
        }
