"""Process mining: a hand-built log with answers worked out by hand, pm4py as an independent
reference for the polars DFG and the variant-based discovery, and the pipeline's gold.process_*
tables on the generator's sample against ground truth and SQL recomputations."""

import datetime as dt
import math

import pandas as pd
import polars as pl
import pytest
from dagster import AssetCheckSeverity, materialize
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from assay.assets import process
from assay.landing.sample import ACTIVITIES
from assay.mining import mine as mining
from assay.mining import models as process_models
from assay.mining import stats as process_stats
from assay.mining.log import EventLogConfig, EventLogError, case_table, load_event_log, normalise

T0 = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)
S, MA, FR, RC, RS, RJ, AP, PAY = ACTIVITIES
# case -> [(activity, hours after submit)]
TINY = {
    "c1": [(S, 0), (MA, 2), (AP, 3), (PAY, 6)],
    "c2": [(S, 0), (MA, 4), (AP, 5), (PAY, 6)],
    "c3": [(S, 0), (AP, 1), (PAY, 3)],  # approval skipped
    "c4": [(S, 0), (MA, 1), (RC, 2), (RS, 10), (MA, 11), (AP, 12), (PAY, 14)],
    "c5": [(S, 0), (MA, 8), (RJ, 9)],
    "c6": [(S, 0), (MA, 2), (AP, 3), (PAY, 4), (PAY, 5)],  # paid twice
}


