"""Process mining on logs as the world writes them, compared with pm4py called directly: ties in
log order, lifecycle transitions, bounded alignments, configuration errors. Small in-memory logs,
no database, no pipeline."""

import random
import time

import pandas as pd
import polars as pl
import pytest
from dagster import DagsterEventType

from assay.mining import mine as mining
from assay.mining import models as process_models
from assay.mining import stats as process_stats
from assay.mining.alignments import align_bounded
from assay.mining.log import EventLogConfig, EventLogError, from_csv, from_xes, normalise

T0 = pd.Timestamp("2025-01-06 08:00", tz="UTC")


def _frame(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    """(case, activity, hours after T0, lifecycle) in log order, as pm4py's columns."""
    return pd.DataFrame(
        {
            "case:concept:name": [r[0] for r in rows],
            "concept:name": [r[1] for r in rows],
            "time:timestamp": [T0 + pd.Timedelta(hours=r[2]) for r in rows],
            "lifecycle:transition": [r[3] for r in rows],
        }
    )


def _via_xes(frame: pd.DataFrame, tmp_path, **config) -> pl.DataFrame:
    """The frame written as XES by pm4py and read back by assay (the README's `source: xes` path)."""
    import pm4py

    path = tmp_path / "log.xes"
    pm4py.write_xes(frame, str(path))
    settings = EventLogConfig(source="xes", path=str(path), **config)
    events, _ = from_xes(settings)
    return normalise(events, settings.lifecycle)


def _pm4py_read(frame: pd.DataFrame, tmp_path) -> pd.DataFrame:
    import pm4py

    path = tmp_path / "theirs.xes"
    pm4py.write_xes(frame, str(path))
    return pm4py.read_xes(str(path))


def _assert_control_flow_equal(events: pl.DataFrame, theirs: pd.DataFrame) -> None:
    import pm4py

    ours = process_stats.directly_follows(events)
    dfg, starts, ends = pm4py.discover_dfg(theirs)
    follows = ours.filter(pl.col("edge_kind") == "follows")
    assert {(r["source"], r["target"]): r["frequency"] for r in follows.iter_rows(named=True)} == dict(dfg)
    kinds = {k: ours.filter(pl.col("edge_kind") == k) for k in ("start", "end")}
    assert dict(zip(kinds["start"]["target"], kinds["start"]["frequency"], strict=True)) == dict(starts)
    assert dict(zip(kinds["end"]["source"], kinds["end"]["frequency"], strict=True)) == dict(ends)
    table, _ = process_stats.variants(events)
    ours_variants = {
        tuple(s): c for s, c in zip(process_stats.variant_sequences(table), table["cases"], strict=True)
    }
    assert ours_variants == dict(pm4py.get_variants(theirs))


# --- 1. ties keep the log's order ----------------------------------------------------------------

# Equal timestamps inside a case, logged in an order that is *not* the activities' name order
# (Zeta before Alpha). Written in time order: pm4py 2.7 takes a log's order as it is written
# (its case durations go negative on a case written out of time order), assay sorts by time.
TIES = [
    ("o1", "Create", 0, "complete"),
    ("o1", "Zeta check", 1, "complete"),
    ("o1", "Alpha check", 1, "complete"),
    ("o1", "Ship", 3, "complete"),
    ("o2", "Create", 0, "complete"),
    ("o2", "Zeta check", 2, "complete"),
    ("o2", "Alpha check", 2, "complete"),
    ("o2", "Bill", 2, "complete"),
    ("o2", "Ship", 5, "complete"),
    ("o3", "Create", 0, "complete"),
    ("o3", "Alpha check", 1, "complete"),
    ("o3", "Zeta check", 1, "complete"),
    ("o3", "Ship", 3, "complete"),
    ("o4", "Create", 0, "complete"),
    ("o4", "Zeta check", 1, "complete"),
    ("o4", "Alpha check", 1, "complete"),
    ("o4", "Ship", 4, "complete"),
    ("o5", "Create", 0, "complete"),  # a tie on the first and on the last event
    ("o5", "Bill", 0, "complete"),
    ("o5", "Ship", 2, "complete"),
    ("o5", "Alpha check", 2, "complete"),
]


def test_ties_keep_log_order_like_pm4py(tmp_path):
    events = _via_xes(_frame(TIES), tmp_path)
    o2 = events.filter(pl.col("case_id") == "o2")["activity"].to_list()
    assert o2 == ["Create", "Zeta check", "Alpha check", "Bill", "Ship"]
    _assert_control_flow_equal(events, _pm4py_read(_frame(TIES), tmp_path))


def test_ties_keep_log_order_in_case_durations(tmp_path):
    import pm4py

    events = _via_xes(_frame(TIES), tmp_path)
    table, case_variants = process_stats.variants(events)
    theirs = pm4py.get_all_case_durations(_pm4py_read(_frame(TIES), tmp_path))
    spans = events.group_by("case_id").agg(
        (pl.col("event_ts").max() - pl.col("event_ts").min()).dt.total_seconds().alias("s")
    )
    assert sorted(spans["s"].to_list()) == sorted(theirs)
    assert case_variants.height == 5 and table["cases"].sum() == 5


def test_events_written_out_of_time_order_are_sorted_by_time_ties_by_position(tmp_path):
    rows = [
        ("x", "Ship", 4, "complete"),
        ("x", "Create", 0, "complete"),
        ("x", "Zeta check", 1, "complete"),
        ("x", "Alpha check", 1, "complete"),
    ]
    import pm4py

    events = _via_xes(_frame(rows), tmp_path)
    assert events["activity"].to_list() == ["Create", "Zeta check", "Alpha check", "Ship"]
    assert events["event_index"].to_list() == [0, 1, 2, 3]
    # pm4py's DFG sorts by (case, time) with pandas' stable multi-key sort: the same edges; its
    # start/end activities, variants and case durations take the order as written instead
    theirs = _pm4py_read(_frame(rows), tmp_path)
    follows = process_stats.directly_follows(events).filter(pl.col("edge_kind") == "follows")
    edges = {(r["source"], r["target"]): r["frequency"] for r in follows.iter_rows(named=True)}
    assert edges == dict(pm4py.discover_dfg(theirs)[0])
    assert pm4py.get_start_activities(theirs) == {"Ship": 1}


# --- 3. bounded alignments -----------------------------------------------------------------------

REFERENCE = "->('a', X('b', 'c'), *('d', tau), +('e', 'f', 'g'), 'h')"


def _model():
    import pm4py

    net, initial, final = pm4py.convert_to_petri_net(pm4py.parse_process_tree(REFERENCE))
    return process_models.Model("reference", net, initial, final)


def _noisy_variants(count: int, seed: int = 7) -> list[list[str]]:
    """Distinct traces that deviate from REFERENCE in several places (swaps, extras, skips)."""
    rng = random.Random(seed)
    letters = list("abcdefghxy")
    seen, out = set(), []
    while len(out) < count:
        trace = tuple(rng.choice(letters) for _ in range(rng.randint(8, 16)))
        if trace not in seen:
            seen.add(trace)
            out.append(list(trace))
    return out


def test_generous_budget_gives_pm4py_fitness():
    import pm4py

    model = _model()
    traces = _noisy_variants(12) + [["a", "b", "d", "e", "f", "g", "h"]]
    result = align_bounded(model, traces, [1] * len(traces), variant_timeout_s=30, budget_s=120)
    assert result.coverage == 1.0 and not any(result.reasons)
    log = process_models.event_log(traces)
    theirs = pm4py.conformance_diagnostics_alignments(log, model.net, model.initial, model.final)
    assert [a.fitness for a in result.alignments] == pytest.approx([t["fitness"] for t in theirs])
    assert result.alignments[-1].moves == []


def test_tiny_budget_stops_in_time_and_reports_coverage():
    model = _model()
    traces = _noisy_variants(400, seed=11)
    weights = list(range(400, 0, -1))  # most frequent first, as mine() passes them
    lines: list[str] = []
    budget = 0.5
    result = align_bounded(model, traces, weights, 5, budget, progress=lines.append, progress_every_s=0.1)
    # no wall-clock assertion (a busy machine must not fail it): bench/process_mining.py measures how
    # close to the budget a run ends; here the budget stops the work and the rest is accounted for
    aligned = [a is not None for a in result.alignments]
    assert sum(aligned) < len(traces)
    assert aligned == sorted(aligned, reverse=True)  # a prefix: most frequent first
    assert result.coverage < 1
    assert result.coverage == pytest.approx(
        sum(w for w, a in zip(weights, aligned, strict=True) if a) / sum(weights)
    )
    assert all(
        r.startswith("not aligned: time budget")
        for r, a in zip(result.reasons, aligned, strict=True)
        if not a
    )
    assert any("variants tried" in line and "ETA" in line for line in lines)
    assert "budget of 0.5s spent" in lines[-1]


def test_mine_records_not_aligned_variants_and_coverage(tmp_path):
    traces = {f"c{i}": t for i, t in enumerate(_noisy_variants(30, seed=3))}
    rows = [(case, a, h, "complete") for case, t in traces.items() for h, a in enumerate(t)]
    events = normalise(
        pl.from_pandas(_frame(rows))
        .rename({"case:concept:name": "case_id", "concept:name": "activity", "time:timestamp": "event_ts"})
        .with_columns(resource=pl.lit(None, pl.String))
        .with_row_index("source_order")
    )
    cases = events.group_by("case_id").agg(
        department=pl.lit(None, pl.String), category=pl.lit(None, pl.String), duration_hours=pl.lit(1.0)
    )
    (tmp_path / "model.tree").write_text(REFERENCE)
    config = mining.ProcessMiningConfig(
        reference_model=str(tmp_path / "model.tree"), max_aligned_variants=10, alignment_budget_s=30
    )
    result = mining.mine(events, cases, config)
    deviations = result.tables["process_conformance"]["deviations"]
    assert deviations.str.starts_with("not aligned: beyond max_aligned_variants").sum() == 20
    assert result.variants_not_aligned == 20
    assert result.alignment_coverage == pytest.approx(10 / 30)


# --- 2. lifecycle transitions --------------------------------------------------------------------

# An order-to-cash log with start/complete pairs: two activities overlap in o2 (Pick starts, Bill
# starts, Pick completes), Pick repeats in o3 (pairs taken first-in, first-out), a `schedule`
# transition that is neither, and ties between one activity's completion and the next one's start.
LIFECYCLE = [
    ("o1", "Order", 0, "start"),
    ("o1", "Order", 1, "complete"),
    ("o1", "Pick", 1, "start"),
    ("o1", "Pick", 3, "complete"),
    ("o1", "Ship", 3, "start"),
    ("o1", "Ship", 7, "complete"),
    ("o2", "Order", 0, "start"),
    ("o2", "Order", 0.5, "complete"),
    ("o2", "Bill", 0.5, "schedule"),
    ("o2", "Pick", 1, "start"),
    ("o2", "Bill", 1.5, "start"),
    ("o2", "Pick", 2, "complete"),
    ("o2", "Bill", 4, "complete"),
    ("o2", "Ship", 4, "start"),
    ("o2", "Ship", 6, "complete"),
    ("o3", "Order", 0, "start"),
    ("o3", "Order", 2, "complete"),
    ("o3", "Pick", 2, "start"),
    ("o3", "Pick", 2, "start"),
    ("o3", "Pick", 3, "complete"),
    ("o3", "Pick", 6, "complete"),
    ("o3", "Ship", 6, "start"),
    ("o3", "Ship", 9, "complete"),
]


def test_lifecycle_complete_events_make_the_control_flow_like_pm4py(tmp_path):
    import pm4py

    events = _via_xes(_frame(LIFECYCLE), tmp_path)
    theirs = pm4py.filter_event_attribute_values(
        _pm4py_read(_frame(LIFECYCLE), tmp_path), "lifecycle:transition", ["complete"], level="event"
    )
    assert events.height == len(theirs) == 11
    _assert_control_flow_equal(events, theirs)


def test_lifecycle_pairs_give_pm4py_service_times(tmp_path):
    import pm4py
    from pm4py.objects.log.util import interval_lifecycle

    events = _via_xes(_frame(LIFECYCLE), tmp_path)
    bottlenecks = process_stats.bottlenecks(events, process_stats.directly_follows(events))
    service = bottlenecks.filter(pl.col("kind") == "service")
    ours = {r["target"]: r["mean_hours"] * 3600 for r in service.iter_rows(named=True)}
    log = pm4py.convert_to_event_log(_pm4py_read(_frame(LIFECYCLE), tmp_path))
    intervals = interval_lifecycle.to_interval(log)
    theirs = pm4py.get_service_time(intervals, start_timestamp_key="start_timestamp")
    assert ours == pytest.approx(theirs)
    assert service.filter(pl.col("target") == "Pick")["occurrences"].item() == 4
    assert set(bottlenecks["kind"]) == {"activity", "edge", "service"}


def test_lifecycle_all_keeps_every_event_like_pm4py_unfiltered(tmp_path):
    events = _via_xes(_frame(LIFECYCLE), tmp_path, lifecycle="all")
    assert events.height == len(LIFECYCLE) and events["start_ts"].null_count() == events.height
    _assert_control_flow_equal(events, _pm4py_read(_frame(LIFECYCLE), tmp_path))


# --- 4. configuration errors say what is wrong and how to fix it, before any work ------------------


def test_a_wrong_column_is_named_with_the_option_and_the_choices(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text("ticket,step,at\nA,open,2025-03-03T09:00:00Z\n")
    read = []
    monkeypatch.setattr(pl, "concat", lambda *a, **k: read.append(1))  # the full read never starts
    config = EventLogConfig(source="csv", path=str(path), case_id_column="ticket", activity_column="stage")
    with pytest.raises(EventLogError) as error:
        from_csv(config)
    message = str(error.value)
    assert "activity_column = 'stage'" in message and "timestamp_column = 'timestamp'" in message
    assert "['ticket', 'step', 'at']" in message and "Set these options" in message
    assert "case_id_column" not in message and not read


def test_a_missing_file_says_which_option_to_set(tmp_path):
    with pytest.raises(EventLogError, match=r"no CSV files at .*set `path` of `process_event_log`"):
        from_csv(EventLogConfig(source="csv", path=str(tmp_path / "nope" / "*.csv")))
    with pytest.raises(EventLogError, match=r"XES file not found: .*set `path`"):
        from_xes(EventLogConfig(source="xes", path=str(tmp_path / "log.xes")))
    with pytest.raises(process_models.ModelError, match=r"reference model not found: .*`reference_model`"):
        process_models.load_reference_model(tmp_path / "intended.tree")


def test_an_unparsable_timestamp_column_names_the_format_option(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("case_id,activity,timestamp\nA,open,3 Mar 2025 9h\nA,close,3 Mar 2025 10h\n")
    with pytest.raises(EventLogError, match=r"'3 Mar 2025 9h'.*set `timestamp_format`"):
        from_csv(EventLogConfig(source="csv", path=str(path)))


def test_a_reference_model_of_another_process_fails_before_mining(tmp_path, monkeypatch):
    model = tmp_path / "intended.tree"
    model.write_text("# version: 1\n->('submit', 'approve', 'pay')\n")
    events = normalise(
        pl.DataFrame(
            {
                "case_id": ["A", "A"],
                "activity": ["Submit", "Approve"],
                "event_ts": [T0, T0 + pd.Timedelta(hours=1)],
                "resource": [None, None],
                "source_order": [0, 1],
            },
            schema_overrides={"resource": pl.String, "event_ts": pl.Datetime("us", "UTC")},
        )
    )
    monkeypatch.setattr(process_stats, "directly_follows", lambda *a: pytest.fail("mining started"))
    config = mining.ProcessMiningConfig(reference_model=str(model))
    with pytest.raises(process_models.ModelError) as error:
        mining.mine(events, pl.DataFrame(), config)
    message = str(error.value)
    assert "['approve', 'pay', 'submit']" in message and "differ only in case" in message
    assert "Set `reference_model`" in message


def test_a_model_activity_missing_from_the_log_is_reported_not_fatal():
    model = _model()
    assert process_models.check_model_activities(model, {"a", "b", "h"}) == list("cdefg")


def test_assay_run_shows_the_alignment_progress_lines():
    from types import SimpleNamespace as NS

    from assay.orchestration.pipeline import _ProgressWatcher

    def record(message, event=None):
        return NS(event_log_entry=NS(user_message=message, dagster_event=event))

    # the run's step events come through the same cursor as the log lines, each read once
    step = NS(event_type=DagsterEventType.STEP_START, step_key="process_mining")
    first = [record("read 0.1s"), record("", step), record("alignments: 3/9 variants tried")]
    second = [record("alignments: budget of 1s spent after 4/9 variants")]
    pages = {
        None: NS(records=first, cursor="1", has_more=True),
        "1": NS(records=second, cursor="2", has_more=False),
        "2": NS(records=[], cursor="2", has_more=False),
    }
    instance = NS(get_records_for_run=lambda run_id, cursor, limit: pages[cursor])
    lines: list[str] = []
    watcher = _ProgressWatcher(instance, "run", time.perf_counter(), lines.append)
    watcher._drain()
    watcher._drain()
    assert [line.split("]", 1)[1].strip() for line in lines] == [
        "running process_mining",
        "alignments: 3/9 variants tried",
        "alignments: budget of 1s spent after 4/9 variants",
    ]


def test_a_progress_line_has_the_count_the_rate_and_the_time_left():
    from assay.core.progress import Progress

    lines: list[str] = []
    meter = Progress("embeddings", 48_700, "docs", lines.append, every_s=3600)
    meter.advance(18_432)  # not yet due: every_s has not passed and the work is not done
    assert lines == []
    assert meter.line(12.3) == "embeddings: 18,432/48,700 docs (38 %), 1,499 docs/s, ETA 00:20"
    meter.advance(48_700 - 18_432)  # done: always emitted
    assert lines[-1].startswith("embeddings: 48,700/48,700 docs (100 %), ")
    slow = Progress("alignments", 8, "variants", lines.append)
    slow.done = 3
    assert slow.line(15) == "alignments: 3/8 variants (38 %), 0.2 variants/s, ETA 00:25"
    assert slow.line(0) == "alignments: 3/8 variants (38 %), 0 variants/s, ETA ?"
