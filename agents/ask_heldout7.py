"""Held-out set 7 of Ask assay (issue 20): 40 questions written before any of them was asked.

Written as "set 6" on branch i20-set6 (commit 5c2f3d1) in parallel with agents/ask_heldout6.py by
another helper; renamed to set 7 when both landed, unchanged otherwise.

Written on 2026-12-04 by a helper engineer (worktree i20-set6) under these blindness rules: without
reading the answering code (agents/ask.py, ask_words.py, ask_periods.py, ask_values.py,
ask_metric.py, ask_render.py, ask_coverage.py, ask_process.py, agents/tools/), the semantic layer's
YAML, tests/test_ask*.py, the README's account of how Ask works inside, the git history of those
files, or the questions of held-out sets 1-5 and of agents/ask_eval.py; from the README's sections
for analysts, the gold models' SQL, the landing files, the sample generator and the silver rules
only, and without running `assay ask` or the evaluation. Committed before the first run, so git
shows the order.

The questions are phrased as analysts write to a spend assistant (abbreviations, possessives, lower
case, "vs", "compared with", two typos). Today is 2026-12-04 and the sample covers 2025, so "last
year" is 2025 and "the last quarter of last year" 2025-Q4, while "last month" (November 2026) and
"this year" (2026) lie outside the data: those two, a budget, a forecast, a vendor and a department
that do not exist, and salaries (gold holds no payroll) must abstain. Its one vendor, "Lindqvist
Kitchen GmbH", is the only vendor with spend in both samples (small and default, seed 42).

References come from polars over the landing files with the silver rules (the loaders of
agents/ask_heldout.py, cross-checked against the ground truth), through set 5's computations for the
kinds it knows (set 3's, with anomalies by the population deviation as gold's SQL and an exact
average per month), with these conventions:

- a ranking's reference is its first entity; a tie accepts every tied name; months are `YYYY-MM`;
- a share is in % of all spend (`share`), or (`share_in`) of the spend of the dimensions named in
  `by` (empty: all spend) in the same period; growth is in % of the preceding period of the same
  length (Q4 against Q3, H2 against H1, June against May);
- the average weekly spend divides by the Monday-started weeks from the first to the last day of
  the data (gold.category_trends' weeks); the largest expense accepts its id or its EUR amount;
- process facts come from the accepted events, each case's events in time order (no two events of a
  case share a timestamp in either sample) and these kinds new to this set:
  - variants: the number of distinct activity sequences;
  - bottleneck: the activity with the longest wait before it (from the case's previous event),
    by mean or by total wait (gold.process_bottlenecks ranks both ways): either is right;
  - without_count: cases that never reach the activity `by` but end paid (a claim that skipped
    `Manager Approval` and was approved anyway).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout import check_rules_against_truth, load_events, load_transactions
from assay.agents.ask_heldout5 import _anomalous_weeks
from assay.agents.ask_heldout5 import _reference as reference5

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3, Q4 = (("2025-01-01", "2025-04-01"), ("2025-04-01", "2025-07-01"),
                  ("2025-07-01", "2025-10-01"), ("2025-10-01", "2026-01-01"))  # fmt: skip
H1, H2 = ("2025-01-01", "2025-07-01"), ("2025-07-01", "2026-01-01")
KITCHEN = "Lindqvist Kitchen GmbH"  # the one vendor with spend in both samples (seed 42)

QUESTIONS: tuple[Case, ...] = (
    # totals
    Case("total software spend in Q2 2025?", "total", {"category": "software"}, Q2),
    Case("How much did the marketing dept spend on software in the second half of 2025",
         "total", {"department": "Marketing", "category": "software"}, H2),
    Case("what did we spend with lindqvist kitchen last year?", "total", {"vendor": KITCHEN}, Y2025),
    Case("spend on consluting in december 2025", "total", {"category": "consulting"}, _m("2025-12")),
    Case("How much went on meals and training combined in Q1 2025?", "total",
         {"category": ("meals", "training")}, Q1),
    # counts
    Case("how many transactions did HR have in 2025?", "count", {"department": "HR"}, Y2025),
    Case("number of lodging expenses in July 2025", "count", {"category": "lodging"}, _m("2025-07")),
    Case("How many purchases did we make from Lindqvist Kitchen GmbH?", "count", {"vendor": KITCHEN}),
    Case("how many office supplies transactions were there in the last quarter of last year",
         "count", {"category": "office_supplies"}, Q4),
    # rankings
    Case("Which department spent the most on travel in 2025?", "top", {"category": "travel"}, Y2025,
         by="department"),
    Case("top supplier by spend in Q3 2025", "top", {}, Q3, by="vendor"),
    Case("which category did Engineering spend the least on last year", "bottom",
         {"department": "Engineering"}, Y2025, by="category"),
    Case("In which month of 2025 was marketing spend highest?", "top", {"category": "marketing"},
         Y2025, by="month"),
    Case("dept with the fewest transactions in H1 2025?", "bottom", {}, H1, by="department",
         measure="count"),
    # shares
    Case("What % of 2025 spend went to consulting?", "share_in", {"category": "consulting"}, Y2025,
         by=""),
    Case("Sales' share of software spend in 2025", "share_in",
         {"department": "Sales", "category": "software"}, Y2025, by="category"),
    Case("what share of total spend is Lindqvist Kitchen GmbH", "share", {"vendor": KITCHEN}),
    # growth
    Case("How much did travel spend grow in Q4 2025 vs Q3?", "growth", {"category": "travel"}, Q4),
    Case("% change in Engineering spend from H1 to H2 2025", "growth", {"department": "Engineering"},
         H2),
    Case("hardware spend june 2025 compared with may, % change", "growth", {"category": "hardware"},
         _m("2025-06")),
    # averages
    Case("average transaction amount for lodging in 2025", "avg_tx", {"category": "lodging"}, Y2025),
    Case("avg monthly spend of the HR department in 2025", "avg_month", {"department": "HR"}, Y2025),
    Case("what's our average weekly spend on meals?", "weekly", {"category": "meals"}),
    # anomalies, the largest expense
    Case("How many weeks in 2025 had anomalous software spend?", "anomaly", {"category": "software"}),
    Case("biggest single consulting expense in 2025?", "largest", {"category": "consulting"}, Y2025),
    # the approval process
    Case("average case duration in days for expense claims", "duration_days"),
    Case("what's the most common approval path?", "path"),
    Case("how many claims were rejected?", "with_count", by="Reject"),
    Case("What % of cases had changes requested?", "with_pct", by="Request Changes"),
    Case("how many process variants are there", "variants"),
    Case("which step is the bottleneck in the approval proccess?", "bottleneck"),
    Case("how many expense claims skipped manager approval?", "without_count", by="Manager Approval"),
    # which vendors sell ...
    Case("which vendors sell telecom services?", "sells", by="telecom"),
    # the data cannot answer
    Case("What's the travel budget for 2026?", "none"),
    Case("forecast our software spend for Q1 2027", "none"),
    Case("how much did we spend with Amazon Web Services in 2025?", "none"),
    Case("total spend of the Procurement department last year", "none"),
    Case("what did we spend last month?", "none"),
    Case("YTD spend on travel this year", "none"),
    Case("how much did we pay in salaries in 2025?", "none"),
)  # fmt: skip


def anomaly_rules_agree(tx) -> bool:
    """Whether the population and the sample deviation flag as many weeks for every category asked."""
    asked = {c.filters["category"] for c in QUESTIONS if c.kind == "anomaly"}
    return all(_anomalous_weeks(tx, c) == _anomalous_weeks(tx, c, population=False) for c in asked)


def _sequences(events) -> dict[str, list[tuple[str, Any]]]:
    """Each case's (activity, time) in time order (a stable sort: the files' order on a tie)."""
    cases: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for case, activity, ts in events.sort("case_id", "ts", maintain_order=True).iter_rows():
        cases[case].append((activity, ts))
    return cases


def _process(case: Case, events) -> Any:
    cases = _sequences(events)
    if case.kind == "variants":
        return len({tuple(a for a, _ in steps) for steps in cases.values()})
    if case.kind == "without_count":
        activities = [{a for a, _ in steps} for steps in cases.values()]
        return sum(case.by not in done and "Pay" in done for done in activities)
    if case.kind == "bottleneck":
        waits: dict[str, list[float]] = defaultdict(list)
        for steps in cases.values():
            for (_, before), (activity, ts) in zip(steps, steps[1:], strict=False):
                waits[activity].append((ts - before).total_seconds())
        by_mean = max(waits, key=lambda a: sum(waits[a]) / len(waits[a]))
        by_total = max(waits, key=lambda a: sum(waits[a]))
        return by_mean if by_mean == by_total else (by_mean, by_total)
    raise ValueError(f"unknown kind {case.kind!r}")


def references(landing: Path, truth: Path | None = None) -> list[tuple[Case, Any]]:
    """Each question with its reference: a number, a name, a tuple of equally right values, or None."""
    import polars as pl

    tx, events = load_transactions(landing), load_events(landing)
    if truth is not None and (truth / "lines.csv").exists() and not check_rules_against_truth(tx, truth):
        raise ValueError("the silver rules applied here disagree with the sample's ground truth")
    vendors = pl.read_csv(landing / "vendors" / "vendors.csv")
    return [
        (
            case,
            _process(case, events)
            if case.kind in ("variants", "without_count", "bottleneck")
            else reference5(case, tx, events, vendors),
        )
        for case in QUESTIONS
    ]