def _raw(cases: dict[str, list[tuple[str, float]]]) -> pl.DataFrame:
    rows = [
        {
            "case_id": c,
            "activity": a,
            "event_ts": T0 + dt.timedelta(hours=h),
            "resource": f"R{i}",
            "source_order": i,
        }
        for c, trace in cases.items()
        for i, (a, h) in enumerate(trace)
    ]
    schema = {
        "case_id": pl.String,
        "activity": pl.String,
        "event_ts": pl.Datetime("us", "UTC"),
        "resource": pl.String,
        "source_order": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


@pytest.fixture(scope="module")
def tiny_events() -> pl.DataFrame:
    # shuffled on purpose: normalise() must restore case order
    return normalise(_raw(TINY).sample(fraction=1.0, shuffle=True, seed=3))


@pytest.fixture(scope="module")
def tiny_result(tiny_events):
    attributes = pl.DataFrame(
        {
            "case_id": list(TINY),
            "amount": [120.0, 80.0, 1500.0, 40.0, 990.0, 300.0],
            "category": ["travel", "travel", "hardware", "meals", None, "travel"],
            "department": ["Sales", "Sales", "Sales", "HR", "HR", "HR"],
            "vendor_id": ["V1"] * 6,
            "vendor_name": ["Acme"] * 6,
        }
    )
    return mining.mine(tiny_events, case_table(tiny_events, attributes), mining.ProcessMiningConfig())


def _pm4py_frame(events: pl.DataFrame) -> pd.DataFrame:
    # pm4py wants text columns: a pandas `category` (what a categorical activity becomes) is refused
    return events.select(
        pl.col("case_id").alias("case:concept:name"),
        pl.col("activity").cast(pl.String).alias("concept:name"),
        pl.col("event_ts").alias("time:timestamp"),
    ).to_pandas()


# --- the hand-built log ------------------------------------------------------------------------


def test_normalise_orders_and_numbers_events(tiny_events):
    c4 = tiny_events.filter(pl.col("case_id") == "c4")
    assert c4["activity"].to_list() == [S, MA, RC, RS, MA, AP, PAY]
    assert c4["event_index"].to_list() == list(range(7))
    assert tiny_events.height == 26


def test_dfg_counts_and_transition_times(tiny_result):
    dfg = tiny_result.tables["process_dfg"]
    follows = {
        (r["source"], r["target"]): (r["frequency"], r["mean_hours"], r["median_hours"], r["p95_hours"])
        for r in dfg.filter(pl.col("edge_kind") == "follows").iter_rows(named=True)
    }
    # Submit -> Manager Approval waits 2, 4, 1, 8, 2 h: median 2, p95 = 4 + 0.8 * (8 - 4)
    assert follows == {
        (S, MA): pytest.approx((5, 3.4, 2.0, 7.2)),
        (AP, PAY): pytest.approx((5, 1.8, 2.0, 2.8)),  # 3, 1, 2, 2, 1 h
        (MA, AP): (4, 1.0, 1.0, 1.0),
        (S, AP): (1, 1.0, 1.0, 1.0),
        (MA, RC): (1, 1.0, 1.0, 1.0),
        (RC, RS): (1, 8.0, 8.0, 8.0),
        (RS, MA): (1, 1.0, 1.0, 1.0),
        (MA, RJ): (1, 1.0, 1.0, 1.0),
        (PAY, PAY): (1, 1.0, 1.0, 1.0),
    }
    ends = dfg.filter(pl.col("edge_kind") != "follows").select("edge_kind", "source", "target", "frequency")
    assert ends.rows() == [("start", None, S, 6), ("end", PAY, None, 5), ("end", RJ, None, 1)]


def test_variants_counts_shares_and_durations(tiny_result):
    variants = tiny_result.tables["process_variants"]
    assert variants.select("variant_rank", "variant", "cases", "median_hours").rows() == [
        (1, "Submit → Manager Approval → Approve → Pay", 2, 6.0),
        (2, "Submit → Approve → Pay", 1, 3.0),
        (3, "Submit → Manager Approval → Approve → Pay → Pay", 1, 5.0),
        (4, "Submit → Manager Approval → Reject", 1, 9.0),
        (
            5,
            "Submit → Manager Approval → Request Changes → Resubmit → Manager Approval → Approve → Pay",
            1,
            14.0,
        ),
    ]
    assert variants["case_share"].to_list() == pytest.approx([2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6])
    assert variants["activities"][1] == '{"Submit","Approve","Pay"}'
    assert variants["variant_id"][0] == process_stats.variant_id([S, MA, AP, PAY])


def test_token_replay_fitness_per_case(tiny_result):
    conformance = {r["case_id"]: r for r in tiny_result.tables["process_conformance"].iter_rows(named=True)}
    # c3 (Submit, Approve, Pay): Approve finds no token behind Manager Approval (1 missing) and the
    # token waiting for Manager Approval stays (1 remaining); 4 produced (initial marking + 3
    # transitions), 4 consumed (3 transitions + final marking): 1/2 (1 - 1/4) + 1/2 (1 - 1/4)
    c3 = conformance["c3"]
    assert (c3["missing_tokens"], c3["consumed_tokens"], c3["remaining_tokens"], c3["produced_tokens"]) == (
        1,
        4,
        1,
        4,
    )
    assert c3["trace_fitness"] == 0.75 and not c3["is_fit"]
    assert c3["deviations"] == "missing: Manager Approval"
    # c6: the second Pay has no token (1 missing of 8) and leaves one behind (1 remaining of 8)
    assert conformance["c6"]["trace_fitness"] == 0.875 and conformance["c6"]["deviations"] == "extra: Pay"
    assert {c for c, r in conformance.items() if r["is_fit"]} == {"c1", "c2", "c4", "c5"}
    assert all(conformance[c]["trace_fitness"] == 1.0 for c in ("c1", "c2", "c4", "c5"))
    # log fitness: 2 missing and 2 remaining of 41 consumed / produced tokens over all cases
    assert tiny_result.log_fitness == pytest.approx(1 - 2 / 41)
    assert tiny_result.fitting_cases == 4


def test_alignments_report_the_deviating_moves(tiny_result):
    deviations = tiny_result.tables["process_variant_deviations"]
    rows = deviations.select("variant", "move_type", "activity", "trace_position", "cases").rows()
    assert rows[0] == ("Submit → Approve → Pay", "model", MA, 1, 1)
    # Either Pay of "... Pay → Pay" can be the extra one: both alignments cost the same, and which
    # one pm4py's search returns first is not fixed.
    variant, move, activity, position, cases = rows[1]
    assert variant == "Submit → Manager Approval → Approve → Pay → Pay"
    assert (move, activity, cases) == ("log", PAY, 1)
    assert position in (3, 4) and len(rows) == 2
    # one deviation each: 1 - cost / (trace length + shortest model path)
    assert deviations["alignment_fitness"].to_list() == pytest.approx([1 - 1 / 6, 1 - 1 / 8])


def test_violation_rate_per_variant(tiny_result):
    rates = {r["variant_rank"]: r["violation_rate"] for r in tiny_result.per_variant.iter_rows(named=True)}
    assert rates == {1: 0.0, 2: 1.0, 3: 1.0, 4: 0.0, 5: 0.0}


def test_bottlenecks_rank_waiting_time(tiny_result):
    activities = tiny_result.tables["process_bottlenecks"].filter(pl.col("kind") == "activity")
    # total hours waited for each activity: Manager Approval 2+4+1+8+2+1, Pay 3+1+2+2+1+1, ...
    assert activities.select("target", "occurrences", "total_hours", "rank_by_total").rows()[:3] == [
        (MA, 6, 18.0, 1),
        (PAY, 6, 10.0, 2),
        (RS, 1, 8.0, 3),
    ]
    assert activities["share_of_wait"].sum() == pytest.approx(1.0)
    assert activities.filter(pl.col("rank_by_mean") == 1)["target"].item() == RS


def test_case_durations_by_department_and_category(tiny_result):
    durations = tiny_result.tables["process_case_durations"]
    rows = {
        (r["grouping"], r["department"], r["category"]): (r["cases"], r["mean_hours"])
        for r in durations.iter_rows(named=True)
    }
    assert rows[("department", "Sales", None)] == (3, 5.0)  # 6, 6, 3 h
    assert rows[("department", "HR", None)] == (3, pytest.approx(28 / 3))  # 14, 9, 5 h
    assert rows[("department, category", "HR", "(unknown)")] == (1, 9.0)
    assert rows[("category", None, "travel")] == (3, pytest.approx(17 / 3))
    assert rows[("all", None, None)] == (6, pytest.approx(43 / 6))


def _waits_by_name(events: pl.DataFrame, by: str) -> pl.DataFrame:
    """`_grouped_waits` the slow, obvious way: a group-by on the activity names themselves."""
    follows, ts = pl.col("event_index") > 0, pl.col("event_ts")
    steps = events.select(
        source=pl.when(follows).then(pl.col("activity").cast(pl.String).shift(1)),
        target=pl.col("activity").cast(pl.String),
        us=pl.when(follows).then((ts - ts.shift(1)).dt.total_microseconds()),
    )
    if by == "target":
        steps = steps.filter(pl.col("source").is_not_null()).with_columns(source=pl.lit(None, pl.String))
    us, hours = pl.col("us"), 3.6e9
    waits = (
        steps.filter(us.is_not_null())
        .group_by("source", "target")
        .agg(
            frequency=pl.len().cast(pl.Int64),
            mean_hours=us.mean() / hours,
            median_hours=us.median() / hours,
            p95_hours=us.quantile(0.95, interpolation="linear") / hours,
            min_hours=us.min() / hours,
            max_hours=us.max() / hours,
            total_hours=us.sum() / hours,
        )
    )
    starts = (
        steps.filter(pl.col("us").is_null())
        .group_by("source", "target")
        .agg(frequency=pl.len().cast(pl.Int64))
    )
    return pl.concat([waits, starts] if by == "edge" else [waits], how="diagonal_relaxed")


@pytest.mark.parametrize("by", ["edge", "target"])
def test_grouping_on_codes_equals_grouping_by_name(tiny_events, by):
    assert tiny_events.schema["activity"] == pl.Categorical  # as every reader makes it
    ours = process_stats._grouped_waits(tiny_events, by).sort("source", "target", nulls_last=True)
    named = _waits_by_name(tiny_events, by)
    assert ours.equals(named.select(ours.columns).sort("source", "target", nulls_last=True))
    assert ours.height == (10 if by == "edge" else 6)  # 9 edges + starts; 6 activities wait


@pytest.mark.parametrize("kind", ["text", "enum", "codes far apart"])
def test_the_dfg_is_the_same_whatever_the_activity_column_holds(tiny_events, kind):
    text = tiny_events.with_columns(pl.col("activity").cast(pl.String))
    if kind == "enum":
        events = text.with_columns(pl.col("activity").cast(pl.Enum(sorted(ACTIVITIES, reverse=True))))
    elif kind == "codes far apart":
        # other categoricals made before the log's: its codes are large and not contiguous
        pl.Series([f"unrelated {i}" for i in range(5000)], dtype=pl.Categorical)
        renamed = text.with_columns(pl.col("activity") + pl.lit(" (far)"))
        pl.Series(
            [n for a in ACTIVITIES[::2] for n in (f"{a} (far)", f"gap after {a}")], dtype=pl.Categorical
        )
        events, text = renamed.with_columns(pl.col("activity").cast(pl.Categorical)), renamed
    else:
        events = text
    assert process_stats.directly_follows(events).equals(
        process_stats.directly_follows(text.with_columns(pl.col("activity").cast(pl.Categorical)))
    )
    named = _waits_by_name(text, "edge").filter(pl.col("source").is_not_null())
    follows = process_stats.directly_follows(events).filter(pl.col("edge_kind") == "follows")
    assert (
        follows.select("source", "target", "frequency", "median_hours")
        .sort("source", "target")
        .equals(named.select("source", "target", "frequency", "median_hours").sort("source", "target"))
    )


def test_polars_dfg_equals_pm4py_dfg(tiny_events):
    import pm4py

    _assert_same_dfg(tiny_events, pm4py)


def _assert_same_dfg(events: pl.DataFrame, pm4py) -> None:
    ours = process_stats.directly_follows(events)
    frame = _pm4py_frame(events)
    dfg, starts, ends = pm4py.discover_dfg(frame)
    follows = ours.filter(pl.col("edge_kind") == "follows")
    assert {(r["source"], r["target"]): r["frequency"] for r in follows.iter_rows(named=True)} == dict(dfg)
    assert dict(
        zip(*ours.filter(pl.col("edge_kind") == "start").select("target", "frequency"), strict=True)
    ) == dict(starts)
    assert dict(
        zip(*ours.filter(pl.col("edge_kind") == "end").select("source", "frequency"), strict=True)
    ) == dict(ends)
    performance, _, _ = pm4py.discover_performance_dfg(frame)
    for row in follows.iter_rows(named=True):
        theirs = performance[(row["source"], row["target"])]
        assert row["mean_hours"] * 3600 == pytest.approx(theirs["mean"], rel=1e-9)
        assert row["median_hours"] * 3600 == pytest.approx(theirs["median"], rel=1e-9)


def test_discovery_on_variants_equals_pm4py_on_the_full_log(tiny_events, tiny_result):
    import pm4py

    tree = pm4py.discover_process_tree_inductive(_pm4py_frame(tiny_events))
    assert tiny_result.discovered_tree == str(tree)
    discovered = tiny_result.tables["process_model"].filter(pl.col("model") == "discovered")
    assert discovered["log_fitness"].item() == 1.0  # the plain inductive miner fits every trace


def test_pnml_is_deterministic_and_readable_by_pm4py(tiny_result):
    from pm4py.objects.petri_net.importer.variants import pnml

    reference = process_models.load_reference_model()
    text = process_models.to_pnml(reference)
    assert text == process_models.to_pnml(process_models.load_reference_model())
    assert text == tiny_result.tables["process_model"].filter(pl.col("model") == "reference")["pnml"].item()
    net, initial, final = pnml.import_net_from_string(text.encode())
    labels = sorted(t.label for t in net.transitions if t.label)
    assert labels == sorted([S, MA, FR, RC, RS, RJ, AP, PAY])
    assert (len(net.places), len(net.transitions), len(net.arcs)) == (8, 10, 20)
    read_back = process_models.Model("read", net, initial, final)
    assert process_models.replay(read_back, [[S, AP, PAY]])["trace_fitness"].item() == 0.75
    arcs = tiny_result.tables["process_model_arcs"].filter(pl.col("model") == "reference")
    assert arcs.height == 20 and arcs.filter(pl.col("target_label") == MA)["source_kind"].to_list() == [
        "place"
    ]


def test_an_empty_log_mines_to_empty_tables():
    empty = normalise(_raw({}))
    result = mining.mine(
        empty,
        case_table(empty, pl.DataFrame(schema=_case_attribute_schema())),
        mining.ProcessMiningConfig(),
    )
    assert result.cases == 0 and result.log_fitness == 1.0
    assert result.tables["process_dfg"].is_empty() and result.tables["process_conformance"].is_empty()
    assert result.tables["process_model"]["model"].to_list() == ["discovered", "reference"]


def _case_attribute_schema() -> dict[str, pl.DataType]:
    return {
        "case_id": pl.String,
        "amount": pl.Float64,
        "category": pl.String,
        "department": pl.String,
        "vendor_id": pl.String,
        "vendor_name": pl.String,
    }


def test_reference_model_file_is_versioned():
    reference = process_models.load_reference_model()
    assert reference.version.startswith("1 (sha256:")
    assert reference.tree_text == (
        "->( 'Submit', *( 'Manager Approval', ->( 'Request Changes', 'Resubmit' ) ), "
        "X( ->( X( tau, 'Finance Review' ), 'Approve', 'Pay' ), 'Reject' ) )"
    )


def test_csv_log_with_a_column_mapping(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "Ticket,Step,When,Who,Value,Team\n"
        "A,open,03.03.2025 09:00,ann,10.5,ops\n"
        "A,close,03.03.2025 11:30,bob,,ops\n"
        "B,open,04.03.2025 08:00,ann,7,\n"
        "B,close,not a date,bob,7,dev\n"
        ",open,04.03.2025 08:00,ann,1,dev\n",
        encoding="utf-8",
    )
    config = EventLogConfig(
        source="csv",
        path=str(path),
        case_id_column="Ticket",
        activity_column="Step",
        timestamp_column="When",
        resource_column="Who",
        timestamp_format="%d.%m.%Y %H:%M",
        timestamp_time_zone="Europe/Berlin",
        case_attribute_columns={"amount": "Value", "department": "Team"},
    )
    events, cases, dropped = load_event_log(None, config)
    assert dropped == 2  # the unparsable timestamp and the row without a case id
    assert events.select("case_id", "event_index", "activity", "resource").rows() == [
        ("A", 0, "open", "ann"),
        ("A", 1, "close", "bob"),
        ("B", 0, "open", "ann"),
    ]
    assert events["event_ts"][0] == dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)  # 09:00 CET
    assert cases.select("case_id", "amount", "department", "events", "duration_hours").rows() == [
        ("A", 10.5, "ops", 2, 2.5),
        ("B", 7.0, "dev", 1, 0.0),
    ]
    with pytest.raises(EventLogError, match="not in the log"):
        load_event_log(None, EventLogConfig(source="csv", path=str(path), case_id_column="Case"))


