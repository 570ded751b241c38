"""Held-out set 5 of Ask assay (issue 20): 40 questions written before any of them was asked.

Written on 2026-12-04 by a helper engineer (worktree i20-set5) under these blindness rules: without
reading the answering code (agents/ask.py, agents/tools/semantic.py), the semantic layer's YAML,
tests/test_ask.py or the questions of held-out sets 1-4; from the README's sections for analysts,
the gold marts' columns, the landing files, the sample generator and the silver rules only.
Committed before the first run, so git shows the order.

The questions are phrased as analysts write to a spend assistant (abbreviations, possessives, lower
case, one typo). Today is 2026-12-04 and the sample covers 2025, so "last year" is 2025 and "last
month" (November 2026) lies outside the data: that question, a year without data (2024), a budget,
a forecast, a vendor and a department that do not exist, and year-on-year growth (2024 has no spend)
must abstain.

References come from polars over the landing files with the silver rules (the loaders of
agents/ask_heldout.py, cross-checked against the ground truth), through set 3's `reference` for the
kinds it knows, with these conventions:

- a month is named `2025-07`, a quarter `2025-Q3`; a ranking's reference is its first entity (for
  "top 3", the first of them); a tie accepts every tied name;
- a share is in % of all spend, or (`share_in`) of the spend of the dimensions named in `by` (empty:
  all spend) in the same period; growth is in % of the preceding period of the same length;
- the average weekly spend divides by the weeks gold.category_trends holds (Monday-started weeks from
  the first to the last day of the data);
- anomalous weeks follow gold.category_trends' SQL: weekly totals (0 for empty weeks), z against the
  category's mean and *population* standard deviation, |z| > 2 in a complete week (set 3 uses the
  sample deviation; the categories asked about give the same count either way on both samples,
  `anomaly_rules_agree` checks it);
- process facts come from the accepted events (set 3's `_process`);
- an average per month is exact and rounded half up, as gold's numeric (set 3's float `round` was
  one cent low on the small sample's 41,115.215, a fix made after the first run).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout import check_rules_against_truth, load_events, load_transactions
from assay.agents.ask_heldout2 import _filtered
from assay.agents.ask_heldout3 import _months, _week_starts, reference

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3, Q4 = (
    ("2025-01-01", "2025-04-01"),
    ("2025-04-01", "2025-07-01"),
    ("2025-07-01", "2025-10-01"),
    ("2025-10-01", "2026-01-01"),
)
H1, H2 = ("2025-01-01", "2025-07-01"), ("2025-07-01", "2026-01-01")
KITCHEN = "Lindqvist Kitchen GmbH"  # the one vendor of both samples (small and default, seed 42)

QUESTIONS: tuple[Case, ...] = (
    # totals
    Case("How much did Enginering spend on software in Q3 2025?", "total", {"department": "Engineering", "category": "software"}, Q3),  # noqa: E501
    Case("total hardware spend last year", "total", {"category": "hardware"}, Y2025),
    Case("What was Marketing's total spend in H2 2025?", "total", {"department": "Marketing"}, H2),
    Case("How much did Finance and HR spend on training in 2025, combined?", "total", {"department": ("Finance", "HR"), "category": "training"}, Y2025),  # noqa: E501
    Case("What did we spend in total in Dec 2025?", "total", period=_m("2025-12")),
    Case("How much have we paid Lindqvist Kitchen GmbH in 2025?", "total", {"vendor": KITCHEN}, Y2025),
    Case("What did the sales team spend on meals between February and April 2025?", "total", {"department": "Sales", "category": "meals"}, ("2025-02-01", "2025-05-01")),  # noqa: E501
    # counts
    Case("How many transactions did HR have in October 2025?", "count", {"department": "HR"}, _m("2025-10")),
    Case("Number of software purchases in Q1 2025", "count", {"category": "software"}, Q1),
    Case("How many invoices did we get from Lindqvist Kitchen?", "count", {"vendor": KITCHEN}),
    Case("How many expenses were booked without a category?", "count", {"category": "uncategorised"}),
    # rankings
    Case("Who was our top vendor by spend in Q4 2025?", "top", period=Q4, by="vendor"),
    Case("Which department had the fewest transactions last year?", "bottom", period=Y2025, by="department", measure="count"),  # noqa: E501
    Case("What category does Engineering spend the most on?", "top", {"department": "Engineering"}, by="category"),  # noqa: E501
    Case("What was Sales' most expensive month in 2025?", "top", {"department": "Sales"}, Y2025, by="month"),
    Case("Which quarter of 2025 had the highest total spend?", "top", period=Y2025, by="quarter"),
    Case("What are our top 3 suppliers by spend in H1 2025?", "top", period=H1, by="vendor"),
    # shares
    Case("What % of total spend was travel?", "share", {"category": "travel"}),
    Case("What share of Engineering's spend went to hardware in 2025?", "share_in", {"department": "Engineering", "category": "hardware"}, Y2025, by="department"),  # noqa: E501
    Case("What proportion of Q4 2025 spending was consulting?", "share_in", {"category": "consulting"}, Q4, by=""),  # noqa: E501
    # growth
    Case("By what percentage did travel spend change from Q2 to Q3 2025?", "growth", {"category": "travel"}, Q3),  # noqa: E501
    Case("Marketing dept spend Oct vs Sep 2025, % change?", "growth", {"department": "Marketing"}, _m("2025-10")),  # noqa: E501
    Case("How much did total spend grow in H2 2025 compared with H1, in %?", "growth", period=H2),
    # averages
    Case("What's the average transaction size for consultancy?", "avg_tx", {"category": "consulting"}),
    Case("Average monthly spend for the Sales department in 2025?", "avg_month", {"department": "Sales"}, Y2025),  # noqa: E501
    Case("avg weekly spend on telecom?", "weekly", {"category": "telecom"}),
    # anomalies, the largest expense
    Case("How many anomalous weeks did lodging spend have?", "anomaly", {"category": "lodging"}),
    Case("What was the single largest expense in Q1 2025?", "largest", period=Q1),
    # the approval process
    Case("What percentage of expense claims end up rejected?", "with_pct", by="Reject"),
    Case("How many expense cases had changes requested?", "with_count", by="Request Changes"),
    Case("On average, how many hours does it take from submission to final approval?", "between_mean", by="Submit,Approve"),  # noqa: E501
    Case("How long does an expense case take end to end, in days on average?", "duration_days"),
    # which vendor sells ...
    Case("Which vendors do we buy office supplies from?", "sells", by="office_supplies"),
    # not answerable from the data
    Case("What was our total spend in 2024?", "none"),
    Case("How much did we spend on software last month?", "none"),
    Case("What's the Marketing department's budget for 2025?", "none"),
    Case("How much did we spend with Acme Corp?", "none"),
    Case("What did the Legal department spend in 2025?", "none"),
    Case("What was the year-over-year growth in travel spend for 2025?", "none"),
    Case("How much will we spend on cloud hosting in 2027?", "none"),
)  # fmt: skip


def _anomalous_weeks(tx, category: str, population: bool = True) -> int:
    """gold.category_trends' rule (population deviation by default, as its SQL's stddev_pop)."""
    totals: Counter = Counter()
    for day, cents in _filtered(tx, {"category": category}, None).select("date", "cents").iter_rows():
        totals[day - dt.timedelta(days=day.weekday())] += cents
    weeks = _week_starts(tx)
    values = [totals[w] / 100 for w in weeks]
    mean = statistics.fmean(values)
    sd = statistics.pstdev(values) if population else statistics.stdev(values)
    first, last = tx["date"].min(), tx["date"].max()
    inside = [w >= first and w + dt.timedelta(days=6) <= last for w in weeks]
    return sum(abs(v - mean) > 2 * sd and ok for v, ok in zip(values, inside, strict=True))


def anomaly_rules_agree(tx) -> bool:
    """Whether the population and the sample deviation flag as many weeks for every category asked."""
    asked = {c.filters["category"] for c in QUESTIONS if c.kind == "anomaly"}
    return all(_anomalous_weeks(tx, c) == _anomalous_weeks(tx, c, population=False) for c in asked)


def references(
    landing: Path, truth: Path | None = None, questions: tuple[Case, ...] = QUESTIONS
) -> list[tuple[Case, Any]]:
    """Each question with its reference: a number, a name, a tuple of equally right values, or None
    (set 6 passes its own questions)."""
    import polars as pl

    tx, events = load_transactions(landing), load_events(landing)
    if truth is not None and (truth / "lines.csv").exists() and not check_rules_against_truth(tx, truth):
        raise ValueError("the silver rules applied here disagree with the sample's ground truth")
    vendors = pl.read_csv(landing / "vendors" / "vendors.csv")
    return [(case, _reference(case, tx, events, vendors)) for case in questions]


def _reference(case: Case, tx, events, vendors) -> Any:
    if case.kind == "anomaly":
        return _anomalous_weeks(tx, case.filters["category"])
    if case.kind == "avg_month":
        # exact, rounded half up as Postgres rounds numeric: set 3's float division and round() make
        # 493,382.58 / 12 = 41,115.215 into 41,115.21 (found by the first run on the small sample)
        lo, hi = (dt.date.fromisoformat(d) for d in case.period)
        cents = Decimal(int(_filtered(tx, case.filters, case.period)["cents"].sum()))
        return float((cents / _months(lo, hi) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return reference(case, tx, events, vendors)
