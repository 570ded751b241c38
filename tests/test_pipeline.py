"""The whole graph on the small sample against a real embedded Postgres and real dbt.

Expected numbers come from the generator's ground truth and from polars over the landing files,
never from the SQL under test.
"""

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal

import polars as pl
import pytest
from dagster import AssetKey, DagsterEventType
from homes import own_home

REJECTS = AssetKey(["silver", "rejects"])
SOURCES = ("transactions", "events", "vendors", "employees")
# dbt_project/seeds/currency_rates.csv
RATES = {
    c: Decimal(r)
    for c, r in {"EUR": "1", "USD": "0.92", "GBP": "1.17", "CHF": "1.04", "SEK": "0.087"}.items()
}
CENT = Decimal("0.01")


def test_full_graph_materialises_and_every_check_passes(pipeline_run):
    assert pipeline_run.success
    materialised = {
        e.asset_key.to_user_string()
        for e in pipeline_run.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    }
    assert {
        "bronze/transactions",
        "silver/transactions",
        "gold/monthly_summary",
        "platinum/documents",
    } <= materialised
    evaluations = [
        e.event_specific_data
        for e in pipeline_run.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert len(evaluations) >= 60
    assert [ev.check_name for ev in evaluations if not ev.passed] == []


def test_every_bronze_row_is_in_silver_or_rejects_exactly_once(pipeline_run, conn):
    for source in SOURCES:
        bronze_ids = {r[0] for r in conn.execute(f"select bronze_id from bronze.{source}")}
        silver_ids = [r[0] for r in conn.execute(f"select bronze_id from silver.{source}")]
        rejected_ids = [
            r[0] for r in conn.execute("select bronze_id from silver.rejects where source = %s", [source])
        ]
        assert len(silver_ids) + len(rejected_ids) == len(bronze_ids), source
        assert set(silver_ids) | set(rejected_ids) == bronze_ids, source
        assert not set(silver_ids) & set(rejected_ids), source


def test_bronze_holds_one_row_per_landing_line(pipeline_run, conn, sample):
    lines_per_file = {
        path.relative_to(sample.landing_dir).as_posix(): sum(
            1 for line in path.read_bytes().split(b"\n") if line
        )
        for path in sample.files
        if sample.landing_dir in path.parents
    }
    for source in SOURCES:
        counts = dict(
            conn.execute(f"select source_file, count(*) from bronze.{source} group by 1").fetchall()
        )
        header = 1 if source != "transactions" else 0
        expected = {f: n - header for f, n in lines_per_file.items() if f.startswith(source + "/")}
        assert counts == expected, source


def test_rejects_match_the_ground_truth_line_by_line(pipeline_run, conn, sample):
    truth = pl.read_csv(sample.truth_dir / "lines.csv", infer_schema=False).filter(pl.col("defect") != "")
    expected = set(truth.select("file", pl.col("line_number").cast(int), "defect").iter_rows())
    actual = set(
        conn.execute(
            "select source_file, line_number, reason from silver.rejects where source = 'transactions'"
        ).fetchall()
    )
    assert actual == expected
    by_reason = dict(truth.group_by("defect").len().iter_rows())
    # the same counts are metadata of silver/rejects in the UI
    rejects_meta = next(
        e.step_materialization_data.materialization.metadata
        for e in pipeline_run.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION and e.asset_key == REJECTS
    )
    shown = {k.split("/")[2]: v.value for k, v in rejects_meta.items() if k.startswith("rejects/")}
    assert shown == by_reason
    assert by_reason == dict.fromkeys(
        [
            "duplicate",
            "parse_error",
            "non_positive_amount",
            "future_date",
            "unknown_currency",
            "unknown_category",
            "orphan_vendor",
        ],
        10,
    )


@pytest.fixture(scope="module")
def clean_transactions(sample) -> pl.DataFrame:
    """Silver, recomputed with polars: the clean lines of the landing files per the ground truth."""
    truth = pl.read_csv(sample.truth_dir / "lines.csv", infer_schema=False)
    clean = set(
        truth.filter(pl.col("defect") == "").select("file", pl.col("line_number").cast(int)).iter_rows()
    )
    records = []
    for path in sorted((sample.landing_dir / "transactions").glob("*.jsonl")):
        rel = path.relative_to(sample.landing_dir).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if (rel, number) in clean:
                record = json.loads(line, parse_float=Decimal)
                # numeric arithmetic as Postgres does it: exact, rounded half away from zero
                eur = (record["amount"] * RATES[record["currency"]]).quantize(CENT, rounding=ROUND_HALF_UP)
                records.append({**record, "amount": float(record["amount"]), "amount_eur": float(eur)})
    employees = pl.read_csv(sample.landing_dir / "employees" / "employees.csv").select(
        "employee_id", "department"
    )
    frame = pl.DataFrame(records, infer_schema_length=None)
    return (
        frame.with_columns(
            pl.col("date").str.to_date(),
            pl.col("category").fill_null("uncategorised"),
        )
        .join(employees, on="employee_id", how="left")
        .with_columns(pl.col("department").fill_null("unknown"))
    )


def test_silver_transactions_equal_the_clean_landing_lines(pipeline_run, conn, clean_transactions):
    assert clean_transactions["id"].n_unique() == clean_transactions.height
    rows = conn.execute("select transaction_id, amount_eur from silver.transactions").fetchall()
    assert {r[0] for r in rows} == set(clean_transactions["id"])
    assert sum(float(r[1]) for r in rows) == pytest.approx(clean_transactions["amount_eur"].sum(), abs=0.01)


def test_monthly_summary_equals_polars(pipeline_run, conn, clean_transactions):
    monthly = clean_transactions.group_by(
        pl.col("date").dt.truncate("1mo").alias("month"), "category", "department"
    ).agg(pl.col("amount_eur").sum().alias("total"), pl.len().alias("n"))
    previous = monthly.with_columns(pl.col("month").dt.offset_by("1mo")).rename(
        {"total": "prev", "n": "prev_n"}
    )
    expected = monthly.join(previous, on=["month", "category", "department"], how="left").with_columns(
        (100 * (pl.col("total") - pl.col("prev")) / pl.col("prev")).round(2).alias("mom")
    )
    actual = pl.DataFrame(
        conn.execute(
            "select month, category, department, total_amount_eur::float8, transaction_count,"
            " mom_growth_pct::float8, yoy_growth_pct from gold.monthly_summary"
        ).fetchall(),
        schema=["month", "category", "department", "total_db", "n_db", "mom_db", "yoy_db"],
        orient="row",
    )
    assert actual.height == expected.height
    both = expected.join(actual, on=["month", "category", "department"], how="inner")
    assert both.height == expected.height
    assert (both["total"] - both["total_db"]).abs().max() < 0.005
    assert (both["n"] == both["n_db"]).all()
    mom = both.filter(pl.col("mom").is_not_null())
    assert mom.height > 0 and (mom["mom"] - mom["mom_db"]).abs().max() <= 0.011
    assert (
        both.filter(pl.col("mom").is_null())["mom_db"].null_count()
        == both.filter(pl.col("mom").is_null()).height
    )
    assert actual["yoy_db"].null_count() == actual.height  # one year of data: nothing to compare with


def test_vendor_spend_equals_polars(pipeline_run, conn, clean_transactions):
    expected = (
        clean_transactions.group_by("vendor_id")
        .agg(pl.col("amount_eur").sum().alias("total"), pl.len().alias("n"))
        .sort(["total", "vendor_id"], descending=[True, False])
    )
    rows = conn.execute(
        "select spend_rank, vendor_id, total_amount_eur::float8, transaction_count,"
        " share_of_spend_pct::float8"
        " from gold.vendor_spend order by spend_rank"
    ).fetchall()
    assert [r[1] for r in rows] == expected["vendor_id"].to_list()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    grand = expected["total"].sum()
    for (_, _, total, n, share), exp_total, exp_n in zip(rows, expected["total"], expected["n"], strict=True):
        assert total == pytest.approx(exp_total, abs=0.005) and n == exp_n
        assert share == pytest.approx(100 * exp_total / grand, abs=0.0001)


def test_vendor_monthly_equals_polars(pipeline_run, conn, clean_transactions):
    vendors = conn.execute("select vendor_id, vendor_name from silver.vendors").fetchall()
    expected = (
        clean_transactions.join(
            pl.DataFrame(vendors, schema=["vendor_id", "vendor_name"], orient="row"), on="vendor_id"
        )
        .group_by(
            pl.col("date").dt.truncate("1mo").alias("month"),
            "vendor_id",
            "vendor_name",
            "category",
            "department",
        )
        .agg(pl.col("amount_eur").sum().round(2).alias("total"), pl.len().alias("n"))
        .sort(["month", "vendor_id", "category", "department"])
    )
    rows = conn.execute(
        "select month, vendor_id, vendor_name, category, department, total_amount_eur::float8,"
        " transaction_count from gold.vendor_monthly order by month, vendor_id, category, department"
    ).fetchall()
    assert len(rows) == expected.height
    for row, exp in zip(rows, expected.iter_rows(), strict=True):
        assert row[:5] == exp[:5] and row[5] == pytest.approx(exp[5], abs=0.005) and row[6] == exp[6]


def test_category_trends_equal_polars(pipeline_run, conn, clean_transactions):
    weekly = clean_transactions.group_by(pl.col("date").dt.truncate("1w").alias("week"), "category").agg(
        pl.col("amount_eur").sum().alias("total")
    )
    weeks = pl.date_range(weekly["week"].min(), weekly["week"].max(), "1w", eager=True).alias("week")
    first, last = clean_transactions["date"].min(), clean_transactions["date"].max()
    full = (
        pl.DataFrame(weeks)
        .join(weekly.select("category").unique(), how="cross")
        .join(weekly, on=["week", "category"], how="left")
        .with_columns(pl.col("total").fill_null(0.0))
        .sort("category", "week")
        .with_columns(
            ((pl.col("total") - pl.col("total").mean()) / pl.col("total").std(ddof=0))
            .over("category")
            .alias("z"),
            pl.col("total").rolling_mean(4, min_samples=1).over("category").alias("ma4"),
            ((pl.col("week") >= first) & (pl.col("week") + dt.timedelta(days=6) <= last)).alias("complete"),
        )
    )
    actual = pl.DataFrame(
        conn.execute(
            "select week_start, category, total_amount_eur::float8, moving_avg_4w::float8, z_score::float8,"
            " is_anomaly from gold.category_trends"
        ).fetchall(),
        schema=["week", "category", "total_db", "ma4_db", "z_db", "anomaly_db"],
        orient="row",
    )
    both = full.join(actual, on=["week", "category"], how="inner")
    assert both.height == full.height == actual.height
    assert (both["total"] - both["total_db"]).abs().max() < 0.005
    assert (both["ma4"] - both["ma4_db"]).abs().max() < 0.006
    assert (both["z"] - both["z_db"]).abs().max() < 0.0001
    expected_anomalies = both.filter(pl.col("complete") & (pl.col("z").abs() > 2))
    assert set(expected_anomalies.select("week", "category").iter_rows()) == set(
        both.filter("anomaly_db").select("week", "category").iter_rows()
    )


def test_platinum_has_one_document_per_transaction_and_vendor(pipeline_run, conn, clean_transactions, sample):
    counts = dict(conn.execute("select doc_type, count(*) from platinum.documents group by 1").fetchall())
    assert counts == {"transaction": clean_transactions.height, "vendor": sample.vendors}


def test_a_second_run_changes_nothing(pipeline_run, conn):
    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags

    def snapshot():
        out = {}
        for table in ("bronze.transactions", "bronze.events", "bronze.load_batches"):
            out[table] = conn.execute(f"select count(*) from {table}").fetchone()[0]
        for table, key in (
            ("silver.transactions", "transaction_id"),
            ("silver.rejects", "source, bronze_id"),
            ("gold.monthly_summary", "month, category, department"),
            ("gold.category_trends", "week_start, category"),
            ("gold.vendor_spend", "spend_rank"),
            ("gold.vendor_monthly", "month, vendor_id, category, department"),
            ("platinum.documents", "doc_id"),
        ):
            out[table] = conn.execute(
                f"select count(*), md5(string_agg(t::text, '|' order by {key})) from {table} t"
            ).fetchone()
        return out

    before = snapshot()
    rerun = defs.resolve_job_def("pipeline").execute_in_process(raise_on_error=False, tags=full_range_tags())
    assert rerun.success
    # one materialization per asset, and per partition for the daily ones
    files_loaded = {
        e.asset_key.path[1]: e.step_materialization_data.materialization.metadata["files_loaded"].value
        for e in rerun.all_events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION and e.asset_key.path[0] == "bronze"
    }
    assert files_loaded == dict.fromkeys(SOURCES, 0)
    after = snapshot()
    # loaded_at is part of silver rows: unchanged because bronze rows were not reloaded
    assert after == before


@pytest.mark.integration
def test_a_garbage_file_does_not_fail_the_run(monkeypatch):
    """A separate ASSAY_HOME: binary bytes, truncated JSON and Latin-1 text next to a tiny sample."""
    from assay.core.database import PostgresResource
    from assay.landing.sample import generate
    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags

    with own_home("assay-garbage-") as home:
        # Six garbage lines are 3 % of this tiny sample: the quality gates would (rightly) stop the run
        # before gold. This test is about loading garbage, so the gates are relaxed here.
        monkeypatch.setenv("ASSAY_DQ_SILVER_MIN_SCORE", "0.5")
        monkeypatch.setenv("ASSAY_DQ_MAX_REJECT_RATE", "0.5")
        generate(home / "landing", home / "ground_truth", size=200, seed=3)
        garbage = (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n"  # binary bytes: three lines, one with NUL bytes
            + b'{"id": "G1", "amount": 12.5, "curr\n'  # truncated JSON
            + "Café, crème brûlée".encode("latin-1")
            + b"\n"  # wrong encoding
            + b'{"id": "G2"'  # truncated last line, no newline
        )
        (home / "landing" / "transactions" / "zz-garbage-2025-06-30.jsonl").write_bytes(garbage)
        result = defs.resolve_job_def("pipeline").execute_in_process(
            raise_on_error=False, tags=full_range_tags()
        )
        assert result.success
        with PostgresResource().connect(autocommit=True) as conn:
            rows = conn.execute(
                "select line_number, parse_error is not null, raw_text is not null from bronze.transactions"
                " where source_file = 'transactions/zz-garbage-2025-06-30.jsonl' order by line_number"
            ).fetchall()
            rejected = conn.execute(
                "select count(*) from silver.rejects"
                " where source_file = 'transactions/zz-garbage-2025-06-30.jsonl' and reason = 'parse_error'"
            ).fetchone()[0]
        assert rows == [(n, True, True) for n in range(1, 7)]
        assert rejected == 6