def test_xes_log_reads_like_the_original(tmp_path, tiny_events):
    import pm4py

    path = tmp_path / "tiny.xes"
    frame = _pm4py_frame(tiny_events).assign(**{"org:resource": tiny_events["resource"].to_list()})
    pm4py.write_xes(pm4py.format_dataframe(frame), str(path))
    events, cases, dropped = load_event_log(None, EventLogConfig(source="xes", path=str(path)))
    assert dropped == 0 and cases.height == 6
    assert events.equals(tiny_events)


# --- the pipeline on the generator's sample ------------------------------------------------------


def test_skipped_approvals_are_exactly_the_non_fitting_cases(pipeline_run, conn, sample):
    assert pipeline_run.success
    truth = pl.read_csv(sample.truth_dir / "cases.csv")
    skipped = set(truth.filter(pl.col("variant") == "skipped_approval")["case_id"])
    non_fitting = {
        r[0] for r in conn.execute("select case_id from gold.process_conformance where not is_fit")
    }
    assert len(skipped) > 50 and non_fitting == skipped
    cases_in_log = conn.execute("select count(*) from gold.process_conformance").fetchone()[0]
    assert cases_in_log == conn.execute("select count(distinct case_id) from silver.events").fetchone()[0]
    moves = conn.execute(
        "select move_type, activity, sum(cases) from gold.process_variant_deviations group by 1, 2"
    ).fetchall()
    assert moves == [("model", MA, len(skipped))]


