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


_NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}


def weekly(low: str) -> bool | None:
    """True: the question asks for an average week ("avg weekly spend", "per week", "the mean spend in
    a week"); False: for a week's figure that is no average ("weekly spend", "each week": the weeks
    themselves, or a peak); None: for no week's figure. A week named by its number ("week 12") is no
    week's figure."""
    if has(low, WEEKLY):
        return True
    bare = re.sub(r"\bweeks?\s+\d+", "", low)
    if not has(bare, WEEK):
        return None
    return has(low, MEAN)


def top_n(low: str) -> tuple[str, int] | None:
    """("3", 3) for "top 3" or "the 3 biggest", ("five", 5) for "top five" or "five largest": the word
    as written and its number."""
    if m := _TOP_N.search(low):
        word = m[1] or m[2]
        return word, _NUMBER_WORDS.get(word) or int(word)
    return None


# Words that say the data cannot answer: assay holds spend, not these.
OUT_OF_SCOPE = (
    "revenue", "profit", "margin", "salary", "salaries", "headcount", "customer", "forecast", "budget",
    "weather", "stock price", "employees do we have", "predict", "next year", "tomorrow",
    "next quarter", "next month", "next week", "will", "going to",
)  # fmt: skip
# "compare March with February": growth only between two periods named (agents/ask_periods.py)
COMPARE = ("compare", "compares", "comparing")
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
    *COMPARE,
    "develop",
    "developed",
    "evolve",
    "evolved",
    "went up",
    "gone up",
    "went down",
    "gone down",
    "up or down",
    # growth against the period before, by its grain ("month over month in October 2025")
    "month over month",
    "month-on-month",
    "month on month",
    "quarter over quarter",
    "quarter-on-quarter",
    "quarter on quarter",
    "qoq",
    "year over year",
    "year-over-year",
    "year on year",
    "year-on-year",
    "yoy",
)
_CHANGE = tuple(w for w in GROWTH if w not in COMPARE)


def asks_change(low: str) -> bool:
    """A growth word other than "compare": growth of one period against the one before may be meant
    ("compare travel and meals in 2025" is no growth of 2025)."""
    return has(low, _CHANGE)


ANOMALY = (
    "anomaly", "anomalies", "anomalous", "unusual", "outlier", "outliers", "spike", "spikes", "abnormal",
    "irregular", "atypical",
)  # fmt: skip
RANK_DESC = (
    "which", "top", "most", "highest", "largest", "biggest", "peak", "best", "greatest", "leading", "busiest",
)  # fmt: skip
RANK_ASC = ("lowest", "least", "smallest", "fewest", "cheapest", "bottom")
_COUNT = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + ")"
# "top 3", "bottom five", "the three biggest", "5 lowest"
_TOP_N = re.compile(
    rf"\b(?:top|bottom)\s+{_COUNT}\b"
    rf"|\b{_COUNT}\s+(?:{'|'.join(w for w in RANK_DESC + RANK_ASC if w not in ('which', 'top', 'bottom'))})\b"
)
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
    # a half-year ranked ("which half of 2025"); "the first half of 2025" is a period, not this word
    "half": ("which half", "what half", "halves", "half-years"),
}

