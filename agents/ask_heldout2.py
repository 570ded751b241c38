"""Held-out set 2 of Ask assay (issue 20): 40 questions written before they were asked.

Written on 2026-12-04 after the general fixes made on held-out set 1 (process questions, shares of a
category or department, averages per transaction and per month, more words for transactions and
spend), in wordings used neither by those fixes nor by the earlier sets (agents/ask_eval.py,
agents/ask_heldout.py); committed alone before any of them was run through `assay ask`, so git shows
the order. The first run's figure is the out-of-sample one.

References: polars over the landing files, with the silver rules as agents/ask_heldout.py applies
them (its `load_transactions` / `load_events`, cross-checked against the sample's ground truth), and
the computations below written for this set, not those of the earlier sets. Kinds:

- total, count: sum of EUR cents / number of accepted transactions of the cut;
- top, bottom: the label ranked first by spend (or `measure="count"`: by transactions); ties give a
  tuple of equally right labels; `by="quarter"` labels are `YYYY-Qn`;
- share (a vendor, of all spend), share_in (the cut over the cut with only the filters in `by`);
- growth: % change of the cut's total against the period of equal length before;
- avg_tx: mean EUR amount of one transaction; avg_month: total / calendar months of the period;
  weekly: total / weeks of the data (Monday-based, first to last transaction day);
- largest: the single largest transaction: its id or its EUR amount;
- anomaly: weeks whose category total (0 when empty) is more than 2 standard deviations (sample)
  from the category's weekly mean, counting only weeks that lie wholly inside the data;
- duration: mean hours from a case's first to its last event; path: the most common activity
  sequence (" → "); with_pct / with_count: cases with the activity in `by`; between_median: median
  hours from the first `by[0]` to the first `by[1]` at or after it, over cases with both;
- sells: the vendors whose default category (vendors.csv) is `by`: any of them is right;
- vendor_country: vendors in vendors.csv with that country (answerable from the landing files,
  not from gold);
- none: the data cannot answer; only an abstention is right.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout import check_rules_against_truth, load_events, load_transactions

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3 = ("2025-01-01", "2025-04-01"), ("2025-04-01", "2025-07-01"), ("2025-07-01", "2025-10-01")
H2 = ("2025-07-01", "2026-01-01")

QUESTIONS: tuple[Case, ...] = (
    # totals with filters
    Case("Give me Marketing's total spending for the month of May 2025.", "total", {"department": "Marketing"}, _m("2025-05")),  # noqa: E501
    Case("What's the sum of all meals expenses in the second half of 2025?", "total", {"category": "meals"}, H2),  # noqa: E501
    Case("How much have we spent with Meridian Cloud in total?", "total", {"vendor": "Meridian Cloud GmbH"}),
    Case("What was the total cost of telecom for the whole company in 2025?", "total", {"category": "telecom"}, Y2025),  # noqa: E501
    Case("Sum of Operations' training spend from July to September 2025?", "total", {"department": "Operations", "category": "training"}, Q3),  # noqa: E501
    Case("What did the Sales and Marketing departments spend together in 2025?", "total", {"department": ("Sales", "Marketing")}, Y2025),  # noqa: E501
    # counts
    Case("How many separate transactions did Finance record in Q2 2025?", "count", {"department": "Finance"}, Q2),  # noqa: E501
    Case("Count the meals transactions in August 2025.", "count", {"category": "meals"}, _m("2025-08")),
    Case("How many times did we buy from Fjord Software?", "count", {"vendor": "Fjord Software GmbH"}),
    Case("How many vendors are based in Germany?", "vendor_country", by="DE"),
    # rankings
    Case("Which team spent the least in 2025?", "bottom", period=Y2025, by="department"),
    Case("What was the busiest month for transactions in 2025?", "top", period=Y2025, by="month", measure="count"),  # noqa: E501
    Case("Top 3 categories by spend in Q3 2025?", "top", period=Q3, by="category"),
    Case("Which category did the HR department spend the most on?", "top", {"department": "HR"}, by="category"),  # noqa: E501
    Case("Which supplier do we have the fewest transactions with?", "bottom", by="vendor", measure="count"),
    Case("Which quarter of 2025 had the highest spend?", "top", period=Y2025, by="quarter"),
    # shares
    Case("What fraction of all spending went to Kestrel Computing?", "share", {"vendor": "Kestrel Computing Inc."}),  # noqa: E501
    Case("How big a share of Q2 2025 spend was software?", "share_in", {"category": "software"}, Q2, by=""),
    Case("What percent of Engineering's 2025 spend was on hardware?", "share_in", {"department": "Engineering", "category": "hardware"}, Y2025, by="department"),  # noqa: E501
    # growth
    Case("How much did travel spend go up or down in July 2025 compared with June 2025?", "growth", {"category": "travel"}, _m("2025-07")),  # noqa: E501
    Case("By how much did total spending change in Q2 2025 relative to Q1 2025?", "growth", period=Q2),
    Case("Percent change in Sales spending from October to November 2025?", "growth", {"department": "Sales"}, _m("2025-11")),  # noqa: E501
    # averages
    Case("What's the mean size of a software purchase?", "avg_tx", {"category": "software"}),
    Case("How much does the Marketing department spend in an average week?", "weekly", {"department": "Marketing"}),  # noqa: E501
    Case("What did we spend on average each month on travel in 2025?", "avg_month", {"category": "travel"}, Y2025),  # noqa: E501
    # largest transactions
    Case("Which single transaction was the most expensive in June 2025?", "largest", period=_m("2025-06")),
    Case("Show me the biggest hardware purchase of 2025.", "largest", {"category": "hardware"}, Y2025),
    # anomalies
    Case("How many weeks of unusual meals spending were flagged?", "anomaly", {"category": "meals"}),
    # process
    Case("On average, how many hours does an expense claim take from start to finish?", "duration"),
    Case("Which path through the approval process do most claims follow?", "path"),
    Case("What fraction of claims get paid?", "with_pct", by="Pay"),
    Case("How many claims needed a finance review?", "with_count", by="Finance Review"),
    Case("What's the median number of hours from submission to approval?", "between_median", by="Submit,Approve"),  # noqa: E501
    # which vendor sells ...
    Case("Which suppliers can we use for hotel stays?", "sells", by="lodging"),
    Case("Which vendor provides our mobile phone plans?", "sells", by="telecom"),
    # not answerable from the data
    Case("What was our net income in 2025?", "none"),
    Case("How much did we spend on travel in March 2026?", "none"),
    Case("What will our cloud costs be next quarter?", "none"),
    Case("How satisfied are employees with the reimbursement process?", "none"),
    Case("What did we spend on hardware in 2023?", "none"),
)  # fmt: skip


# -- references


def _filtered(tx, filters: dict[str, Any], period: tuple[str, str] | None):
    import polars as pl

    for name, value in filters.items():
        column = "vendor_name" if name == "vendor" else name
        tx = tx.filter(pl.col(column).is_in(list(value) if isinstance(value, tuple) else [value]))
    if period is not None:
        lo, hi = dt.date.fromisoformat(period[0]), dt.date.fromisoformat(period[1])
        tx = tx.filter(pl.col("date").is_between(lo, hi, closed="left"))
    return tx


def _ranked_first(part, by: str, measure: str, descending: bool):
    import polars as pl

    if by == "quarter":
        part = part.with_columns(
            (
                pl.col("date").dt.year().cast(pl.String) + "-Q" + pl.col("date").dt.quarter().cast(pl.String)
            ).alias("quarter")
        )
    key = "vendor_name" if by == "vendor" else by
    value = pl.len() if measure == "count" else pl.col("cents").sum()
    totals = part.group_by(key).agg(value.alias("value"))
    best = totals["value"].max() if descending else totals["value"].min()
    names = tuple(sorted(totals.filter(pl.col("value") == best)[key].to_list()))
    return names[0] if len(names) == 1 else names


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _weeks(tx) -> list[dt.date]:
    first, last = tx["date"].min(), tx["date"].max()
    weeks, week = [], _monday(first)
    while week <= last:
        weeks.append(week)
        week += dt.timedelta(days=7)
    return weeks


def _flagged_weeks(tx, category: str) -> int:
    import statistics

    per_week = Counter()
    for day, cents in tx.filter(tx["category"] == category).select("date", "cents").iter_rows():
        per_week[_monday(day)] += cents
    weeks = _weeks(tx)
    values = [per_week.get(w, 0) / 100 for w in weeks]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    first, last = tx["date"].min(), tx["date"].max()
    return sum(
        abs(v - mean) / sd > 2 and w >= first and w + dt.timedelta(days=6) <= last
        for w, v in zip(weeks, values, strict=True)
    )


def _shift_back(start: dt.date, months: int) -> dt.date:
    index = start.year * 12 + start.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def reference(case: Case, tx, events, vendors) -> Any:
    """The expected answer of one question (see the module's doc for each kind)."""
    import polars as pl

    kind = case.kind
    if kind == "none":
        return None
    part = _filtered(tx, case.filters, case.period)
    if kind == "total":
        return part["cents"].sum() / 100
    if kind == "count":
        return part.height
    if kind in ("top", "bottom"):
        return _ranked_first(part, case.by, case.measure, kind == "top")
    if kind == "share":
        return round(100 * part["cents"].sum() / tx["cents"].sum(), 2)
    if kind == "share_in":
        keep = {k: v for k, v in case.filters.items() if k in case.by.split(",")}
        return round(100 * part["cents"].sum() / _filtered(tx, keep, case.period)["cents"].sum(), 2)
    if kind == "growth":
        lo, hi = (dt.date.fromisoformat(d) for d in case.period)
        months = (hi.year - lo.year) * 12 + hi.month - lo.month
        before = _filtered(tx, case.filters, (_shift_back(lo, months).isoformat(), case.period[0]))
        return round(100 * (part["cents"].sum() - before["cents"].sum()) / before["cents"].sum(), 2)
    if kind == "avg_tx":
        return round(part["cents"].mean() / 100, 2)
    if kind == "avg_month":
        lo, hi = (dt.date.fromisoformat(d) for d in case.period)
        return round(part["cents"].sum() / 100 / ((hi.year - lo.year) * 12 + hi.month - lo.month), 2)
    if kind == "weekly":
        return round(part["cents"].sum() / 100 / len(_weeks(tx)), 2)
    if kind == "largest":
        row = part.sort(["cents", "id"], descending=[True, False]).row(0, named=True)
        return (row["id"], row["cents"] / 100)
    if kind == "anomaly":
        return _flagged_weeks(tx, case.filters["category"])
    if kind == "sells":
        return tuple(vendors.filter(pl.col("default_category") == case.by)["vendor_name"].to_list())
    if kind == "vendor_country":
        return vendors.filter(pl.col("country") == case.by).height
    # process kinds, over the accepted events
    per_case = (
        events.sort("ts")
        .group_by("case_id")
        .agg(
            pl.col("activity"),
            ((pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds() / 3600).alias("h"),
        )
    )
    sequences = per_case["activity"].to_list()
    if kind == "duration":
        return round(per_case["h"].mean(), 2)
    if kind == "path":
        return Counter(" → ".join(s) for s in sequences).most_common(1)[0][0]
    if kind == "with_pct":
        return round(100 * sum(case.by in s for s in sequences) / len(sequences), 2)
    if kind == "with_count":
        return sum(case.by in s for s in sequences)
    if kind == "between_median":
        first, then = case.by.split(",")
        starts = (
            events.filter(pl.col("activity") == first).group_by("case_id").agg(pl.col("ts").min().alias("a"))
        )
        ends = (
            events.filter(pl.col("activity") == then).group_by("case_id").agg(pl.col("ts").min().alias("b"))
        )
        both = starts.join(ends, on="case_id").filter(pl.col("b") >= pl.col("a"))
        return round(((both["b"] - both["a"]).dt.total_seconds() / 3600).median(), 2)
    raise ValueError(f"unknown kind {kind!r}")


def references(landing: Path, truth: Path | None = None) -> list[tuple[Case, Any]]:
    import polars as pl

    tx, events = load_transactions(landing), load_events(landing)
    if truth is not None and (truth / "lines.csv").exists() and not check_rules_against_truth(tx, truth):
        raise ValueError("the silver rules applied here disagree with the sample's ground truth")
    vendors = pl.read_csv(landing / "vendors" / "vendors.csv")
    return [(case, reference(case, tx, events, vendors)) for case in QUESTIONS]