def test_event_log_and_dfg_match_sql_over_silver(pipeline_run, conn):
    counts = conn.execute(
        "select (select count(*) from silver.events), (select count(*) from gold.process_event_log)"
    ).fetchone()
    assert counts[0] == counts[1]
    # the DFG recomputed independently with window functions over silver
    expected = conn.execute(
        """
        with ordered as (
            select activity, event_ts,
                   lag(activity) over w as previous, lag(event_ts) over w as previous_ts
            from silver.events
            window w as (partition by case_id order by event_ts, bronze_id)
        )
        select previous, activity, count(*),
               avg(extract(epoch from event_ts - previous_ts) / 3600)::float8,
               percentile_cont(0.5) within group (order by extract(epoch from event_ts - previous_ts) / 3600),
               percentile_cont(0.95) within group (order by extract(epoch from event_ts - previous_ts) / 3600)
        from ordered where previous is not null group by 1, 2
        """
    ).fetchall()
    ours = conn.execute(
        "select source, target, frequency, mean_hours, median_hours, p95_hours"
        " from gold.process_dfg where edge_kind = 'follows'"
    ).fetchall()
    assert {r[:3] for r in ours} == {r[:3] for r in expected}
    by_edge = {r[:2]: r[3:] for r in expected}
    for source, target, _, *stats in ours:
        assert stats == pytest.approx(by_edge[(source, target)], rel=1e-9)


