"""What the two evaluation sets of Ask assay share (agents/ask_eval.py, agents/ask_heldout.py): the
shape of a question with its reference's cut, and gold.category_trends' anomaly rule over polars."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    question: str
    kind: str  # total | count | top | bottom | share | growth | anomaly | weekly | process | search | none
    # (agents/ask_heldout.py adds its own kinds)
    filters: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # category / department / vendor
    period: tuple[str, str] | None = None  # [start, end) as ISO dates
    by: str | None = None  # for rankings: vendor / category / department / month
    measure: str = "spend"  # spend | count


def _m(month: str) -> tuple[str, str]:
    year, number = (int(p) for p in month.split("-"))
    return f"{month}-01", dt.date(year + number // 12, number % 12 + 1, 1).isoformat()


def _anomaly_weeks(tx, category: str) -> int:
    """gold.category_trends' rule: weekly totals (0 for empty weeks) over the whole data's week range,
    z against the category's weekly history, flagged when |z| > 2 and the week is complete."""
    import polars as pl

    first, last = tx["date"].min(), tx["date"].max()
    weeks = pl.date_range(first - dt.timedelta(days=first.weekday()), last, "1w", eager=True).alias("week")
    weekly = (
        tx.filter(pl.col("category") == category)
        .group_by(pl.col("date").dt.truncate("1w").alias("week"))
        .agg(pl.col("amount_eur").sum())
    )
    full = (
        weeks.to_frame().join(weekly, on="week", how="left").with_columns(pl.col("amount_eur").fill_null(0))
    )
    values = full["amount_eur"]
    z = (values - values.mean()) / values.std()
    complete = (full["week"] >= first) & (full["week"] + dt.timedelta(days=6) <= last)
    return int(((z.abs() > 2) & complete).sum())


def process_reference(kind: str, events, activities: tuple[str, ...] = ()):
    """A process fact over accepted events (polars: case_id, activity, ts), computed without the
    process-mining tables: `path` (the most common activity sequence, joined by " → "), `cases_with`
    (cases with the activity), `between` (mean hours from the first A to the first B after it, over
    cases with both)."""
    from collections import Counter

    import polars as pl

    cases = events.sort("case_id", "ts").group_by("case_id", maintain_order=True).agg(pl.col("activity"))
    if kind == "path":
        return Counter(" → ".join(a) for a in cases["activity"].to_list()).most_common(1)[0][0]
    if kind == "cases_with":
        return sum(activities[0] in a for a in cases["activity"].to_list())
    if kind == "between":
        first = events.group_by("case_id").agg(
            *(
                pl.col("ts").filter(pl.col("activity") == a).min().alias(f"t{i}")
                for i, a in enumerate(activities)
            )
        )
        both = first.drop_nulls().filter(pl.col("t1") >= pl.col("t0"))
        return round(((both["t1"] - both["t0"]).dt.total_seconds() / 3600).mean(), 2)
    raise ValueError(f"unknown process kind {kind!r}")
