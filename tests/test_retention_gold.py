"""Retention in gold, on a real embedded server and real dbt: gold's horizon removes the months before
it from the marts, a rebuild of gold does not bring them back although silver still holds their rows,
and gold still reconciles with silver over gold's window (the dbt test gold_reconciles_with_silver)."""

import datetime as dt
import json

import pytest
from homes import own_home, run_bronze_silver, write_landing, write_reference

pytestmark = pytest.mark.integration

MARTS = ("monthly_summary", "category_trends", "vendor_spend", "vendor_monthly", "time_spine_day")


def _tx(tx_id: str, day: dt.date) -> str:
    record = {
        "id": tx_id,
        "employee_id": "E00001",
        "vendor_id": "V0001",
        "amount": 10,
        "currency": "EUR",
        "date": day.isoformat(),
        "description": "taxi",
        "category": "travel",
    }
    return json.dumps(record)


def _build_gold() -> dict[str, bool]:
    """The dbt gold marts and their checks; returns each check's outcome by name."""
    from dagster import AssetKey, DagsterEventType

    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags

    job = defs.resolve_job_def("pipeline")
    result = job.execute_in_process(
        raise_on_error=False,
        tags=full_range_tags(),
        asset_selection=[AssetKey(["gold", name]) for name in MARTS],
    )
    return {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_gold_keeps_its_window_and_a_rebuild_does_not_bring_old_months_back():
    from assay.core import retention
    from assay.core.database import PostgresResource
    from assay.core.settings import RetentionSettings

    march, june = dt.date(2025, 3, 10), dt.date(2025, 6, 10)
    with own_home("assay-retention-gold-") as home:
        write_reference(home)
        for n, day in enumerate((march, june)):
            write_landing(
                home, f"transactions/transactions-{day}.jsonl", [_tx(f"G{n}a", day), _tx(f"G{n}b", day)]
            )
        run_bronze_silver()
        checks = _build_gold()
        assert checks.get("gold_reconciles_with_silver") is True, checks
        postgres = PostgresResource()
        with postgres.connect(autocommit=True) as conn:

            def months() -> dict[dt.date, int]:
                return dict(
                    conn.execute(
                        "select month, sum(transaction_count) from gold.monthly_summary group by 1"
                    ).fetchall()
                )

            assert months() == {dt.date(2025, 3, 1): 2, dt.date(2025, 6, 1): 2}
            # a year after mid-May: gold keeps from 1 May 2025 on; bronze and silver keep everything
            settings = RetentionSettings(bronze_days=3000, silver_years=10, gold_years=1)
            report = retention.apply(conn, settings=settings, today=dt.date(2026, 5, 15))
            assert report.horizons["gold"] == dt.date(2025, 5, 1)
            assert report.by_table()["gold.monthly_summary"] == 1
            assert months() == {dt.date(2025, 6, 1): 2}
        checks = _build_gold()
        assert checks.get("gold_reconciles_with_silver") is True, checks
        with postgres.connect(autocommit=True) as conn:
            assert months() == {dt.date(2025, 6, 1): 2}  # March is not rebuilt from silver
            assert conn.execute("select count(*) from silver.transactions").fetchone()[0] == 4
            assert conn.execute("select sum(transaction_count) from gold.vendor_spend").fetchone()[0] == 2