def test_variants_match_sql_over_silver(pipeline_run, conn):
    expected = conn.execute(
        """
        with traces as (
            select case_id, string_agg(activity, ' → ' order by event_ts, bronze_id) as variant
            from silver.events group by case_id
        )
        select variant, count(*) from traces group by 1
        """
    ).fetchall()
    ours = conn.execute(
        "select variant, cases, variant_rank from gold.process_variants order by variant_rank"
    ).fetchall()
    assert {(v, c) for v, c, _ in ours} == set(expected)
    assert [c for _, c, _ in ours] == sorted((c for _, c in expected), reverse=True)
    total = conn.execute("select sum(case_share) from gold.process_variants").fetchone()[0]
    assert total == pytest.approx(1.0)


def test_polars_dfg_equals_pm4py_dfg_on_the_sample(pipeline_run, conn):
    import pm4py

    events, _ = mining.read_event_log(conn)
    _assert_same_dfg(events, pm4py)


def test_conformance_check_and_process_maps_in_metadata(pipeline_run, assay_home):
    evaluations = [
        e.event_specific_data
        for e in pipeline_run.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == process.CONFORMANCE_CHECK
    ]
    assert len(evaluations) == 1 and evaluations[0].passed
    metadata = evaluations[0].metadata
    assert 0.95 <= metadata["log_fitness"].value < 1.0
    assert "| 100% |" in metadata["violation_rate_per_variant"].value
    rates = metadata["violation_rate_by_variant_id"].value
    assert rates[process_stats.variant_id([S, AP, PAY])] == 1.0
    assert rates[process_stats.variant_id([S, MA, AP, PAY])] == 0.0
    dfg_meta = pipeline_run.asset_materializations_for_node("process_mining")
    maps = next(m.metadata for m in dfg_meta if m.asset_key == process.KEYS["process_dfg"])
    assert maps["process_map_frequency"].value.startswith(
        "![process map, frequency](data:image/png;base64,iVBOR"
    )
    for view in ("frequency", "performance"):
        assert (assay_home / "process" / f"process_map_{view}.png").read_bytes()[:4] == b"\x89PNG"


