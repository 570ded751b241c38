"""Quality gates: dbt tests, DQ scores, reject-rate and GX checks, schema drift, `assay quality`.

Two real runs: the session's clean small sample (`pipeline_run`, low defects) and, in a separate
ASSAY_HOME with its own embedded server, one small high-defect sample plus a drifting landing file.
The high run trips every defect class at once; each class is asserted on its own check.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    materialize,
)
from homes import own_home

from assay.landing.sample import DEFECTS, DefectRates, generate
from assay.quality.drift import _renames
from assay.quality.rules import DIMENSIONS, reject_reasons, source_reasons

GOLD = ("monthly_summary", "category_trends", "vendor_spend", "vendor_monthly")
# the marts platinum.documents is built from (it waits for their gates)
DOCUMENTED = ("monthly_summary", "category_trends", "vendor_spend")
SILVER = ("transactions", "events", "vendors", "employees")
# dated like every landing file of a partitioned source (assets/partitions.py)
DRIFT_FILE = "transactions/transactions-drift-2025-03-01.jsonl"
# amount renamed to amt, an extra field `note`: the file must still load and silver must reject it
DRIFT_RECORD = {
    "id": "D{}",
    "employee_id": "E00001",
    "vendor_id": "V0001",
    "amt": 12.5,
    "currency": "EUR",
    "date": "2025-03-01",
    "description": "drifted",
    "category": "travel",
    "note": "extra field",
}


@dataclass
class RunFacts:
    run_id: str
    success: bool
    materialized: set[str]
    checks: dict[tuple[str, str], object]  # (asset, check) -> AssetCheckEvaluation
    observations: dict[str, dict]
    step_failures: dict[str, str]
    extra: dict = field(default_factory=dict)


def _facts(result) -> RunFacts:
    facts = RunFacts(result.run_id, result.success, set(), {}, {}, {})
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            facts.materialized.add(event.asset_key.to_user_string())
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            facts.checks[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation
        elif event.event_type == DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation
            facts.observations[observation.asset_key.to_user_string()] = observation.metadata
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            facts.step_failures[event.step_key] = event.step_failure_data.error.message
    return facts


@pytest.fixture(scope="module")
def clean(pipeline_run) -> RunFacts:
    return _facts(pipeline_run)


@pytest.fixture(scope="module")
def high() -> RunFacts:
    """One pipeline run on a small high-defect sample plus a drifting file, in its own ASSAY_HOME."""
    from assay.core.database import PostgresResource
    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags
    from assay.quality.report import build_report, render
    from assay.quality.store import record_run_checks

    with own_home("assay-test-high-") as home:
        generate(home / "landing", home / "ground_truth", size="small", seed=11, defects=DefectRates.high())
        drift = home / "landing" / DRIFT_FILE
        drift.write_text("".join(json.dumps(DRIFT_RECORD | {"id": f"D{i}"}) + "\n" for i in range(3)))
        instance = DagsterInstance.ephemeral()
        facts = _facts(
            defs.resolve_job_def("pipeline").execute_in_process(
                raise_on_error=False, tags=full_range_tags(), instance=instance
            )
        )
        record_run_checks(PostgresResource(), instance, facts.run_id)  # as `assay run` does
        with PostgresResource().connect(autocommit=True) as conn:
            facts.extra["drift_bronze_rows"] = conn.execute(
                "select count(*) from bronze.transactions where source_file = %s", [DRIFT_FILE]
            ).fetchone()[0]
            facts.extra["drift_rejects"] = conn.execute(
                "select reason, count(*) from silver.rejects where source_file = %s group by 1", [DRIFT_FILE]
            ).fetchall()
            report = build_report(conn)
        facts.extra["report"] = report
        facts.extra["report_text"] = "\n".join(render(report))
        facts.extra["truth"] = pl.read_csv(home / "ground_truth" / "lines.csv")
        yield facts


# -- the graph ----------------------------------------------------------------------------------


def _graph():
    from assay.orchestration.definitions import defs

    return defs.resolve_asset_graph()


def _check_specs():
    """Checks of the assets the `pipeline` job runs (the LLM agents' checks run with the agents)."""
    from assay.orchestration.definitions import defs

    return {
        (spec.asset_key.to_user_string(), spec.name): spec
        for assets_def in defs.resolve_asset_graph().assets_defs
        for spec in assets_def.check_specs
        if spec.asset_key.path[0] != "agents"
    }


def test_every_dbt_test_is_an_asset_check_on_its_model():
    from assay.assets.dbt_project import dbt_project

    manifest = json.loads(dbt_project.manifest_path.read_text())
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    check_names = {name for _, name in _check_specs()}
    assert tests and tests <= check_names
    # the reconciliation test reads silver and all marts; it is a check on the summary
    assert ("gold/monthly_summary", "gold_reconciles_with_silver") in _check_specs()


UNIT_TESTS = {
    "monthly_summary_growth_percentages": "monthly_summary",
    "vendor_monthly_per_vendor_month_category_and_department": "vendor_monthly",
    "category_trends_z_score_and_anomaly_flag": "category_trends",
    "category_trends_no_anomaly_in_partial_week": "category_trends",
    "transactions_deduplication_rule": "int_transactions_checked",
    "transactions_deduplication_across_days": "int_transactions_checked",
}


def test_gold_and_platinum_contracts_and_unit_tests():
    from assay.assets.dbt_project import dbt_project

    manifest = json.loads(dbt_project.manifest_path.read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    for name in (*GOLD, "documents"):
        assert models[name]["config"]["contract"]["enforced"], name
        assert all(c.get("data_type") for c in models[name]["columns"].values()), name
    unit_tests = {u["name"]: u["model"] for u in manifest.get("unit_tests", {}).values()}
    assert unit_tests == UNIT_TESTS


def test_the_dbt_unit_tests_pass(pipeline_run, postgres, tmp_path):
    """The models' unit tests (left out of the pipeline's builds: they test SQL, not data) run here,
    against the session's server, where their models' parents exist."""
    import subprocess

    from psycopg.conninfo import conninfo_to_dict

    from assay.core import dbt as dbt_files

    profiles = dbt_files.write_profile(conninfo_to_dict(postgres.url()), tmp_path)
    args = ["test", "--select", "test_type:unit", "--project-dir", str(dbt_files.project_dir())]
    args += ["--profiles-dir", str(profiles), "--target-path", str(tmp_path / "target")]
    done = subprocess.run([dbt_files.executable(), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    passed = sorted(r["unique_id"].rsplit(".", 1)[-1] for r in results if r["status"] == "pass")
    assert passed == sorted(UNIT_TESTS) and len(results) == len(UNIT_TESTS)


def test_quality_checks_severity_and_blocking():
    specs = _check_specs()
    for table in SILVER:
        key = f"silver/{table}"
        assert specs[(key, "dq_score")].blocking
        assert not specs[(key, "gx_profile")].blocking
        assert specs[(key, "reject_rate_duplicate")].blocking
        assert not specs[(f"bronze/{table}", "schema_drift")].blocking

    def rate_checks(table):
        return {name for key, name in specs if key == f"silver/{table}" and name.startswith("reject_rate_")}

    assert rate_checks("transactions") == {f"reject_rate_{c}" for c in source_reasons("transactions")}
    # each reason of the seed is checked on the sources it applies to (unknown_activity: events only)
    assert set().union(*(rate_checks(t) for t in SILVER)) == {f"reject_rate_{c}" for c in reject_reasons()}
    for table in GOLD:
        assert specs[(f"gold/{table}", "dq_score")].blocking


def test_layers_are_separate_steps_and_platinum_waits_for_gold():
    graph = _graph()
    nodes = {
        (layer, name): graph.get(AssetKey([layer, name])).assets_def.node_def.name
        for layer, name in (
            ("silver", "vendors"),
            ("silver", "transactions"),
            ("silver", "rejects"),
            ("gold", "monthly_summary"),
            ("platinum", "documents"),
        )
    }
    # silver: reference models, the daily partitioned models, then the rejects view over both
    assert list(nodes.values()) == [
        "dbt_silver",
        "dbt_silver_daily",
        "dbt_silver_rejects",
        "dbt_gold",
        "dbt_platinum",
    ]
    parents = graph.get(AssetKey(["platinum", "documents"])).parent_keys
    assert {AssetKey(["gold", g]) for g in DOCUMENTED} <= parents


def test_freshness_policies_on_every_layer():
    graph = _graph()
    for key in graph.materializable_asset_keys:
        if key.path[0] == "agents":
            continue  # LLM passes are started on purpose (assay run --agents), not kept fresh
        assert graph.get(key).freshness_policy is not None, key.to_user_string()


def test_reject_reasons_are_declared_once_in_a_seed_the_rejects_model_is_tested_against():
    from assay.assets.dbt_project import dbt_project

    manifest = json.loads(dbt_project.manifest_path.read_text())
    relationship = next(
        n["test_metadata"]["kwargs"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test"
        and n.get("test_metadata", {}).get("name") == "relationships"
        and n.get("column_name") == "reason_class"
    )
    assert relationship["to"] == "ref('reject_reasons')" and relationship["field"] == "reason_class"
    assert {r.dimension for r in reject_reasons().values()} == set(DIMENSIONS)
    assert set(SILVER) == {source for r in reject_reasons().values() for source in r.sources}


def test_gold_rules_are_the_gold_models_dbt_tests():
    from assay.quality.rules import gold_rules

    rules = gold_rules()
    assert set(rules) == set(GOLD)
    summary = rules["monthly_summary"]
    assert summary.keys == (("month", "category", "department"),)
    assert "transaction_count > 0" in summary.valid and "month <= current_date" in summary.timely
    assert {"month", "category", "department", "total_amount_eur", "transaction_count"} == set(
        summary.required
    )
    assert set(summary.upstream) == {"silver.transactions", "silver.employees"}


def test_rename_guess_pairs_close_names_only():
    assert _renames(["amount", "date"], ["amt", "note"]) == {"amount": "amt"}
    assert _renames(["vendor_id"], ["vendor"]) == {"vendor_id": "vendor"}
    assert _renames(["currency"], ["colour"]) == {}


def test_thresholds_come_from_the_environment(monkeypatch):
    from assay.quality.config import get_quality_settings

    monkeypatch.setenv("ASSAY_DQ_SILVER_MIN_SCORE", "0.9")
    monkeypatch.setenv("ASSAY_DQ_REJECT_RATE_LIMITS", '{"duplicate": 0.05}')
    settings = get_quality_settings()
    assert settings.min_score("silver") == 0.9 and settings.min_score("gold") == 1.0
    assert settings.reject_rate_limit("duplicate") == 0.05
    assert settings.reject_rate_limit("orphan_vendor") == 0.02


# -- the clean sample ---------------------------------------------------------------------------


def test_clean_sample_passes_every_check(clean):
    assert clean.success, clean.step_failures
    failed = {key: c.description for key, c in clean.checks.items() if not c.passed}
    assert failed == {}
    names = {name for _, name in clean.checks}
    assert {"dq_score", "gx_profile", "schema_drift", "reject_rate_duplicate"} <= names
    assert len(clean.checks) == len(_check_specs())  # every check of the graph ran
    assert {f"gold/{g}" for g in GOLD} | {"platinum/documents"} <= clean.materialized
    # scores are also asset metadata (observations), per table
    assert clean.observations["silver/transactions"]["dq/overall_pct"].value == pytest.approx(
        100 * (1 - 70 / 2010), abs=1e-4
    )


def _scores(conn, run_id) -> dict[str, dict]:
    cur = conn.execute("select * from quality.dq_scores where run_id = %s", [run_id])
    names = [c.name for c in cur.description]
    return {row[names.index("table_name")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def test_scores_equal_an_independent_computation(clean, sample, conn):
    landing = sample.landing_dir
    scores = _scores(conn, clean.run_id)
    assert set(scores) == {f"silver.{t}" for t in SILVER} | {f"gold.{g}" for g in GOLD}

    # silver.transactions: every landing line is a bronze row; the truth says which are defective
    bronze_rows = sum(
        1
        for path in (landing / "transactions").glob("*.jsonl")
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    )
    truth = pl.read_csv(sample.truth_dir / "lines.csv")
    labelled = truth.filter(pl.col("defect").fill_null("") != "")
    defects = dict(labelled.group_by("defect").len().iter_rows())
    assert len(defects) == len(DEFECTS)
    dimension_of = {"parse_error": "completeness", "duplicate": "uniqueness", "future_date": "timeliness"}
    short = dict.fromkeys(DIMENSIONS, 0)
    for label, n in defects.items():
        short[dimension_of.get(label, "validity")] += n
    tx = scores["silver.transactions"]
    assert tx["input_rows"] == bronze_rows == truth.height
    for dimension in DIMENSIONS:
        assert tx[dimension] == pytest.approx(1 - short[dimension] / bronze_rows, abs=1e-12), dimension
    assert tx["overall"] == pytest.approx(1 - sum(defects.values()) / bronze_rows, abs=1e-12)
    assert tx["row_count"] == bronze_rows - sum(defects.values())
    assert tx["passed"] and tx["threshold"] == 0.95

    # the other sources carry no defects: every row is good
    for source in ("events", "vendors", "employees"):
        rows = sum(pl.read_csv(p).height for p in (landing / source).glob("*.csv"))
        score = scores[f"silver.{source}"]
        assert score["input_rows"] == score["row_count"] == rows
        assert [score[d] for d in (*DIMENSIONS, "overall")] == [1.0] * 5

    # gold: every row good, row counts as polars groups silver
    silver = pl.DataFrame(
        conn.execute(
            "select t.transaction_date, t.category, e.department, t.vendor_id from silver.transactions t"
            " left join silver.employees e using (employee_id)"
        ).fetchall(),
        schema=["date", "category", "department", "vendor_id"],
        orient="row",
    )
    months = silver.select(
        pl.col("date").dt.truncate("1mo"),
        pl.col("category").fill_null("x"),
        pl.col("department").fill_null("x"),
    ).unique()
    assert scores["gold.monthly_summary"]["row_count"] == months.height
    assert scores["gold.vendor_spend"]["row_count"] == silver["vendor_id"].n_unique()
    for table in GOLD:
        assert scores[f"gold.{table}"]["overall"] == 1.0 and scores[f"gold.{table}"]["passed"]


def test_check_results_are_stored_for_assay_quality(clean, conn):
    stored = conn.execute(
        "select asset_key, check_name, passed from quality.check_results where run_id = %s", [clean.run_id]
    ).fetchall()
    assert {(a, c) for a, c, _ in stored} == set(clean.checks)  # dbt tests and quality checks alike
    assert len(stored) == len(clean.checks)  # once each (keyed by run, asset and check)
    assert all(passed for _, _, passed in stored)


def test_assay_quality_on_clean_data(clean, conn):
    from assay.orchestration.cli import main
    from assay.quality.report import build_report

    result = CliRunner().invoke(main, ["quality", "--examples", "1"])
    assert result.exit_code == 0, result.output
    assert "silver.transactions" in result.output and "96.52%" in result.output
    assert "Failing checks" in result.output and "Top reject reasons (silver.rejects):" in result.output
    assert "transactions duplicate" in " ".join(result.output.split())
    # other tests in this session fail checks on purpose (e.g. a strict conformance threshold);
    # nothing the clean run evaluated is among the failing ones
    assert not [c for c in build_report(conn).failing_checks if c["run_id"] == clean.run_id]


def test_a_failing_gold_table_blocks_platinum(clean, conn):
    """Corrupt one gold row, run gold's quality checks and the dbt tests of the rules it breaks with
    platinum: platinum must not build, and the dbt tests (the rules' one home) name the row."""
    from assay.assets.bronze import bronze_assets
    from assay.assets.dbt import dbt_models, dbt_resource
    from assay.assets.quality import quality_checks
    from assay.core.database import PostgresResource

    key = conn.execute(
        "select month, category, department, transaction_count from gold.monthly_summary limit 1"
    ).fetchone()
    where = "month = %s and category = %s and department = %s"
    summary = AssetKey(["gold", "monthly_summary"])
    positive_count = next(
        name
        for key, name in _check_specs()
        if key == "gold/monthly_summary"
        and name.startswith("expression_is_true")
        and "transaction_count" in name
    )
    gold_checks = [
        *(AssetCheckKey(AssetKey(["gold", g]), name) for g in GOLD for name in ("dq_score", "gx_profile")),
        AssetCheckKey(summary, positive_count),
        AssetCheckKey(summary, "gold_reconciles_with_silver"),
    ]
    conn.execute(f"update gold.monthly_summary set transaction_count = 0 where {where}", key[:3])
    try:
        result = materialize(
            [*bronze_assets, *dbt_models, *quality_checks],
            selection=AssetSelection.assets(AssetKey(["platinum", "documents"]))
            | AssetSelection.checks(*gold_checks),
            resources={"postgres": PostgresResource(), "dbt": dbt_resource()},
            raise_on_error=False,
        )
    finally:
        conn.execute(
            f"update gold.monthly_summary set transaction_count = %s where {where}", [key[3], *key[:3]]
        )
    facts = _facts(result)
    conn.execute("delete from quality.dq_scores where run_id = %s", [facts.run_id])
    assert not facts.success
    assert "platinum/documents" not in facts.materialized
    gate = facts.checks[("gold/monthly_summary", "dq_score")]
    assert not gate.passed and gate.severity == AssetCheckSeverity.ERROR
    assert "gold.monthly_summary" in gate.description and "validity" in gate.description
    failing = gate.metadata["failing_rows"].records  # the corrupted row, with what it fails
    assert [r.data["transaction_count"] for r in failing] == [0] and failing[0].data["fails"] == "validity"
    for name in (positive_count, "gold_reconciles_with_silver"):
        assert not facts.checks[("gold/monthly_summary", name)].passed, name
    assert facts.checks[("gold/vendor_spend", "dq_score")].passed


def test_row_count_change_against_the_previous_run_is_a_warning(clean, postgres, conn):
    from assay.quality.expectations import read_facts, run_suite

    rows = conn.execute("select count(*) from silver.transactions").fetchone()[0]
    steady = run_suite(postgres, "silver.transactions", "gx_profile", read_facts(conn, rows, 0.5), 3)
    assert steady.passed, steady.failures
    jump = run_suite(postgres, "silver.transactions", "gx_profile", read_facts(conn, rows * 3, 0.5), 3)
    assert not jump.passed
    assert [f["expectation"] for f in jump.failures] == ["expect_table_row_count_to_be_between"]
    assert f"observed {rows}" in jump.failures[0]["observed"]


def test_gx_recovers_when_its_pooled_connections_are_terminated(clean, postgres, conn):
    # the GX context lives as long as the process; a server restart once left it only dead connections
    from assay.quality.expectations import GX_APPLICATION, read_facts, run_suite

    rows = conn.execute("select count(*) from silver.transactions").fetchone()[0]
    (day,) = conn.execute("select max(partition_date) from silver.transactions").fetchone()
    (day_rows,) = conn.execute(
        "select count(*) from silver.transactions where partition_date = %s", [day]
    ).fetchone()
    facts = read_facts(conn, rows, 0.5, window=(day, day), table_rows=rows, window_rows=day_rows)
    # one day of the small sample is too few rows for the profile to pass; it only opens the pool here
    assert run_suite(postgres, "silver.transactions", "gx_profile", facts, 3).evaluated
    (killed,) = conn.execute(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = %s",
        [GX_APPLICATION],
    ).fetchone()
    assert killed >= 1  # the pool kept at least one connection open
    # the whole table, unless an earlier test added it: GX tests the connection before adding it
    again = run_suite(postgres, "silver.transactions", "gx_profile", read_facts(conn, rows, 0.5), 3)
    assert again.passed, again.failures


def test_a_daily_gate_scores_its_window_and_counts_the_whole_table(clean, sample, conn, postgres):
    """A daily table's gate scores the days of its run (bronze, silver and rejects of those days),
    records that window in quality.dq_scores, and still counts the whole table."""
    import datetime as dt

    from assay.landing.files import file_day
    from assay.quality.expectations import read_facts, run_suite
    from assay.quality.scores import silver_score

    truth = pl.read_csv(sample.truth_dir / "lines.csv")
    per_file = (
        truth.group_by("file")
        .agg(rows=pl.len(), bad=(pl.col("defect").fill_null("") != "").sum())
        .sort(["bad", "file"], descending=True)
    )
    file, rows, bad = per_file.row(0)  # the day with the most defective lines
    assert bad > 0
    day = file_day(Path(file))
    score = silver_score(conn, "transactions", (day, day))
    whole_rows = conn.execute("select count(*) from silver.transactions").fetchone()[0]
    assert score.window == (day, day)
    assert (score.input_rows, score.row_count) == (rows, rows - bad)
    assert score.overall == pytest.approx(1 - bad / rows, abs=1e-12)
    assert score.table_rows == whole_rows > score.row_count
    assert sum(score.details["rejected_by_class"].values()) == bad

    # the clean run covered every day: its scores of the daily tables say so; the others are whole
    scores = _scores(conn, clean.run_id)
    days = [file_day(Path(f)) for f in truth["file"]]
    for table in ("transactions", "events"):
        row = scores[f"silver.{table}"]
        assert row["window_start"] <= min(days) and row["window_end"] >= max(days), table
        assert row["table_rows"] == row["row_count"]
    for table in ("silver.vendors", "silver.employees", *(f"gold.{g}" for g in GOLD)):
        assert scores[table]["window_start"] is None and scores[table]["table_rows"] is not None

    # GX profiles the window's rows; the row-count change is the whole table's
    facts = read_facts(conn, whole_rows, 0.5, window=(day, day), table_rows=whole_rows, window_rows=rows)
    profiled = run_suite(postgres, "silver.transactions", "gx_profile", facts, 3)
    assert profiled.passed, profiled.failures
    assert f"over {day} .. {day}" in profiled.summary()
    jump = read_facts(conn, whole_rows * 3, 0.5, window=(day, day), table_rows=whole_rows, window_rows=rows)
    failed = run_suite(postgres, "silver.transactions", "gx_profile", jump, 3)
    assert [f["expectation"] for f in failed.failures] == ["expect_table_row_count_to_be_between"]
    assert f"observed {whole_rows:,} rows in the whole table" == failed.failures[0]["observed"]
    none = dt.date(2031, 1, 1)
    empty = run_suite(
        postgres,
        "silver.transactions",
        "gx_profile",
        read_facts(conn, whole_rows, 0.5, window=(none, none), table_rows=whole_rows, window_rows=0),
        3,
    )
    assert empty.passed and empty.empty_window and "no rows in the window" in empty.summary()


# -- the high-defect sample ---------------------------------------------------------------------


def test_high_defects_stop_before_gold(high):
    assert not high.success
    assert {f"silver/{t}" for t in SILVER} <= high.materialized
    assert not {k for k in high.materialized if k.startswith(("gold/", "platinum/"))}
    assert "quality_silver_transactions" in high.step_failures
    # the other silver tables are fine: their gates pass (only what is built on transactions stops)
    for table in ("events", "vendors", "employees"):
        assert high.checks[(f"silver/{table}", "dq_score")].passed


@pytest.mark.parametrize("label", [label for _, label in DEFECTS])
def test_each_defect_class_fails_its_check(high, label):
    check = high.checks[("silver/transactions", f"reject_rate_{label}")]
    truth = high.extra["truth"]
    injected = truth.filter(pl.col("defect") == label).height
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR and check.blocking
    assert check.metadata["rejected_rows"].value == injected
    assert check.metadata["rate_pct"].value > check.metadata["limit_pct"].value == 2.0
    assert f"reason_class = '{label}'" in check.description and "silver.rejects" in check.description


def test_dq_gate_message_names_table_dimension_shortfall_and_rejects(high):
    gate = high.checks[("silver/transactions", "dq_score")]
    assert not gate.passed and gate.blocking
    text = gate.description
    # a partitioned run's gate scores its window and names it beside the whole table's count
    assert text.startswith("silver.transactions over ") and "bronze rows of those days; whole table " in text
    assert ") scored " in text
    assert "below the 95.00 % threshold" in text
    worst = text.split("By dimension: ", 1)[1]
    assert worst.startswith("validity ")  # four validity classes: the largest shortfall comes first
    assert "points short" in text and "silver.rejects" in text
    assert gate.metadata["overall_pct"].value < 95
    # the failed step says which blocking check stopped it
    assert "dq_score" in high.step_failures["quality_silver_transactions"]


def test_schema_drift_is_reported_and_the_file_still_loads(high):
    drift = high.checks[("bronze/transactions", "schema_drift")]
    assert not drift.passed and drift.severity == AssetCheckSeverity.WARN and not drift.blocking
    assert drift.metadata["extra_fields"].value == ["amt", "note"]
    assert drift.metadata["missing_fields"].value == ["amount"]
    assert drift.metadata["renamed_fields"].value == {"amount": "amt"}
    assert DRIFT_FILE in drift.metadata["diff"].value
    assert all(
        high.checks[(f"bronze/{s}", "schema_drift")].passed for s in ("events", "vendors", "employees")
    )
    # nothing lost: all three lines are in bronze, and silver rejects them for the missing field
    assert high.extra["drift_bronze_rows"] == 3
    assert high.extra["drift_rejects"] == [("missing_field:amount", 3)]
    assert "silver/transactions" in high.materialized  # WARN does not block


def test_assay_quality_explains_the_failure(high):
    report, text = high.extra["report"], high.extra["report_text"]
    scores = {s["table_name"]: s for s in report.scores}
    assert not scores["silver.transactions"]["passed"] and "gold.monthly_summary" not in scores
    failing = {(c["asset_key"], c["check_name"]) for c in report.failing_checks}
    assert ("silver/transactions", "dq_score") in failing
    assert ("bronze/transactions", "schema_drift") in failing
    reasons = {(r["source"], r["reason"]): r for r in report.reject_reasons}
    assert (
        reasons[("transactions", "duplicate")]["n"]
        == high.checks[("silver/transactions", "reject_rate_duplicate")].metadata["rejected_rows"].value
    )
    assert reasons[("transactions", "duplicate")]["examples"]
    assert "FAIL" in text and "nothing built from silver.transactions" in text
    # the daily table's score names the days it covers; a whole-table score names none
    window = scores["silver.transactions"]
    assert window["window_start"] and f"days {window['window_start']}..{window['window_end']}" in text
    (vendors,) = (line for line in text.splitlines() if line.strip().startswith("silver.vendors "))
    assert "days" not in vendors
