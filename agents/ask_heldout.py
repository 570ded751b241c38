"""The held-out evaluation set of Ask assay (issue 20): questions written before they were asked.

Written on 2026-12-04 from the sample's shape only (the landing files, the gold marts' columns, the
semantic layer's declaration), before any of them was run through `assay ask` and without reading the
parser's rules; committed before their first run, so git shows the order. Their wording differs from
the 44 questions of agents/ask_eval.py, and they include kinds that set lacks (several categories at
once, shares within a department or a period, quarter-on-quarter growth, average transaction, average
month, largest transaction, first half-year, process facts).

References are computed independently of the parser, of silver and of gold, with polars over the
landing files, applying the silver rules as README "Data and layers" and the silver models declare
them (not the ground truth's list of defective lines, which `agents/ask_eval.py` uses; both must
agree, `check_rules_against_truth` says whether they do):

- transactions: a line that is not a JSON object is `parse_error`; id, employee_id, vendor_id,
  amount, currency and date are required (blank counts as missing); the date must be ISO 8601; a
  later copy of an id is a `duplicate` (the first loaded, in file-name and line order, wins); an
  amount <= 0 once rounded to cents, a date after today, a currency outside the currency_rates seed,
  a category outside the categories seed, a vendor outside vendors.csv are rejected. Amounts in EUR
  are round(amount * rate, 2), halves away from zero. A missing category is `uncategorised`; an
  employee outside employees.csv is in department `unknown`.
- events: case_id, activity, timestamp are required; the timestamp is ISO 8601; an exact repeat of
  (case, activity, timestamp) is a duplicate; future events and activities outside the activities
  seed are rejected.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _anomaly_weeks, _m
from assay.core import dbt as dbt_files

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3, Q4 = (("2025-01-01", "2025-04-01"), ("2025-04-01", "2025-07-01"),
                  ("2025-07-01", "2025-10-01"), ("2025-10-01", "2026-01-01"))  # fmt: skip
H1 = ("2025-01-01", "2025-07-01")

# kinds beyond agents/ask_eval.py's: share_in (a part's share of a base: `by` names the filters the
# base keeps), avg_tx (mean amount of one transaction), avg_month (total / months of the period),
# largest (the single largest transaction: its id or its EUR amount), duration (mean hours from a
# case's first to its last event), path (the most common activity sequence), rejected_pct (share
# of cases with a Reject, in %), rework (cases sent back for changes at least once).
QUESTIONS: tuple[Case, ...] = (
    # totals with filters
    Case("Can you give me the total travel spend for the Sales team in September 2025?", "total", {"department": "Sales", "category": "travel"}, _m("2025-09")),  # noqa: E501
    Case("What did we spend on office supplies in the second quarter of 2025?", "total", {"category": "office_supplies"}, Q2),  # noqa: E501
    Case("How much did the Operations department spend overall in 2025?", "total", {"department": "Operations"}, Y2025),  # noqa: E501
    Case("Total telecom costs for Finance in H1 2025?", "total", {"department": "Finance", "category": "telecom"}, H1),  # noqa: E501
    Case("What went out on consulting in December 2025?", "total", {"category": "consulting"}, _m("2025-12")),
    Case("What did the Marketing team spend on training courses in Q3 2025?", "total", {"department": "Marketing", "category": "training"}, Q3),  # noqa: E501
    Case("What is the combined spend on hardware and software in 2025?", "total", {"category": ("hardware", "software")}, Y2025),  # noqa: E501
    Case("How much money has gone to Kestrel Computing so far?", "total", {"vendor": "Kestrel Computing Inc."}),  # noqa: E501
    # counts
    Case("How many expense lines did HR submit in 2025?", "count", {"department": "HR"}, Y2025),
    Case("How many hardware purchases were recorded between April and June 2025?", "count", {"category": "hardware"}, Q2),  # noqa: E501
    Case("How many invoices did Lindqvist Rail SAS send us?", "count", {"vendor": "Lindqvist Rail SAS"}),
    Case("What's the number of lodging transactions in October 2025?", "count", {"category": "lodging"}, _m("2025-10")),  # noqa: E501
    # rankings
    Case("Which supplier received the most money from us?", "top", by="vendor"),
    Case("Who was the top-spending department in Q1 2025?", "top", period=Q1, by="department"),
    Case("Which expense category did Engineering spend the most on in 2025?", "top", {"department": "Engineering"}, Y2025, by="category"),  # noqa: E501
    Case("In which month of 2025 did we spend the most?", "top", period=Y2025, by="month"),
    Case("Which vendor do we transact with most often?", "top", by="vendor", measure="count"),
    Case("Which department had the smallest spend in November 2025?", "bottom", period=_m("2025-11"), by="department"),  # noqa: E501
    Case("Which category had the fewest transactions in 2025?", "bottom", period=Y2025, by="category", measure="count"),  # noqa: E501
    # shares
    Case("What proportion of overall spend went to Ironbridge Travel?", "share", {"vendor": "Ironbridge Travel GmbH"}),  # noqa: E501
    Case("What percentage of 2025 spend was on travel?", "share_in", {"category": "travel"}, Y2025, by=""),
    Case("What share of Sales' spending in 2025 went to meals?", "share_in", {"department": "Sales", "category": "meals"}, Y2025, by="department"),  # noqa: E501
    # growth against the period before
    Case("How did marketing spend change in September 2025 compared with August?", "growth", {"category": "marketing"}, _m("2025-09")),  # noqa: E501
    Case("What was the quarter-over-quarter growth in total spend in Q3 2025?", "growth", period=Q3),
    Case("By what percentage did Engineering's spend rise or fall in October 2025 versus the month before?", "growth", {"department": "Engineering"}, _m("2025-10")),  # noqa: E501
    # averages
    Case("What is the average amount of a travel transaction?", "avg_tx", {"category": "travel"}),
    Case("On average, how much do we spend per week on software?", "weekly", {"category": "software"}),
    Case("What was the average monthly spend in 2025?", "avg_month", period=Y2025),
    # largest transactions
    Case("What was the single biggest payment in 2025?", "largest", period=Y2025),
    Case("What was the largest consulting expense in Q4 2025?", "largest", {"category": "consulting"}, Q4),
    # anomalies
    Case("In how many weeks was lodging spend flagged as anomalous?", "anomaly", {"category": "lodging"}),
    # process
    Case("What's the mean case duration for expense claims, in hours?", "duration"),
    Case("What is the most frequent sequence of approval steps?", "path"),
    Case("What share of expense claims end in rejection?", "rejected_pct"),
    Case("How many claims were sent back for changes at least once?", "rework"),
    # not answerable from the data
    Case("What was our gross margin in Q3 2025?", "none"),
    Case("How much did we spend on travel in January 2024?", "none"),
    Case("What is the marketing budget for next year?", "none"),
    Case("How many customers placed orders in 2025?", "none"),
    Case("Forecast our software spend for Q1 2026.", "none"),
)  # fmt: skip


# -- the silver rules, applied to the landing files


def _seed(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((dbt_files.project_dir() / "seeds" / f"{name}.csv").open()))


def _iso_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _reject_reason(row: Any, seen: set[str], rules: dict[str, Any]) -> str | None:
    if not isinstance(row, dict):
        return "parse_error"

    def text(name: str) -> str | None:
        value = row.get(name)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    # every copy of an id counts, accepted or not: the first one loaded is the original
    repeated = text("id") is not None and text("id") in seen
    if text("id") is not None:
        seen.add(text("id"))
    for name in ("id", "employee_id", "vendor_id", "amount", "currency", "date"):
        if text(name) is None:
            return f"missing_field:{name}"
    try:
        amount = Decimal(text("amount"))
    except InvalidOperation:
        return "invalid_type:amount"
    if not amount.is_finite():
        return "invalid_number:amount"
    day = _iso_date(text("date"))
    if day is None:
        return "invalid_type:date"
    if repeated:
        return "duplicate"
    if amount.quantize(Decimal("0.01"), ROUND_HALF_UP) <= 0:
        return "non_positive_amount"
    if day > rules["today"]:
        return "future_date"
    currency = text("currency").upper()
    if currency not in rules["rates"]:
        return "unknown_currency"
    if (amount * rules["rates"][currency]).quantize(Decimal("0.01"), ROUND_HALF_UP) <= 0:
        return "non_positive_amount"
    category = (text("category") or "").lower() or None
    if category is not None and category not in rules["categories"]:
        return "unknown_category"
    if text("vendor_id") not in rules["vendors"]:
        return "orphan_vendor"
    return None


def load_transactions(landing: Path, today: dt.date | None = None):
    """Accepted transactions by the silver rules: id, date, category, department, vendor_name,
    cents, amount_eur, month, plus `file` and `line` (for the rules' cross-check)."""
    import polars as pl

    vendors = pl.read_csv(landing / "vendors" / "vendors.csv").select("vendor_id", "vendor_name")
    rules = {
        "today": today or dt.date.today(),
        "rates": {r["currency"]: Decimal(r["rate_to_eur"]) for r in _seed("currency_rates")},
        "categories": {r["category"] for r in _seed("categories")},
        "vendors": set(vendors["vendor_id"].to_list()),
    }
    seen: set[str] = set()
    records = []
    for path in sorted((landing / "transactions").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if _reject_reason(row, seen, rules) is not None:
                continue
            rate = rules["rates"][str(row["currency"]).strip().upper()]
            amount = (Decimal(str(row["amount"]).strip()) * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
            records.append(
                {
                    "id": str(row["id"]).strip(),
                    "date": dt.date.fromisoformat(str(row["date"]).strip()),
                    "category": (str(row.get("category") or "").strip().lower() or "uncategorised"),
                    "employee_id": str(row["employee_id"]).strip(),
                    "vendor_id": str(row["vendor_id"]).strip(),
                    "cents": int(amount * 100),
                    "file": f"transactions/{path.name}",
                    "line": number,
                }
            )
    employees = pl.read_csv(landing / "employees" / "employees.csv").select("employee_id", "department")
    return (
        pl.DataFrame(records)
        .join(employees, on="employee_id", how="left")
        .with_columns(pl.col("department").fill_null("unknown"))
        .join(vendors, on="vendor_id", how="inner")
        .with_columns(
            pl.col("date").dt.truncate("1mo").dt.strftime("%Y-%m").alias("month"),
            (pl.col("cents") / 100).alias("amount_eur"),
        )
    )


def check_rules_against_truth(tx, truth: Path) -> bool:
    """Whether the rules accepted exactly the lines the sample generator did not make defective."""
    clean = {
        (row["file"], int(row["line_number"]))
        for row in csv.DictReader((truth / "lines.csv").open())
        if row["source"] == "transactions" and not row["defect"]
    }
    return set(zip(tx["file"].to_list(), tx["line"].to_list(), strict=True)) == clean


def load_events(landing: Path, today: dt.date | None = None):
    """Accepted events by the silver rules: case_id, activity, ts (UTC)."""
    import polars as pl

    activities = {r["activity"] for r in _seed("activities")}
    limit = (today or dt.date.today()) + dt.timedelta(days=1)
    seen: set[tuple[str, str, dt.datetime]] = set()
    records = []
    for path in sorted((landing / "events").glob("*.csv")):
        for row in csv.DictReader(path.open()):
            case, activity, stamp = ((row.get(k) or "").strip() for k in ("case_id", "activity", "timestamp"))
            if not case or not activity or not stamp:
                continue
            try:
                ts = dt.datetime.fromisoformat(stamp)
            except ValueError:
                continue
            ts = ts.astimezone(dt.UTC) if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
            if (case, activity, ts) in seen:
                continue
            seen.add((case, activity, ts))
            if ts.date() >= limit or activity not in activities:
                continue
            records.append({"case_id": case, "activity": activity, "ts": ts})
    return pl.DataFrame(records).sort("case_id", "ts")


# -- references


def _cut(tx, case: Case, keep: tuple[str, ...] | None = None):
    import polars as pl

    column = {"vendor": "vendor_name"}
    for name, value in case.filters.items():
        if keep is not None and name not in keep:
            continue
        values = list(value) if isinstance(value, tuple) else [value]
        tx = tx.filter(pl.col(column.get(name, name)).is_in(values))
    if case.period:
        start, end = (dt.date.fromisoformat(d) for d in case.period)
        tx = tx.filter((pl.col("date") >= start) & (pl.col("date") < end))
    return tx


def _months(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def _shift(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def expected(case: Case, tx, events) -> Any:
    """The reference answer: a number, a name, a tuple of acceptable values, or None."""
    import polars as pl

    if case.kind == "none":
        return None
    part = _cut(tx, case)
    if case.kind == "total":
        return part["cents"].sum() / 100
    if case.kind == "count":
        return part.height
    if case.kind == "share":
        return round(100 * part["cents"].sum() / tx["cents"].sum(), 2)
    if case.kind == "share_in":
        base = _cut(tx, case, keep=tuple(k for k in case.by.split(",") if k))
        return round(100 * part["cents"].sum() / base["cents"].sum(), 2)
    if case.kind in ("top", "bottom"):
        key = {"vendor": "vendor_name"}.get(case.by, case.by)
        value = pl.len() if case.measure == "count" else pl.col("cents").sum()
        ranked = part.group_by(key).agg(value.alias("value")).sort("value", descending=case.kind == "top")
        return ranked[key][0]
    if case.kind == "growth":
        start, end = (dt.date.fromisoformat(d) for d in case.period)
        length = _months(start, end)
        before = _cut(
            tx, Case("", "total", case.filters, (_shift(start, -length).isoformat(), case.period[0]))
        )
        now, then = part["cents"].sum(), before["cents"].sum()
        return round(100 * (now - then) / then, 2)
    if case.kind == "avg_tx":
        return round(part["cents"].sum() / part.height / 100, 2)
    if case.kind == "avg_month":
        start, end = (dt.date.fromisoformat(d) for d in case.period)
        return round(part["cents"].sum() / _months(start, end) / 100, 2)
    if case.kind == "weekly":
        first, last = tx["date"].min(), tx["date"].max()
        weeks = len(pl.date_range(first - dt.timedelta(days=first.weekday()), last, "1w", eager=True))
        return round(part["cents"].sum() / weeks / 100, 2)
    if case.kind == "largest":
        top = part.sort("cents", descending=True).row(0, named=True)
        return (top["id"], top["cents"] / 100)
    if case.kind == "anomaly":
        return _anomaly_weeks(tx, case.filters["category"])
    cases = events.group_by("case_id", maintain_order=True).agg(
        pl.col("activity"), (pl.col("ts").max() - pl.col("ts").min()).alias("duration")
    )
    if case.kind == "duration":
        return round(cases["duration"].dt.total_seconds().mean() / 3600, 2)
    if case.kind == "path":
        paths = Counter(" → ".join(a) for a in cases["activity"].to_list())
        return paths.most_common(1)[0][0]
    if case.kind == "rejected_pct":
        return round(100 * sum("Reject" in a for a in cases["activity"].to_list()) / cases.height, 2)
    if case.kind == "rework":
        return sum("Request Changes" in a for a in cases["activity"].to_list())
    raise ValueError(f"unknown kind {case.kind!r}")


def references(landing: Path, truth: Path | None = None) -> list[tuple[Case, Any]]:
    tx, events = load_transactions(landing), load_events(landing)
    if truth is not None and (truth / "lines.csv").exists() and not check_rules_against_truth(tx, truth):
        raise ValueError("the silver rules applied here disagree with the sample's ground truth")
    return [(case, expected(case, tx, events)) for case in QUESTIONS]
