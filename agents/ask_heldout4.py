"""Held-out set 4 of Ask assay (issue 20): 40 questions written before they were asked.

Written on 2026-12-04 after the fixes made on held-out sets 1, 2 and 3, by someone who had not read
the question-answering code (the parser, its rules, the semantic layer's synonyms, the README's Ask
section) nor the earlier held-out sets' questions: only the data an analyst sees (the default
sample's landing files, the gold marts' names and columns, `assay --help`), the original set of
agents/ask_eval.py and set 3's kinds. The wordings are an analyst's: other verbs ("blow on", "put
on", "cost us", "go on"), word order that puts the period or the name first, lowercase names and a
name without its legal form, typos, chatter around the question, relative periods ("Q3 last year",
"the second half of last year", "since October 2025", "Jan-Mar 2025", explicit dates), "per",
"vs", "excluding", "combined", superlatives (busiest, smallest, biggest single), approval-process
questions, and seven questions the data cannot answer (a future quarter, a period before the data,
a budget, a tax the data does not hold, a vendor, a department and a category that do not exist).
Committed alone before any of them was run through `assay ask`, so git shows the order; the first
run's figure is the out-of-sample one.

"Last year" is relative to the day the set was written (2026-12-04): 2025.

References: set 3's computations (agents/ask_heldout3.py's `reference`, one per kind, described in
its module doc) over polars frames of the landing files with the silver rules as
agents/ask_heldout.py applies them (`load_transactions` / `load_events`, cross-checked against the
sample's ground truth), never over silver or gold. "Excluding" a category is the cut keeping every
other category, `uncategorised` included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.agents.ask_cases import Case, _m
from assay.agents.ask_heldout3 import references as heldout3_references

Y2025 = ("2025-01-01", "2026-01-01")
Q1, Q2, Q3, Q4 = (("2025-01-01", "2025-04-01"), ("2025-04-01", "2025-07-01"),
                  ("2025-07-01", "2025-10-01"), ("2025-10-01", "2026-01-01"))  # fmt: skip
H1, H2 = ("2025-01-01", "2025-07-01"), ("2025-07-01", "2026-01-01")
NOT_TRAVEL = ("meals", "lodging", "software", "hardware", "office_supplies", "training", "marketing",
              "consulting", "telecom", "uncategorised")  # fmt: skip

QUESTIONS: tuple[Case, ...] = (
    # totals
    Case("how much did we blow on consulting in Q3 last year?", "total", {"category": "consulting"}, Q3),
    Case("Engineering's hardware costs, Jan-Mar 2025?", "total", {"department": "Engineering", "category": "hardware"}, Q1),  # noqa: E501
    Case("What did the sales team put on travel in the second half of last year?", "total", {"department": "Sales", "category": "travel"}, H2),  # noqa: E501
    Case("Total spend in 2025 excluding travel", "total", {"category": NOT_TRAVEL}, Y2025),
    Case("total paid to skylark airlines gmbh", "total", {"vendor": "Skylark Airlines GmbH"}),
    Case("spending on softwre by Finance in November 2025", "total", {"department": "Finance", "category": "software"}, _m("2025-11")),  # noqa: E501
    Case("Since October 2025, how much has gone on lodging?", "total", {"category": "lodging"}, Q4),
    Case("For the board deck: HR and Operations combined, what did training cost us last year?", "total", {"department": ("HR", "Operations"), "category": "training"}, Y2025),  # noqa: E501
    Case("What was spent between 1 April and 30 June 2025 on meals?", "total", {"category": "meals"}, Q2),
    # counts
    Case("number of transactons by the marketing dept in august 2025", "count", {"department": "Marketing"}, _m("2025-08")),  # noqa: E501
    Case("How many times did we buy from hanse telecom last year?", "count", {"vendor": "Hanse Telecom B.V."}, Y2025),  # noqa: E501
    Case("how many uncategorised transactions are there?", "count", {"category": "uncategorised"}),
    # rankings and superlatives
    Case("which supplier got the most money from Engineering in 2025?", "top", {"department": "Engineering"}, Y2025, by="vendor"),  # noqa: E501
    Case("Which dept had the smallest travel bill in Q2 2025?", "bottom", {"category": "travel"}, Q2, by="department"),  # noqa: E501
    Case("Sales vs Marketing: who spent more on meals last year?", "top", {"department": ("Sales", "Marketing"), "category": "meals"}, Y2025, by="department"),  # noqa: E501
    Case("busiest month for transactions in 2025?", "top", period=Y2025, by="month", measure="count"),
    Case("which quarter of 2025 had the highest consulting spend", "top", {"category": "consulting"}, Y2025, by="quarter"),  # noqa: E501
    Case("Top category for the Finance department by spend, H1 2025", "top", {"department": "Finance"}, H1, by="category"),  # noqa: E501
    Case("What's the biggest single expense we've had on hardware?", "largest", {"category": "hardware"}),
    # shares
    Case("what % of all our spend goes to falcon rail ag", "share", {"vendor": "Falcon Rail AG"}),
    Case("How big a slice of Engineering's 2025 spend was software?", "share_in", {"department": "Engineering", "category": "software"}, Y2025, by="department"),  # noqa: E501
    Case("lodging as a percentage of total spend in Q1 2025", "share_in", {"category": "lodging"}, Q1, by=""),
    # growth
    Case("Q3 vs Q2 2025: how did hardware spend change, in %?", "growth", {"category": "hardware"}, Q3),
    Case("month over month growth in travel for October 2025", "growth", {"category": "travel"}, _m("2025-10")),  # noqa: E501
    # averages
    Case("average amount per expense for consulting in 2025", "avg_tx", {"category": "consulting"}, Y2025),
    Case("Per month, on average, what did software cost us in 2025?", "avg_month", {"category": "software"}, Y2025),  # noqa: E501
    Case("what's our avg spend per week for travel?", "weekly", {"category": "travel"}),
    # anomalies
    Case("Hey, quick one: how many outlier weeks has lodging had?", "anomaly", {"category": "lodging"}),
    # which vendors sell ...
    Case("Which vendors provide telecom services?", "sells", by="telecom"),
    # approval process
    Case("On average, how many days does an expense claim take from start to finish?", "duration_days"),
    Case("how many claims got sent back for changes at least once?", "with_count", by="Request Changes"),
    Case("What percentage of claims needed a finance review?", "with_pct", by="Finance Review"),
    Case("avg hours from manager approval to payment", "between_mean", by="Manager Approval,Pay"),
    # the data cannot answer
    Case("What will we spend on travel in Q1 2027?", "none"),
    Case("how much did we pay Globex Logistics last year?", "none"),
    Case("R&D's software spend in 2025", "none"),
    Case("How much VAT did we pay on hardware in 2025?", "none"),
    Case("What was travel spend in December 2024?", "none"),
    Case("what's the marketing budget for next quarter?", "none"),
    Case("How much went on furniture last year?", "none"),
)  # fmt: skip


def references(landing: Path, truth: Path | None = None) -> list[tuple[Case, Any]]:
    return heldout3_references(landing, truth, QUESTIONS)
