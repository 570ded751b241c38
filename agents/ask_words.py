"""The words Ask assay reads in a question (agents/ask.py): the cues for growth, shares, averages,
rankings, comparisons and dimensions, the words for transactions and what the data cannot answer;
`has` finds them, and `Abstain` is what every step raises when a question does not fit."""

from __future__ import annotations

import re


class Abstain(Exception):
    """The question cannot be answered from the semantic layer; the message says why."""


def has(low: str, words: tuple[str, ...]) -> bool:
    # no letter or digit on either side (not \b, which never matches beside a symbol such as "%")
    return any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", low) for w in words)


# Words that say the data cannot answer: assay holds spend, not these.
OUT_OF_SCOPE = (
    "revenue", "profit", "margin", "salary", "salaries", "headcount", "customer", "forecast", "budget",
    "weather", "stock price", "employees do we have", "predict", "next year", "tomorrow",
    "next quarter", "next month", "next week", "will", "going to",
)  # fmt: skip
GROWTH = (
    "grow",
    "grew",
    "growth",
    "change",
    "increase",
    "increased",
    "decrease",
    "decreased",
    "dropped",
    "rose",
    "rise",
    "risen",
    "fall",
    "fell",
    "fallen",
    "decline",
    "declined",
    "versus",
    "vs",
    "compared",
    "develop",
    "developed",
    "evolve",
    "evolved",
    "went up",
    "gone up",
    "went down",
    "gone down",
    "up or down",
)
ANOMALY = (
    "anomaly", "anomalies", "anomalous", "unusual", "outlier", "outliers", "spike", "spikes", "abnormal",
    "irregular", "atypical",
)  # fmt: skip
RANK_DESC = (
    "which", "top", "most", "highest", "largest", "biggest", "peak", "best", "greatest", "leading", "busiest",
)  # fmt: skip
RANK_ASC = ("lowest", "least", "smallest", "fewest", "cheapest", "bottom")
# "who spent more", "which was lower": a comparison of the values a question names
COMPARATIVE = ("more", "less", "higher", "lower", "bigger", "smaller", "larger", "fewer", "greater")
COMPARATIVE_ASC = ("less", "lower", "smaller", "fewer")
ALTERNATIVES = ("or", "versus", "vs", "than", "compared", "either")
DIMENSION_WORDS = {
    "vendor": ("vendor", "vendors", "supplier", "suppliers", "merchant", "merchants", "payee"),
    "category": ("category", "categories", "type of expense", "kind of expense"),
    "department": ("department", "departments", "dept", "depts", "team", "teams", "division"),
    "month": ("month", "months"),
    "quarter": ("quarter", "quarters"),
    "year": ("year", "years"),
    "week": ("week", "weeks"),
}

# Words that name single transactions (they are counted, or their amount is averaged).
TRANSACTION_NOUNS = (
    "transactions", "transaction", "purchases", "purchase", "payments", "payment", "expenses", "times",
    "invoices", "invoice", "expense lines", "expense line", "line items", "bookings", "entries",
)  # fmt: skip
MONTHLY = (
    "per month", "a month", "monthly average", "average monthly", "average month", "typical month",
    "each month", "every month",
)  # fmt: skip
SHARE = ("share", "percentage", "percent", "proportion", "fraction", "portion", "slice", "%")
AVERAGE = ("average", "avg", "mean", "typical", "per month", "per transaction", "per purchase", "median")
