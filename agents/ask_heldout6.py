"""Held-out set 6 of Ask assay (issue 20): 40 questions written before any of them was asked.

Written on 2026-12-04 by a helper engineer (worktree i20-set6b) under these blindness rules: without
reading the answering code (agents/ask.py and its ask_* modules, agents/tools), the semantic layer's
YAML, tests/test_ask*.py, the README's Ask section beyond what can be asked, or the questions of
held-out sets 1-5 and of agents/ask_cases.py; from the gold marts' columns, the landing files, the
sample generator's output, the silver rules and the reference functions of sets 1, 3 and 5 only.
Slips: before the questions were written, a `cat` of gold's YAML showed the semantic layer's model
and measure names and descriptions (not its synonyms); after, the README's set 5 paragraphs showed
one set 5 question.
Committed before the first run, so git shows the order.

The questions are phrased as analysts write to a spend assistant (lower case, abbreviations,
possessives, "vs", "top 3", "%", one typo: "consluting"). Today is 2026-12-04 and the sample covers
2025, so "last year" is 2025; "this month" (December 2026), 2024, a budget, a forecast, a vendor and a
department that do not exist, and a measure the data does not hold (CO2) must abstain.

References come from polars over the landing files with the silver rules (the loaders of
agents/ask_heldout.py, cross-checked against the ground truth), through set 5's `references` and so
with set 5's conventions (its module doc):

- a month is named `2025-07`, a quarter `2025-Q3`; a ranking's reference is its first entity (for
  "top 3", the first of them); a tie accepts every tied name;
- a share is in % of all spend (`share`), or (`share_in`) of the spend of the dimensions named in
  `by` (empty: all spend) in the same period; growth is in % of the preceding period of the same
  length ("Q3 vs Q2", "H2 vs H1", "dec vs nov");
- the average weekly spend divides by the weeks gold.category_trends holds (Monday-started weeks from
  the first to the last day of the data); an average per month is exact and rounded half up;
- anomalous weeks follow gold.category_trends' SQL (population standard deviation, |z| > 2 in a
  complete week);
- the largest transaction's reference is its id and its EUR amount (either is right);
- process facts come from the accepted events (set 3's `_process`): the mean case duration in days,
  the most common activity sequence, the % of cases with an activity, the mean hours between two
  activities over cases with both;
- "which vendors sell X" accepts any vendor whose default category (vendors.csv) is X.

Vendor questions name the one vendor both samples hold (small and default, seed 42), so every
reference is computed on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout5 import KITCHEN, Y2025
from assay.agents.ask_heldout5 import references as references5

H1 = ("2025-01-01", "2025-07-01")
H2 = ("2025-07-01", "2026-01-01")
Q1 = ("2025-01-01", "2025-04-01")
Q2 = ("2025-04-01", "2025-07-01")
Q3 = ("2025-07-01", "2025-10-01")
Q4 = ("2025-10-01", "2026-01-01")

QUESTIONS: tuple[Case, ...] = (
    # totals and counts with filters
    Case("total spend on consulting in q3 2025", "total", {"category": "consulting"}, Q3),
    Case("How much did Engineering spend last year?", "total", {"department": "Engineering"}, Y2025),
    Case(
        "what did HR spend on training in H1 2025?",
        "total",
        {"category": "training", "department": "HR"},
        H1,
    ),
    Case(
        "how many transactions did the marketing dept have in october 2025",
        "count",
        {"department": "Marketing"},
        _m("2025-10"),
    ),
    Case("number of hardware purchases in may 2025", "count", {"category": "hardware"}, _m("2025-05")),
    Case(f"how much have we spent with {KITCHEN} in 2025?", "total", {"vendor": KITCHEN}, Y2025),
    Case(
        "total telecom + software spend Q4 2025",
        "total",
        {"category": ("telecom", "software")},
        Q4,
    ),
    Case("how many lodging txns in the second half of 2025", "count", {"category": "lodging"}, H2),
    Case("Total spend Sep through Nov 2025", "total", {}, ("2025-09-01", "2025-12-01")),
    # rankings
    Case("top vendor by spend in Q1 2025", "top", {}, Q1, by="vendor"),
    Case(
        "which department spent the most on travel in 2025?",
        "top",
        {"category": "travel"},
        Y2025,
        by="department",
    ),
    Case(
        "which category had the lowest spend in Operations last year",
        "bottom",
        {"department": "Operations"},
        Y2025,
        by="category",
    ),
    Case(
        "which month of 2025 had the highest marketing spend?",
        "top",
        {"category": "marketing"},
        Y2025,
        by="month",
    ),
    Case(
        "top 3 vendors by number of transactions in 2025",
        "top",
        {},
        Y2025,
        by="vendor",
        measure="count",
    ),
    Case(
        "in which quarter did Sales spend the most in 2025",
        "top",
        {"department": "Sales"},
        Y2025,
        by="quarter",
    ),
    # shares
    Case("what share of total spend went to consulting?", "share", {"category": "consulting"}),
    Case("what % of Q2 2025 spend was hardware", "share_in", {"category": "hardware"}, Q2, by=""),
    Case(
        "engineering's share of software spend in 2025",
        "share_in",
        {"category": "software", "department": "Engineering"},
        Y2025,
        by="category",
    ),
    Case(f"what % of all our spend went to {KITCHEN}?", "share", {"vendor": KITCHEN}),
    # growth
    Case("travel spend growth Q3 vs Q2 2025 in %", "growth", {"category": "travel"}, Q3),
    Case("% change in total spend dec 2025 vs nov 2025", "growth", {}, _m("2025-12")),
    Case("Sales dept spend growth H2 vs H1 2025", "growth", {"department": "Sales"}, H2),
    # averages and the largest transaction
    Case("average transaction amount for lodging in 2025", "avg_tx", {"category": "lodging"}, Y2025),
    Case(
        "avg monthly spend of the Finance department last year",
        "avg_month",
        {"department": "Finance"},
        Y2025,
    ),
    Case("what's our average weekly spend on telecom?", "weekly", {"category": "telecom"}),
    Case("largest single hardware transaction in 2025", "largest", {"category": "hardware"}, Y2025),
    # anomalous weeks
    Case("how many anomalous weeks did consluting have?", "anomaly", {"category": "consulting"}),
    Case("were there any unusual weeks in meals spend? how many", "anomaly", {"category": "meals"}),
    # the event log
    Case("average case duration in days", "duration_days"),
    Case("what's the most common approval path for expense claims?", "path"),
    Case("what % of claims went through finance review", "with_pct", by="Finance Review"),
    Case(
        "avg hours from submit to manager approval",
        "between_mean",
        by="Submit,Manager Approval",
    ),
    # vendors by what they sell
    Case("which vendors sell office supplies?", "sells", by="office_supplies"),
    # what the data cannot answer
    Case("what's our travel budget for 2026?", "none"),
    Case("forecast consulting spend for q1 2027", "none"),
    Case("how much did we spend at Acme Corp?", "none"),
    Case("Legal department spend in 2025", "none"),
    Case("total spend in 2024", "none"),
    Case("how much have we spent this month?", "none"),
    Case("what was the CO2 footprint of our travel last year?", "none"),
)


def references(landing: Path, truth: Path | None = None) -> list[tuple[Case, Any]]:
    """Each question with its reference: a number, a name, a tuple of equally right values, or None."""
    return references5(landing, truth, QUESTIONS)