# Words that name single transactions (they are counted, or their amount is averaged).
TRANSACTION_NOUNS = (
    "transactions", "transaction", "purchases", "purchase", "payments", "payment", "expenses", "times",
    "invoices", "invoice", "expense lines", "expense line", "line items", "bookings", "entries", "txns",
    "txn",
)  # fmt: skip
MONTHLY = (
    "per month", "a month", "monthly average", "average monthly", "average month", "typical month",
    "each month", "every month", "avg monthly", "mean monthly", "typical monthly", "monthly avg",
    "monthly mean",
)  # fmt: skip
# "monthly spend of HR in 2025": per month over a period of several months; of one month, its total
MONTHLY_BARE = ("monthly",)
SHARE = ("share", "percentage", "percent", "proportion", "fraction", "portion", "slice", "%")
AVERAGE = ("average", "avg", "mean", "typical", "per month", "per transaction", "per purchase", "median")
# the words choose_metric reads for its metrics
COUNTING = ("how many", "number of", "count")
WEEKLY = ("average weekly", "per week", "weekly average", "a typical week", "average week")
# a week's figure: with a word of MEAN ("avg weekly spend", "mean spend a week") the average weekly spend
WEEK = ("weekly", "per week", "a week")
PER_TRANSACTION = ("per transaction", "per purchase", "per payment", "per invoice", "per expense")
MEAN = ("average", "avg", "mean", "typical")
OFTEN = ("how often", "most often", "most frequently")
BY_COUNT = ("most", "fewest", "least", "busiest", "quietest")
SPEND_WORDS = (
    "spend", "spent", "cost", "paid", "pay", "expensive", "cheapest", "costliest", "money", "received",
    "went out", "gone out", "outlay", "expenditure", "bill", "billed",
)  # fmt: skip
# "which vendors sell flights", "who do we buy office supplies from": the vendors of a category
# (agents/ask_metric.vendor_list), asked with these verbs and a word for vendors (or "who")
SELLS = (
    "sell", "sells", "sold", "selling", "supply", "supplies", "supplied", "supplying", "provide",
    "provides", "provided", "providing", "buy", "bought", "buying", "source", "use",
)  # fmt: skip
VENDOR_ASKED = ("who", "companies", "company", "firms", "shops")
# "excluding travel": the values named after these are left out
EXCLUSION = (
    "excluding", "exclude", "excludes", "except", "other than", "apart from", "not counting", "leaving out",
    "without", "ex.", "besides", "minus",
)  # fmt: skip
# "the single biggest payment": one transaction (agents/ask.py's _LARGEST_EXPENSE reads them)
SINGLE = ("single", "individual")
# A total of everything the question names is what assay answers by default ("HR and Operations
# combined"), so these words ask for nothing more.
TOTAL = ("total", "totals", "in total", "altogether", "overall", "combined", "together", "sum")

# Function words: the words of a question that carry no condition of their own (articles, pronouns,
# question words, auxiliaries, prepositions, light verbs, "please", the unit). After planning every
# other word must have been read by a step (`agents/ask_coverage.py`), else assay abstains and names
# it. Keep this list small and general: a content word belongs in the cue list of the step that
# reads it, never here (a negation, "only", "per", "each", a number or a qualifier must stay out).
FUNCTION_WORDS = frozenset((
    "a", "an", "the", "this", "that", "these", "those", "all", "any", "some", "much", "many",
    "what", "which", "who", "whom", "whose", "how", "when", "where", "why",
    "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "done", "has", "have",
    "had", "can", "could", "would", "should",
    "i", "me", "my", "we", "us", "our", "ours", "you", "your", "it", "its", "they", "them", "their", "there",
    "in", "on", "at", "of", "for", "to", "from", "by", "with", "into", "during", "over", "across", "about",
    "as", "and", "or", "so",
    "make", "makes", "made", "get", "gets", "got", "go", "goes", "went", "gone", "come", "came", "take",
    "took", "taken",
    "please", "tell", "show", "give", "eur", "euro", "euros",
))  # fmt: skip
# Numbers written as words ("the first six months"): a condition as a number in digits is ("one" is
# left out: "quick one" is chatter)
NUMBER_WORDS = frozenset(
    ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "dozen"]
)
# Words that negate what follows ("skipped manager approval"): a condition for the word check, and
# the cases without an activity for a process count (`ask_process`)
NEGATION = (
    "not", "no", "never", "without", "skip", "skips", "skipped", "skipping", "bypass", "bypassed",
    "bypassing", "missed", "missing", "lacking",
)  # fmt: skip
# Words that put a condition on what is counted (a negation, a restriction, a time relation, a
# rate): `ask_coverage.conditions` abstains on these when no step read them.
QUALIFIERS = (
    *NEGATION, "non", "nor", "except", "excluding", "exclude", "excludes", "only",
    "just", "but", "besides", "minus", "other", "before", "after", "until", "till", "since", "prior",
    "next", "previous", "between", "per", "each", "every", "above", "below", "under", "exceeding",
    "excluded", "unless", "apart", "outside", "within", "first", "last", "latest", "recent", "recently",
    "current",
)  # fmt: skip
