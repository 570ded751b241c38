"""Held-out set 3 of Ask assay (issue 20): 40 questions written before they were asked.

Written on 2026-12-04 after the fixes made on held-out sets 1 and 2, by someone who had not read the
question-answering code (the parser, its rules, the semantic layer's synonyms, the README's Ask
section): only the data an analyst sees (the default sample's landing files, the gold marts' names
and columns, `assay --help`) and the shape of the earlier sets. The wordings differ from theirs on
purpose: "how much went to", "what was the bill for", "give me the number of", lowercase names, a
typo, chatter around the question, relative periods ("last year", "the first half of 2025", "the
last quarter of 2025"), two-month ranges, units the question asks for (days, not hours), and vendor
names one of which is contained in another's. Committed alone before any of them was run through
`assay ask`, so git shows the order; the first run's figure is the out-of-sample one.

"Last year" is relative to the day the set was written (2026-12-04): 2025.

References: polars over the landing files, with the silver rules as agents/ask_heldout.py applies
them (its `load_transactions` / `load_events`, cross-checked against the sample's ground truth);
the cut (filters and period) is set 2's; the computations below are written for this set. Kinds:

- total, count: sum of EUR cents / number of accepted transactions of the cut;
- top, bottom: the label ranked first by spend (`measure="count"`: by transactions); ties give a
  tuple of equally right labels; `by="quarter"` labels are `YYYY-Qn`, `by="month"` `YYYY-MM`;
- share (a vendor's share of all spend), share_in (the cut's share of the cut that keeps only the
  filters named in `by`, comma-separated; "" keeps none), in %;
- growth: % change of the cut's total against the period of equal length just before;
- avg_tx: mean EUR amount of one transaction; avg_month: total / calendar months of the period;
  weekly: total / Monday-based weeks from the first to the last transaction day of the data;
- largest: the single largest transaction of the cut: its id or its EUR amount;
- anomaly: weeks whose category total (0 when empty) lies more than 2 sample standard deviations
  from the category's weekly mean, counting only weeks wholly inside the data;
- duration_days: mean days from a case's first to its last event; path: the most common activity
  sequence (" → "); with_count / with_pct: cases with the activity `by`; between_mean: mean hours
  from the first `by[0]` to the first `by[1]` at or after it, over cases with both;
- sells: vendors whose default category (vendors.csv) is `by`: any of them is right;
- none: the data cannot answer (a future period, a period before the data, a name or a measure the
  data does not hold); only an abstention is right.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout import check_rules_against_truth, load_events, load_transactions

# the cut of a question (filters, [start, end) period) and the month arithmetic, as set 2 does them
from assay.agents.ask_heldout2 import _filtered, _shift_back

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3, Q4 = (("2025-01-01", "2025-04-01"), ("2025-04-01", "2025-07-01"),
                  ("2025-07-01", "2025-10-01"), ("2025-10-01", "2026-01-01"))  # fmt: skip
H1, H2 = ("2025-01-01", "2025-07-01"), ("2025-07-01", "2026-01-01")

QUESTIONS: tuple[Case, ...] = (
    # totals with filters
    Case("How much went to lodging in the first half of 2025?", "total", {"category": "lodging"}, H1),
    Case("What was the bill for software for the engineering team in the last quarter of 2025?", "total", {"department": "Engineering", "category": "software"}, Q4),  # noqa: E501
    Case("hey, quick one for a slide: how much did hr spend on meals in june 2025?", "total", {"department": "HR", "category": "meals"}, _m("2025-06")),  # noqa: E501
    Case("How much money went to Zenith Foods in total?", "total", {"vendor": "Zenith Foods, AB"}),
    Case("What was the total expenditure on consulting from October through November 2025?", "total", {"category": "consulting"}, ("2025-10-01", "2025-12-01")),  # noqa: E501
    Case("Total outlay on telecomms for the finance department during 2025?", "total", {"department": "Finance", "category": "telecom"}, Y2025),  # noqa: E501
    # counts
    Case("Give me the number of training transactions in Q1 2025.", "count", {"category": "training"}, Q1),
    Case("how many expenses did the marketing team file in september 2025", "count", {"department": "Marketing"}, _m("2025-09")),  # noqa: E501
    Case("How many payments went to Polaris Kitchen Inc. last year?", "count", {"vendor": "Polaris Kitchen Inc."}, Y2025),  # noqa: E501
    Case("What is the transaction count for Sales in the first half of 2025?", "count", {"department": "Sales"}, H1),  # noqa: E501
    # rankings
    Case("Which vendor had the largest number of transactions in 2025?", "top", period=Y2025, by="vendor", measure="count"),  # noqa: E501
    Case("Which department spent the least on travel?", "bottom", {"category": "travel"}, by="department"),
    Case("What category cost us the most in the second half of 2025?", "top", period=H2, by="category"),
    Case("Which supplier got the most money from the Sales team?", "top", {"department": "Sales"}, by="vendor"),  # noqa: E501
    Case("Which quarter of 2025 had the fewest transactions?", "bottom", period=Y2025, by="quarter", measure="count"),  # noqa: E501
    # shares
    Case("What portion of total spend did Vantage Partners AG account for?", "share", {"vendor": "Vantage Partners AG"}),  # noqa: E501
    Case("What % of the Marketing department's 2025 spend was on marketing?", "share_in", {"department": "Marketing", "category": "marketing"}, Y2025, by="department"),  # noqa: E501
    Case("In percent, how much of the Q4 2025 spend was consulting?", "share_in", {"category": "consulting"}, Q4, by=""),  # noqa: E501
    # growth
    Case("How did hardware spending develop from Q2 to Q3 2025, in percent?", "growth", {"category": "hardware"}, Q3),  # noqa: E501
    Case("What's the percentage change in HR spend between November and December 2025?", "growth", {"department": "HR"}, _m("2025-12")),  # noqa: E501
    Case("Was lodging spend in May 2025 up or down versus April, and by what percent?", "growth", {"category": "lodging"}, _m("2025-05")),  # noqa: E501
    # averages
    Case("What's the typical value of a meals transaction in 2025, on average?", "avg_tx", {"category": "meals"}, Y2025),  # noqa: E501
    Case("What is the Finance department's average monthly spend in 2025?", "avg_month", {"department": "Finance"}, Y2025),  # noqa: E501
    Case("What's our weekly average for travel spend?", "weekly", {"category": "travel"}),
    # largest transactions
    Case("What was the most expensive travel expense in August 2025?", "largest", {"category": "travel"}, _m("2025-08")),  # noqa: E501
    Case("Largest single purchase made by Operations?", "largest", {"department": "Operations"}),
    # anomalies
    Case("How many abnormal weeks did consulting spend have?", "anomaly", {"category": "consulting"}),
    # process
    Case("On average, how many days does an expense case take from its first to its last step?", "duration_days"),  # noqa: E501
    Case("What's the standard sequence of steps most claims go through?", "path"),
    Case("How many claims were resubmitted?", "with_count", by="Resubmit"),
    Case("What percentage of claims go through a finance review?", "with_pct", by="Finance Review"),
    Case("How long does it take on average between manager approval and payment, in hours?", "between_mean", by="Manager Approval,Pay"),  # noqa: E501
    # which vendor sells ...
    Case("Which companies can we buy catering from?", "sells", by="meals"),
    Case("who do we get stationery from?", "sells", by="office_supplies"),
    # not answerable from the data
    Case("What will travel spend be in Q2 2026?", "none"),
    Case("How much did we spend with Acme Widgets Corp in 2025?", "none"),
    Case("How much did the Legal department spend in 2025?", "none"),
    Case("What was the bill for travel in December 2024?", "none"),
    Case("How much VAT did we pay on hardware in 2025?", "none"),
    Case("How much did we spend on furniture in 2025?", "none"),
)  # fmt: skip


# -- references


def _months(lo: dt.date, hi: dt.date) -> int:
    return (hi.year - lo.year) * 12 + hi.month - lo.month


def _first(part, by: str, measure: str, highest: bool):
    labels: Counter = Counter()
    for row in part.iter_rows(named=True):
        day = row["date"]
        label = {
            "vendor": row["vendor_name"],
            "month": f"{day.year}-{day.month:02d}",
            "quarter": f"{day.year}-Q{(day.month - 1) // 3 + 1}",
        }.get(by, row.get(by))
        labels[label] += 1 if measure == "count" else row["cents"]
    best = max(labels.values()) if highest else min(labels.values())
    names = tuple(sorted(k for k, v in labels.items() if v == best))
    return names[0] if len(names) == 1 else names


def _week_starts(tx) -> list[dt.date]:
    first, last = tx["date"].min(), tx["date"].max()
    week, weeks = first - dt.timedelta(days=first.weekday()), []
    while week <= last:
        weeks.append(week)
        week += dt.timedelta(days=7)
    return weeks


def _abnormal_weeks(tx, category: str) -> int:
    totals: Counter = Counter()
    for day, cents in _filtered(tx, {"category": category}, None).select("date", "cents").iter_rows():
        totals[day - dt.timedelta(days=day.weekday())] += cents
    weeks = _week_starts(tx)
    values = [totals[w] / 100 for w in weeks]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    first, last = tx["date"].min(), tx["date"].max()
    inside = [w >= first and w + dt.timedelta(days=6) <= last for w in weeks]
    return sum(abs(v - mean) > 2 * sd and ok for v, ok in zip(values, inside, strict=True))


def _process(case: Case, events) -> Any:
    import polars as pl

    ordered = events.sort("case_id", "ts")
    per_case = ordered.group_by("case_id", maintain_order=True).agg(
        pl.col("activity"), pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end")
    )
    sequences = per_case["activity"].to_list()
    if case.kind == "duration_days":
        seconds = (per_case["end"] - per_case["start"]).dt.total_seconds()
        return round(seconds.mean() / 86400, 2)
    if case.kind == "path":
        return Counter(" → ".join(s) for s in sequences).most_common(1)[0][0]
    if case.kind == "with_count":
        return sum(case.by in s for s in sequences)
    if case.kind == "with_pct":
        return round(100 * sum(case.by in s for s in sequences) / len(sequences), 2)
    if case.kind == "between_mean":
        a, b = case.by.split(",")
        firsts = ordered.group_by("case_id").agg(
            pl.col("ts").filter(pl.col("activity") == a).min().alias("a"),
            pl.col("ts").filter(pl.col("activity") == b).min().alias("b"),
        )
        both = firsts.drop_nulls().filter(pl.col("b") >= pl.col("a"))
        return round(((both["b"] - both["a"]).dt.total_seconds() / 3600).mean(), 2)
    raise ValueError(f"unknown kind {case.kind!r}")


def reference(case: Case, tx, events, vendors) -> Any:
    """The expected answer of one question (see the module's doc for each kind)."""
    import polars as pl

    kind = case.kind
    if kind == "none":
        return None
    if kind in ("duration_days", "path", "with_count", "with_pct", "between_mean"):
        return _process(case, events)
    if kind == "sells":
        return tuple(vendors.filter(pl.col("default_category") == case.by)["vendor_name"].to_list())
    part = _filtered(tx, case.filters, case.period)
    cents = part["cents"].sum()
    if kind == "total":
        return cents / 100
    if kind == "count":
        return part.height
    if kind in ("top", "bottom"):
        return _first(part, case.by, case.measure, kind == "top")
    if kind == "share":
        return round(100 * cents / tx["cents"].sum(), 2)
    if kind == "share_in":
        keep = {k: v for k, v in case.filters.items() if k in case.by.split(",")}
        return round(100 * cents / _filtered(tx, keep, case.period)["cents"].sum(), 2)
    if kind == "growth":
        lo, hi = (dt.date.fromisoformat(d) for d in case.period)
        earlier = (_shift_back(lo, _months(lo, hi)).isoformat(), case.period[0])
        before = _filtered(tx, case.filters, earlier)["cents"].sum()
        return round(100 * (cents - before) / before, 2)
    if kind == "avg_tx":
        return round(cents / part.height / 100, 2)
    if kind == "avg_month":
        lo, hi = (dt.date.fromisoformat(d) for d in case.period)
        return round(cents / _months(lo, hi) / 100, 2)
    if kind == "weekly":
        return round(cents / len(_week_starts(tx)) / 100, 2)
    if kind == "largest":
        row = part.sort(["cents", "id"], descending=[True, False]).row(0, named=True)
        return (row["id"], row["cents"] / 100)
    if kind == "anomaly":
        return _abnormal_weeks(tx, case.filters["category"])
    raise ValueError(f"unknown kind {kind!r}")


def references(
    landing: Path, truth: Path | None = None, questions: tuple[Case, ...] = QUESTIONS
) -> list[tuple[Case, Any]]:
    """Each question with its reference (set 4 passes its own questions)."""
    import polars as pl

    tx, events = load_transactions(landing), load_events(landing)
    if truth is not None and (truth / "lines.csv").exists() and not check_rules_against_truth(tx, truth):
        raise ValueError("the silver rules applied here disagree with the sample's ground truth")
    vendors = pl.read_csv(landing / "vendors" / "vendors.csv")
    return [(case, reference(case, tx, events, vendors)) for case in questions]