def test_reader_role_can_read_process_tables(pipeline_run, postgres):
    with postgres.connect(reader=True, autocommit=True) as reader:
        assert reader.execute("select count(*) from gold.process_conformance").fetchone()[0] > 0


def test_fitness_threshold_and_severity_are_configurable(pipeline_run, postgres, conn):
    before = conn.execute("select * from gold.process_variants order by variant_rank").fetchall()
    result = materialize(
        [process.process_mining],
        resources={"postgres": postgres},
        run_config={
            "ops": {
                "process_mining": {
                    "config": {"fitness_threshold": 0.999, "fitness_severity": "ERROR", "process_maps": False}
                }
            }
        },
        raise_on_error=False,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    # a rerun on the same log rewrites the same rows
    assert conn.execute("select * from gold.process_variants order by variant_rank").fetchall() == before
    # (a `materialize` records no check results: only the sensors and `assay run` do, so this
    # scenario's failing result never becomes the shared database's latest one)


def test_a_csv_log_is_mined_by_the_same_assets(pipeline_run, postgres, tmp_path):
    """The tiny log as a CSV with its own column names, mined into a scratch database."""
    server = conninfo_to_dict(postgres.url())
    with postgres.connect(autocommit=True) as admin:
        admin.execute("drop database if exists assay_process_scratch")
        admin.execute("create database assay_process_scratch")
    scratch = type(postgres)(database_url=make_conninfo(**{**server, "dbname": "assay_process_scratch"}))
    path = tmp_path / "tickets.csv"
    _raw(TINY).select(
        pl.col("case_id").alias("ticket"), pl.col("activity").alias("step"), pl.col("event_ts").alias("at")
    ).write_csv(path)
    result = materialize(
        process.process_assets,
        resources={"postgres": scratch},
        run_config={
            "ops": {
                "process_event_log": {
                    "config": {
                        "source": "csv",
                        "path": str(path),
                        "case_id_column": "ticket",
                        "activity_column": "step",
                        "timestamp_column": "at",
                    }
                },
                "process_mining": {"config": {"process_maps": False}},
            }
        },
    )
    assert result.success
    with scratch.connect(autocommit=True) as conn:
        fitness = dict(conn.execute("select case_id, trace_fitness from gold.process_conformance").fetchall())
        assert fitness == {"c1": 1.0, "c2": 1.0, "c3": 0.75, "c4": 1.0, "c5": 1.0, "c6": 0.875}
        log_fitness = conn.execute(
            "select log_fitness from gold.process_model where model = 'reference'"
        ).fetchone()[0]
        assert math.isclose(log_fitness, 1 - 2 / 41)
