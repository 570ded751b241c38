"""Ask assay: an analyst's question -> a structured query over the semantic layer -> an answer.

The hard parts are deterministic: periods are parsed (months, quarters, years, "last month"), literal
values (categories, departments, vendors) are matched against the dimensions' actual values with
rapidfuzz, and the metric is chosen by the words analysts use for it (the metrics' `meta.synonyms`).
The answer sentence is rendered from the query's result, never written by a model; a question that
fits no metric, or asks for a cut the layer does not have, is answered with an abstention and why.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg import sql
from rapidfuzz import fuzz, process

from assay.agents.ask_process import ProcessQuery, plan_process
from assay.agents.tools.db import ReaderSession, ToolError
from assay.agents.tools.lineage import transaction_sources
from assay.agents.tools.semantic import Metric, StructuredQuery, compile_query, semantic_layer

MATCH_SCORE = 90  # rapidfuzz ratio (0-100) a phrase must reach to name a dimension value
_MONTHS = (
    {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
    | {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m and m != "May"}
    | {"sept": 9}
)
_WORD = re.compile(r"[a-z0-9][a-z0-9&'.-]*")
# Words that say the data cannot answer: assay holds spend, not these.
_OUT_OF_SCOPE = (
    "revenue", "profit", "margin", "salary", "salaries", "headcount", "customer", "forecast", "budget",
    "weather", "stock price", "employees do we have", "predict", "next year", "tomorrow",
    "next quarter", "next month", "next week", "will", "going to",
)  # fmt: skip
_GROWTH = (
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
_ANOMALY = (
    "anomaly", "anomalies", "anomalous", "unusual", "outlier", "outliers", "spike", "spikes", "abnormal",
    "irregular", "atypical",
)  # fmt: skip
_RANK_DESC = (
    "which", "top", "most", "highest", "largest", "biggest", "peak", "best", "greatest", "leading", "busiest",
)  # fmt: skip
_RANK_ASC = ("lowest", "least", "smallest", "fewest", "cheapest", "bottom")
# "who spent more", "which was lower": a comparison of the values a question names
_COMPARATIVE = ("more", "less", "higher", "lower", "bigger", "smaller", "larger", "fewer", "greater")
_COMPARATIVE_ASC = ("less", "lower", "smaller", "fewer")
_ALTERNATIVES = ("or", "versus", "vs", "than", "compared", "either")


def _compared(low: str, filters: dict[str, list[str]]) -> str | None:
    """The dimension whose values a question compares ("Sales vs Marketing: who spent more"): several
    values of one dimension, asked as alternatives, with a comparative word."""
    several = [dim for dim, vals in filters.items() if len(vals) > 1]
    if len(several) != 1 or not _has(low, _COMPARATIVE):
        return None
    # the values must stand on either side of the alternative ("Sales vs Marketing"), so that a
    # value read as another dimension ("Sales or Marketing", marketing the category) compares nothing
    keys = [k for v in filters[several[0]] for k in _keys(v)]
    for a, b in itertools.permutations(keys, 2):
        if re.search(rf"\b{re.escape(a)}\W+(?:or|vs\.?|versus|compared (?:to|with))\W+{re.escape(b)}\b", low):
            return several[0]
    return None


_DIMENSION_WORDS = {
    "vendor": ("vendor", "vendors", "supplier", "suppliers", "merchant", "merchants", "payee"),
    "category": ("category", "categories", "type of expense", "kind of expense"),
    "department": ("department", "departments", "dept", "depts", "team", "teams", "division"),
    "month": ("month", "months"),
    "quarter": ("quarter", "quarters"),
    "year": ("year", "years"),
    "week": ("week", "weeks"),
}


# "the largest expense", "biggest single purchase", "top 3 transactions": single transactions ranked
# A singular noun may follow one or two words ("the largest consulting expense"); a plural one must
# follow directly ("highest travel expenses" is a total).
_LARGEST_EXPENSE = re.compile(
    r"\b(largest|biggest|most expensive|highest|top(?:\s+\w+)?)\s+(?:single\s+|individual\s+)?"
    r"(?:(expense|expenses|transaction|transactions|purchase|purchases|payment|payments)\b"
    r"|(?:[a-z_]+\s+){1,2}?(expense|transaction|purchase|payment)\b(?!\s+(?:categor|department|vendor|"
    r"supplier|month|team)))"
    r"|\b(?:single\s+|individual\s+)?(?:expense|transaction|purchase|payment)\s+(?:was|is|has been)\s+the\s+"
    r"(?:largest|biggest|most expensive|highest)\b"
)
# Words that name single transactions (they are counted, or their amount is averaged).
_TRANSACTION_NOUNS = (
    "transactions", "transaction", "purchases", "purchase", "payments", "payment", "expenses", "times",
    "invoices", "invoice", "expense lines", "expense line", "line items", "bookings", "entries",
)  # fmt: skip
_MONTHLY = (
    "per month", "a month", "monthly average", "average monthly", "average month", "typical month",
    "each month", "every month",
)  # fmt: skip
_TXN_FILTERS = {"category": "category", "department": "department"}  # dimension -> documents column


class Abstain(Exception):
    """The question cannot be answered from the semantic layer; the message says why."""


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    query: dict[str, Any] | None = None
    sql: str | None = None
    params: list[Any] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)  # the relations the answer read
    derived: Any = None  # a value computed from the rows (growth in %), when the answer states one
    sources: list[dict[str, Any]] = field(default_factory=list)  # each named transaction's landing line

    @property
    def stated(self) -> Any:
        """What the answer states: the value, or the top row's label when the query ranks."""
        if self.abstained or not self.rows:
            return None
        if self.derived is not None:
            return _plain(self.derived)
        return _plain(self.rows[0][0] if (self.query or {}).get("group_by") else self.rows[0][-1])

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "stated": self.stated,
            "answer": self.answer,
            "abstained": self.abstained,
            "query": self.query,
            "sql": self.sql,
            "params": [_plain(p) for p in self.params],
            "columns": self.columns,
            "rows": [[_plain(v) for v in row] for row in self.rows],
            "provenance": self.provenance,
            "sources": self.sources,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- periods


def _month_range(year: int, month: int) -> tuple[dt.date, dt.date]:
    end = dt.date(year + month // 12, month % 12 + 1, 1)
    return dt.date(year, month, 1), end


def parse_period(text: str, today: dt.date) -> tuple[dt.date | None, dt.date | None, str | None]:
    """(start, end, label) of the period a question names; (None, None, None) when it names none.

    `today` is the latest date in the data, so "last month" means the data's last full month."""
    low = text.lower()
    if m := re.search(r"\b(20\d{2})-(0[1-9]|1[0-2])\b", low):
        year, month = int(m[1]), int(m[2])
        return (*_month_range(year, month), f"{calendar.month_name[month]} {year}")
    month_names = "|".join(sorted(_MONTHS, key=len, reverse=True))
    day = r"(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?"  # "1 April": a day before the month
    # a range of months in one year: "between April and June 2025", "from 1 April to 30 June 2025",
    # "Jan-Mar 2025"
    if m := re.search(
        rf"\b(?:(?:between|from)\s+{day}({month_names})\.?\s+(?:and|to|through|until|till)\s+"
        rf"|{day}({month_names})\.?\s*[-–]\s*){day}({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b",
        low,
    ):
        first_day, first_name = (m[1], m[2]) if m[2] else (m[3], m[4])
        first, last, year = _MONTHS[first_name], _MONTHS[m[6]], int(m[7])
        if first < last:
            end = _month_range(year, last)[1]
            # a range cut inside a month is a period gold does not keep (it holds whole months)
            if first_day not in (None, "1") or m[5] not in (None, str((end - dt.timedelta(days=1)).day)):
                raise Abstain("the period starts or ends inside a month; gold keeps whole months")
            label = f"{calendar.month_name[first]} to {calendar.month_name[last]} {year}"
            return dt.date(year, first, 1), end, label
    # "since October 2025": from that month to the data's latest month
    if m := re.search(rf"\bsince\s+({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b", low):
        month, year = _MONTHS[m[1]], int(m[2])
        end = _month_range(today.year, today.month)[1]
        if dt.date(year, month, 1) < end:
            label = f"{calendar.month_name[month]} {year} to {calendar.month_name[today.month]} {today.year}"
            return dt.date(year, month, 1), end, label
    if re.search(
        rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{month_names})\b|\b(?:{month_names})\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?!\d)",
        low,
    ):
        raise Abstain("the question names a day; gold keeps whole months")
    if m := re.search(rf"\b({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b", low):
        month, year = _MONTHS[m[1]], int(m[2])
        return (*_month_range(year, month), f"{calendar.month_name[month]} {year}")
    # half-years: "H1 2025", "the second half of 2025"
    half = re.search(r"\bh([12])\s*(?:of\s+)?(20\d{2})\b", low) or re.search(
        r"\b(first|1st|second|2nd) half(?:[- ]year)? (?:of\s+)?(20\d{2})\b", low
    )
    if half:
        number = 1 if half[1] in ("1", "first", "1st") else 2
        year = int(half[2])
        start = dt.date(year, 6 * number - 5, 1)
        return start, _month_range(year, 6 * number)[1], f"H{number} {year}"
    ordinals = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
    ordinals |= {"last": 4, "final": 4}
    q = re.search(r"\bq([1-4])\s*(?:of\s+)?(20\d{2})\b", low) or re.search(
        r"\b(20\d{2})\s*-?\s*q([1-4])\b", low
    )
    if q:
        quarter, year = (int(q[1]), int(q[2])) if q[0].startswith("q") else (int(q[2]), int(q[1]))
    elif m := re.search(rf"\b({'|'.join(ordinals)}) quarter (?:of\s+)?(20\d{{2}})\b", low):
        quarter, year = ordinals[m[1]], int(m[2])
    else:
        quarter = None
    if quarter:
        start = dt.date(year, 3 * quarter - 2, 1)
        return start, _month_range(year, 3 * quarter)[1], f"Q{quarter} {year}"
    if re.search(r"\blast month\b|\bprevious month\b", low):
        first = today.replace(day=1)
        start = (first - dt.timedelta(days=1)).replace(day=1)
        return start, first, f"{calendar.month_name[start.month]} {start.year}"
    if re.search(r"\bthis month\b", low):
        start = today.replace(day=1)
        return (*_month_range(start.year, start.month), f"{calendar.month_name[start.month]} {start.year}")
    if re.search(r"\blast year\b", low):
        return dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1), str(today.year - 1)
    if re.search(r"\bthis year\b|\byear to date\b|\bytd\b", low):
        return dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1), str(today.year)
    if m := re.search(r"\b(?:in|during|for|of|over)\s+(20\d{2})\b", low) or re.search(r"\b(20\d{2})\b", low):
        year = int(m[1])
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1), str(year)
    return None, None, None


# -- literal values


def _phrases(text: str, longest: int = 4) -> list[tuple[str, range]]:
    """Every word n-gram of the text (lowercase, possessive 's dropped) with the words it spans."""
    words = [w.removesuffix("'s") for w in _WORD.findall(text.lower())]
    return [
        (" ".join(words[i : i + n]), range(i, i + n))
        for n in range(1, longest + 1)
        for i in range(len(words) - n + 1)
    ]


# Legal forms are left out when analysts name a vendor ("Fjord Hotels" for "Fjord Hotels GmbH").
_LEGAL_FORM = re.compile(r"[\s,]+(gmbh|ltd|inc|b\.v|sas|ag|llc|plc|s\.a|oy|ab)\.?$")
# Words before a value that say which dimension it is ("spend ON marketing" is a category, "the
# marketing TEAM" or "did Marketing spend" a department).
_CUES = {
    "category": ("on", "for", "of"),
    "department": ("did", "does", "has", "team", "department", "dept", "by"),
}


def _keys(value: str) -> set[str]:
    low = value.lower().replace("_", " ")
    return {low, _LEGAL_FORM.sub("", low)}


def _candidates(phrases: list[tuple[str, range]], options: list[str]) -> list[tuple[float, str, range]]:
    keys = {key: option for option in options if option for key in _keys(option)}
    choices = [k for k in keys if len(k) >= 4]
    found = []
    for phrase, span in phrases:
        if phrase in keys and len(phrase) < 4:
            found.append((100.0 + len(phrase) / 100, keys[phrase], span))
        elif len(phrase) >= 4:
            hit = process.extractOne(phrase, choices, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
            if hit:  # longer matches win over a shorter one inside them
                found.append((hit[1] + len(hit[0]) / 100, keys[hit[0]], span))
    return found


def match_values(text: str, values: dict[str, list[str]]) -> dict[str, list[str]]:
    """The dimension values a question names: every word n-gram of the question against each
    dimension's actual values (rapidfuzz ratio >= MATCH_SCORE, case-insensitive, `_` as a space, a
    vendor's legal form optional; a value under 4 characters, such as "HR", must match exactly). Each
    word names one value of one dimension at most: when a word fits two ("marketing" is a category and
    a department), the assignment that names the most dimensions wins, then the one with the most
    evidence: cue words ("on marketing": category; "did Marketing spend": department; "the marketing
    team": department, a dimension's own word counting twice) and the value written in its own case
    (categories are lower case, departments capitalised). Where that leaves a word's dimension
    undecided, Abstain. Several exact values of one dimension ("hardware and software") are all kept
    (their total); asked as alternatives ("hardware or software", "versus"), Abstain."""
    phrases = _phrases(text)
    words = [w.removesuffix("'s") for w in _WORD.findall(text.lower())]
    written = [w.removesuffix("'s") for w in re.findall(_WORD.pattern, text, flags=re.IGNORECASE)]
    options = {dim: [None, *_candidates(phrases, vals)] for dim, vals in values.items()}

    def evidence(dim: str, candidate: tuple[float, str, range]) -> int:
        span = candidate[2]
        near = words[max(span.start - 1, 0) : span.start] + words[span.stop : span.stop + 1]
        found = sum(2 if w in _DIMENSION_WORDS.get(dim, ()) else w in _CUES.get(dim, ()) for w in near)
        phrase = " ".join(written[span.start : span.stop])
        own_case = phrase in (candidate[1], candidate[1].replace("_", " "))
        return found + (span.start > 0 and own_case)  # a sentence's first word is capitalised anyway

    def contradicted(dim: str, candidate: tuple[float, str, range]) -> bool:
        """The word right after the value names another dimension ("Marketing departments")."""
        after = words[candidate[2].stop : candidate[2].stop + 1]
        return any(w in _DIMENSION_WORDS.get(other, ()) for other in values if other != dim for w in after)

    ranked = []
    for combo in itertools.product(*options.values()):
        chosen = [(dim, c) for dim, c in zip(options, combo, strict=True) if c is not None]
        used = [i for _, c in chosen for i in c[2]]
        if len(used) != len(set(used)):
            continue  # a word claimed twice
        rank = (
            -sum(contradicted(dim, c) for dim, c in chosen),
            len(chosen),
            # more words named exactly: "hanse telecom" the vendor over "telecom" the category (not
            # a near spelling: "for consulting" is no "Fjord Consulting")
            sum(len(c[2]) for _, c in chosen if c[0] >= 100),
            sum(evidence(dim, c) for dim, c in chosen),
            sum(c[0] for _, c in chosen),
        )
        ranked.append((rank, chosen))
    if not ranked:
        return {}
    best_rank, best = max(ranked, key=lambda r: r[0])
    claims = {c[2]: (dim, c[1].lower()) for dim, c in best}
    for rank, chosen in ranked:
        if rank[:4] != best_rank[:4]:
            continue
        for dim, c in chosen:
            other = claims.get(c[2])
            if other and other[0] != dim and other[1] == c[1].lower():
                raise Abstain(f"{c[1]!r} may be a {dim} or a {other[0]}; say which (e.g. 'the {c[1]} {dim}')")
    found = {dim: [c[1]] for dim, c in best}
    used = {i for _, c in best for i in c[2]}
    for dim, _chosen in best:
        for extra in options[dim][1:]:
            if extra[0] >= 100 and extra[1] not in found[dim] and not used & set(extra[2]):
                found[dim].append(extra[1])
                used |= set(extra[2])
    if any(len(v) > 1 for v in found.values()) and _has(text.lower(), _ALTERNATIVES):
        if _compared(text.lower(), found):
            return found  # the caller ranks these values against each other
        raise Abstain("the question names alternatives; ask for each one, or for their total")
    return found


# Capitalised words that name no value and need none: units, abbreviations, pronouns.
_PLAIN_CAPITALS = {"i", "eur", "euro", "euros", "usd", "ytd", "mtd", "qtd", "id", "ids", "ok"}


def unexplained_names(text: str, filters: dict[str, list[str]]) -> list[str]:
    """Capitalised words inside a sentence that are no period and no word of a value found: a name
    assay does not hold ("Acme" when no vendor is called so). Answering without it would state a
    total of everything, so the caller abstains."""
    known = _value_words(filters)
    names = []
    for sentence in re.split(r"[.?!:;]\s+", text):
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9&'.-]*", sentence)
        # a sentence's first word is capitalised anyway, unless it is an acronym ("R&D", "EMEA")
        acronym = words[:1] if words and sum(c.isupper() for c in words[0]) > 1 else []
        for word in acronym + words[1:]:
            bare = word.rstrip(".'").removesuffix("'s").lower()
            if not word[0].isupper() or bare in known or bare in _MONTHS or bare in _PLAIN_CAPITALS:
                continue
            if (
                re.fullmatch(r"[qh][1-4]", bare)
                or bare in _OUT_OF_SCOPE
                or set(bare.split("-")) <= set(_MONTHS)
            ):
                continue
            names.append(word.rstrip(".'").removesuffix("'s"))
    return names


def _value_words(filters: dict[str, list[str]]) -> set[str]:
    """The words of the values found ("Polaris Kitchen Inc." gives polaris, kitchen, inc)."""
    return {
        w.rstrip(".'")
        for vals in filters.values()
        for v in vals
        for key in _keys(v)
        for w in _WORD.findall(key)
    }


# "spend on furniture", "outlay on telecomms", "the bill for X": the word a spend is said to be for
_SPEND_OBJECT = re.compile(
    r"\b(?:spend|spent|spending|expenditure|outlay|outlays|cost|costs|bill|paid|pay)\s+(?:on|for)\s+([a-z][a-z_-]*)"
    # "paid to acme", "spent with acme": the payee
    r"|\b(?:paid|pay|payments?|spend|spent|spending)\s+(?:to|with)\s+([a-z][a-z_-]*)"
)
_NOT_A_NAME = {
    "the", "a", "an", "our", "all", "each", "every", "average", "it", "this", "that", "these", "those",
    "everything", "us", "them", "total", "whole", "both", "any", "what", "which", "in", "of", "date",
    "whom", "who",
}  # fmt: skip


def unknown_objects(text: str, filters: dict[str, list[str]], values: dict[str, list[str]]) -> list[str]:
    """Lower-case words a spend is said to be on or for ("spend on furniture") that name no value
    found, no period and no dimension: answering without them would state the total of everything
    (the lower-case twin of `unexplained_names`). Each comes with the closest value, if one is near
    ("telecomms (did you mean telecom?)")."""
    known = _value_words(filters)
    plain = {w for words in _DIMENSION_WORDS.values() for w in words} | set(_TRANSACTION_NOUNS)
    unknown = []
    for m in _SPEND_OBJECT.finditer(text.lower()):
        word = m[1] or m[2]
        near_found = process.extractOne(word, known, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
        if (
            set(word.replace("_", " ").split()) <= known
            or near_found  # "softwre" once software was matched
            or word in _NOT_A_NAME
            or word in _MONTHS
            or word in plain
        ):
            continue
        options = [v for vals in values.values() for v in vals if v]
        near = process.extractOne(word, options, scorer=fuzz.ratio, processor=str.lower, score_cutoff=75)
        unknown.append(f"{word} (did you mean {near[0]}?)" if near else word)
    return unknown


# -- metric choice


def _has(low: str, words: tuple[str, ...]) -> bool:
    # no letter or digit on either side (not \b, which never matches beside a symbol such as "%")
    return any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", low) for w in words)


# the one-word transaction nouns long enough to have a near spelling worth reading
_NEAR_NOUNS = [n for n in _TRANSACTION_NOUNS if " " not in n and len(n) >= 6]


def _transaction_noun(m: re.Match) -> str:
    """A near spelling of a transaction noun is that noun ("transactons"); its other number is not
    ("expense" is no transaction noun, "expenses" is)."""
    hit = process.extractOne(m[0], _NEAR_NOUNS, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
    return hit[0] if hit and hit[0].removesuffix("s") != m[0].removesuffix("s") else m[0]


def choose_metric(question: str, layer: dict[str, Metric], filters: dict[str, list[str]]) -> str:
    """The metric a question asks for, from the metrics' synonyms; Abstain when none fits."""
    low = re.sub(r"[a-z]{6,}", _transaction_noun, question.lower())
    vendor = "vendor" in filters or _has(low, _DIMENSION_WORDS["vendor"])
    scores = {}
    for name, metric in layer.items():
        hits = [s for s in metric.synonyms if _has(low, (s.lower(),))]
        scores[name] = sum(len(s.split()) for s in hits)
    if _has(low, _SHARE) and vendor:
        return "vendor_share_pct"
    if _has(low, _ANOMALY):
        return "anomaly_weeks"
    if _has(low, ("average weekly", "per week", "weekly average", "a typical week", "average week")):
        return "avg_weekly_spend_eur"
    how_many = _has(low, ("how many", "number of", "count"))
    per_transaction = ("per transaction", "per purchase", "per payment", "per invoice", "per expense")
    if not how_many and (
        _has(low, per_transaction)
        or _has(low, ("average", "avg", "mean", "typical"))
        and _has(low, (*_TRANSACTION_NOUNS, "ticket size"))
        and not _has(low, _MONTHLY)
    ):
        return "avg_transaction_eur"
    often = ("how often", "most often", "most frequently")
    counting = how_many or _has(low, ("most", "fewest", "least", "busiest", "quietest", *often))
    if counting and _has(low, _TRANSACTION_NOUNS):
        return "vendor_transaction_count" if vendor else "transaction_count"
    if vendor and _has(low, often):
        return "vendor_transaction_count"
    spend_words = (
        "spend", "spent", "cost", "paid", "pay", "expensive", "cheapest", "costliest", "money", "received",
        "went out", "gone out", "outlay", "expenditure", "bill", "billed",
    )  # fmt: skip
    if scores.get("total_spend_eur") or _has(low, spend_words):
        return "vendor_spend_eur" if vendor else "total_spend_eur"
    best = max(scores, key=scores.get) if scores else None
    if best and scores[best] > 0:
        return best
    if filters and _has(low, _GROWTH) and not _has(low, _SHARE):
        # "growth in travel for October 2025": a category's (department's, vendor's) growth is of spend
        return "vendor_spend_eur" if vendor else "total_spend_eur"
    raise Abstain(
        "the question names no metric assay knows (spend, transactions, vendor share, anomalous weeks)"
    )


_SHARE = ("share", "percentage", "percent", "proportion", "fraction", "portion", "slice", "%")
_AVERAGE = ("average", "avg", "mean", "typical", "per month", "per transaction", "per purchase", "median")


def _check_fit(
    low: str,
    metric: Metric,
    filters: dict[str, list[str]],
    group_by: str | None,
    derive: tuple | None,
    period: str | None = None,
) -> None:
    """Abstain where the metric found cannot be what the question asks: a share or an average asked
    and a total found, or a vendor's share asked of no vendor (it would be 100 %). `derive` is the
    share or monthly average computed from the totals, when the question asks for one."""
    growth = _has(low, _GROWTH)
    if derive and derive[0] == "share":
        return
    if (_has(low, _SHARE) or "%" in low) and metric.unit != "%" and not growth:
        raise Abstain("the question asks for a share; the semantic layer has shares only of vendors' spend")
    if metric.name == "vendor_share_pct" and "vendor" not in filters and group_by != "vendor":
        raise Abstain("a share of spend needs a vendor; the semantic layer has shares only of vendors' spend")
    averages = ("avg_weekly_spend_eur", "avg_transaction_eur")
    if _has(low, _AVERAGE) and metric.name not in averages and not derive:
        raise Abstain(
            "the question asks for an average; the semantic layer has averages only of weekly spend"
        )
    named = {_MONTHS[w] for w in re.findall(r"[a-z]+", low) if w in _MONTHS and w != "may"}
    ranged = period is not None and " to " in period  # "Jan-Mar 2025", "since October 2025"
    if len(named) > 1 and not growth and not ranged and not re.search(r"\b(?:between|from)\b", low):
        raise Abstain("the question names several months; assay reads one period or one range")
    quarters = set(re.findall(r"\bq([1-4])\b", low))
    if len(quarters) > 1 and not growth:
        raise Abstain("the question names several quarters; assay reads one period")


def _group_by(low: str, metric: Metric) -> tuple[str | None, str, int | None]:
    """(group_by, order, limit) for ranking questions ("which vendor ...", "peak month")."""
    ranking = _has(low, _RANK_DESC) or _has(low, _RANK_ASC)
    if not ranking:
        return None, "desc", None
    order = "asc" if _has(low, _RANK_ASC) else "desc"
    limit = 1
    if m := re.search(r"\btop\s+(\d{1,2}|three|five|ten)\b", low):
        limit = {"three": 3, "five": 5, "ten": 10}.get(m[1]) or int(m[1])
    for dim, words in _DIMENSION_WORDS.items():
        if _has(low, words) and (dim in metric.dimensions or (dim in ("month", "quarter", "year", "week"))):
            if dim == "week" and metric.time_dimension is None:
                continue
            return dim, order, limit
    return None, order, None


# -- the whole path


def _dimension_values(session: ReaderSession, layer: dict[str, Metric]) -> dict[str, list[str]]:
    seen: dict[str, sql.Composed] = {}
    for metric in layer.values():
        for dim in metric.dimensions.values():
            if dim.name not in seen and dim.name != "is_anomaly":
                seen[dim.name] = sql.SQL("select distinct {}::text from {}").format(
                    sql.SQL(dim.expr), sql.Identifier(metric.schema, metric.table)
                )
    return {name: [r[0] for r in session.query(q, cap=10_000).rows] for name, q in seen.items()}


ACTIVITIES = (
    "select source from gold.process_dfg where source is not null"
    " union select target from gold.process_dfg where target is not null order by 1"
)


class Asker:
    """Answers questions on one reader session; dimension values and the data's last day are read once."""

    def __init__(self, session: ReaderSession, layer: dict[str, Metric] | None = None):
        self.session = session
        self.layer = layer or semantic_layer()
        self.values = _dimension_values(session, self.layer)
        latest = session.query("select max(month) from gold.monthly_summary").rows[0][0]
        self.today = latest or dt.date.today()
        # the DFG's few edges name every activity of the flow; the event log would be a full scan
        # of every event on each question
        self.activities = (
            [r[0] for r in session.query(ACTIVITIES).rows] if session.table_exists("gold.process_dfg") else []
        )

    def plan(self, question: str) -> tuple[StructuredQuery, str | None, tuple | None]:
        """The structured query for a question, the period's label and what is derived from its value
        (("share", base filters): the value over the same total with only the base's filters;
        ("per_month", months): the value over the period's months); Abstain when none fits."""
        low = question.lower()
        if _has(low, _OUT_OF_SCOPE):
            raise Abstain(
                "assay holds spend, transactions, vendors and anomalies; the question asks for something else"
            )
        named = match_values(question, self.values)
        if names := unexplained_names(question, named):
            raise Abstain(f"{', '.join(names)}: no category, department or vendor of that name in gold")
        if names := unknown_objects(question, named, self.values):
            raise Abstain(f"{', '.join(names)}: no category, department or vendor of that name in gold")
        filters = self._without_excluded(question, named)
        name = choose_metric(question, self.layer, filters)
        metric = self.layer[name]
        group_by, order, limit = _group_by(low, metric)
        if compared := _compared(low, filters):
            # "Sales vs Marketing: who spent more": the named values ranked against each other
            start, end, period = parse_period(question, self.today)
            if set(filters) - set(metric.dimensions) or (start and metric.time_dimension is None):
                raise Abstain(f"{metric.label} cannot be cut so in the semantic layer")
            order = "asc" if _has(low, _COMPARATIVE_ASC) else "desc"
            return StructuredQuery(name, compared, filters, start, end, order, 1), period, None
        if group_by in filters:
            filters.pop(group_by)  # "which vendor" ranks vendors; a matched name in it is not a filter
        unsupported = sorted(set(filters) - set(metric.dimensions))
        if unsupported:
            raise Abstain(f"{metric.label} cannot be cut by {', '.join(unsupported)} in the semantic layer")
        start, end, period = parse_period(question, self.today)
        if start and metric.time_dimension is None:
            raise Abstain(f"{metric.label} is an all-time figure in gold; it is not kept per period")
        derive = self._derivation(question, name, filters, start, end, group_by)
        _check_fit(low, metric, filters, group_by, derive, period)
        if _has(low, _GROWTH):
            quarters = sorted({int(q) for q in re.findall(r"\bq([1-4])\b", low)})
            if len(quarters) > 1:
                if len(quarters) != 2 or quarters[1] - quarters[0] != 1 or start is None:
                    raise Abstain("growth compares one quarter with the one just before it")
                start = dt.date(start.year, 3 * quarters[1] - 2, 1)
                end, period = _month_range(start.year, 3 * quarters[1])[1], f"Q{quarters[1]} {start.year}"
            return (*self._growth(StructuredQuery(name, None, filters, start, end), period, group_by), None)
        query = StructuredQuery(name, group_by, filters, start, end, order, limit)
        return query, period, derive

    def _without_excluded(self, question: str, filters: dict[str, list[str]]) -> dict[str, list[str]]:
        """ "excluding travel", "except Sales", "other than Fjord Hotels": the values named after the
        word are left out (the filter keeps every other value of their dimension); an exclusion that
        names no value abstains rather than count what it would leave out."""
        m = re.search(
            r"\b(?:excluding|exclude|excludes|except|other than|apart from|not counting|"
            r"leaving out|without|ex\.|besides|minus)\s+(.*)",
            question,
            flags=re.IGNORECASE,
        )
        if not m:
            return filters
        excluded = match_values(m[1], self.values)
        if not excluded:
            raise Abstain(f"{m[0].strip()!r}: assay found nothing it holds to leave out")
        kept = {dim: vals for dim, vals in filters.items() if dim not in excluded}
        for dim, vals in excluded.items():
            left = {v.lower() for v in vals}
            named = [v for v in filters.get(dim, []) if v.lower() not in left]  # "A and B except B"
            kept[dim] = named or [v for v in self.values[dim] if v and v.lower() not in left]
        return kept

    def _derivation(self, question: str, name: str, filters, start, end, group_by) -> tuple | None:
        """A share of a total (of a category, a department) or an average per month, from totals.

        Share: the values named inside "share of ..." (up to its verb or preposition) are the base,
        the rest the part ("What share of Sales' spending went to meals": meals within Sales). A
        monthly average divides by the months of the period, or of the data when none is named."""
        low = question.lower()
        if group_by is not None or _has(low, _GROWTH) or name not in ("total_spend_eur", "transaction_count"):
            return None
        if (_has(low, _SHARE) or "%" in low) and name == "total_spend_eur":
            segment = re.search(
                r"(?:share|percentage|percent|proportion|fraction|portion|slice|%)\s+of\s+(.*?)"
                r"(?:\b(?:went|go|goes|gone|was|were|is|are|on|to|for|came|come|did|does|do|spent|by|from)\b|$)",
                low,
            )
            named = match_values(segment[1], self.values) if segment else {}
            base = {d: v for d, v in filters.items() if set(v) <= set(named.get(d, ()))}
            if not filters or base == filters:
                raise Abstain("a share needs a part of the total (a category, a department) to divide")
            return ("share", base)
        if _has(low, _MONTHLY) and name in ("total_spend_eur", "transaction_count"):
            if start is None:
                first = self.session.query("select min(month) from gold.monthly_summary").rows[0][0]
                start, end = first, _month_range(self.today.year, self.today.month)[1]
            return ("per_month", (end.year - start.year) * 12 + end.month - start.month)
        return None

    def _growth(self, query: StructuredQuery, period: str | None, group_by: str | None):
        """Growth against the period before: one query grouped by the period's grain over both."""
        months = (
            query.start and (query.end.year - query.start.year) * 12 + query.end.month - query.start.month
        )
        if months == 2 and period and " to " in period:  # "grew from May to June": June against May
            query.start, months = (query.end - dt.timedelta(days=1)).replace(day=1), 1
            period = f"{calendar.month_name[query.start.month]} {query.start.year}"
        grain = {1: "month", 3: "quarter", 12: "year"}.get(months or 0)
        if grain is None or group_by is not None or self.layer[query.metric].unit == "%":
            raise Abstain(
                "growth needs one month, quarter or year to compare with the one before, and a total"
            )
        first = query.start.year * 12 + query.start.month - 1 - months
        query.start, query.group_by, query.limit = dt.date(first // 12, first % 12 + 1, 1), grain, 2
        return query, period

    def _growth_answer(self, question: str, metric: Metric, query: StructuredQuery, period, rows) -> Answer:
        rows = sorted(rows)
        if len(rows) != 2 or not rows[0][1]:
            raise Abstain("the period before has no spend to compare with")
        (before, old), (now, new) = rows
        growth = round(100 * (Decimal(new) - Decimal(old)) / Decimal(old), 2)
        scope = "; ".join(f"{dim} {', '.join(vals)}" for dim, vals in sorted(query.filters.items()))
        text = (
            f"{metric.label}{f' ({scope})' if scope else ''}: {_number(new, metric.unit)} in {now} against"
            f" {_number(old, metric.unit)} in {before}, a change of {growth:+.2f} %."
        )
        return Answer(question, text, False, query.as_dict() | {"derived": "growth_pct"}, derived=growth)

    def _largest_expenses(self, question: str) -> Answer:
        """ "The largest expense in March 2025": single transactions ranked by amount (platinum's
        transaction documents, as search reads them), each with its landing file and line."""
        low = question.lower()
        filters = match_values(question, {k: v for k, v in self.values.items() if k in _TXN_FILTERS})
        if names := unexplained_names(question, filters):
            raise Abstain(f"{', '.join(names)}: no category or department of that name in platinum")
        start, end, period = parse_period(question, self.today)
        limit = 1
        if m := re.search(r"\btop\s+(\d{1,2}|three|five|ten)\b", low):
            limit = min({"three": 3, "five": 5, "ten": 10}.get(m[1]) or int(m[1]), self.session.row_cap)
        conditions, params = [sql.SQL("doc_type = 'transaction'")], []
        for dim, values in sorted(filters.items()):
            conditions.append(sql.SQL("{} = any(%s)").format(sql.Identifier(_TXN_FILTERS[dim])))
            params.append(values)
        if start:
            conditions.append(sql.SQL("doc_date >= %s and doc_date < %s"))
            params += [start, end]
        statement = sql.SQL(
            "select source_id as transaction_id, doc_date as transaction_date, title, category,"
            " department, amount_eur from platinum.documents where {} order by amount_eur desc,"
            " source_id limit {}"
        ).format(sql.SQL(" and ").join(conditions), sql.Literal(limit))
        result = self.session.query(statement, params)
        query = {"kind": "largest_expenses", "filters": filters, "period": period, "limit": limit}
        scope = [f"{dim} {', '.join(vals)}" for dim, vals in sorted(filters.items())] + [period or ""]
        where = f" ({'; '.join(x for x in scope if x)})" if any(scope) else ""
        if not result.rows:
            answer = Answer(question, f"No data: no expenses{where} in platinum.", True, query)
        else:
            ranked = "; ".join(f"{r[2]} (transaction {r[0]})" for r in result.rows)
            answer = Answer(
                question, f"Largest expense{'s' if limit > 1 else ''}{where}: {ranked}.", False, query
            )
        found = transaction_sources(self.session, [r[0] for r in result.rows])
        answer.sql, answer.params = statement.as_string(self.session.conn), params
        answer.columns, answer.rows = result.columns, [list(r) for r in result.rows]
        answer.provenance = ["platinum.documents", "agents.transaction_sources"]
        answer.sources = [
            {"transaction_id": r[0], "file": src.source_file, "line": src.line_number}
            for r in result.rows
            if (src := found.get(r[0]))
        ]
        return answer

    def _process(self, question: str, planned: ProcessQuery) -> Answer:
        """A process question, from one fixed statement over a `gold.process_*` table."""
        result = self.session.query(sql.SQL(planned.statement), planned.params)  # a constant statement
        row = result.rows[0] if result.rows else None
        if row is None or row[0] is None:
            return Answer(question, f"No data: {planned.label.lower()} has no cases in gold.", True)
        if planned.kind == "path":
            text = f"{planned.label}: {row[0]} ({row[1]} cases, {Decimal(row[2]) * 100:.2f} % of all)."
        else:
            text = f"{planned.label}: {_number(row[0], planned.unit)} (over {row[-1]:,} cases)."
            if planned.kind == "cases_with":
                text = f"{planned.label}: {_number(row[0], planned.unit)} of {row[-1]:,} cases."
        answer = Answer(
            question,
            text,
            False,
            {"kind": f"process_{planned.kind}", "activities": planned.activities},
            derived=row[0],
        )
        answer.sql, answer.params, answer.columns = planned.statement, planned.params, result.columns
        answer.rows, answer.provenance = [list(r) for r in result.rows], [planned.relation]
        return answer

    def ask(self, question: str) -> Answer:
        low = question.lower()
        if self.activities and not _has(low, _OUT_OF_SCOPE):
            planned = plan_process(question, self.activities)
            if isinstance(planned, str):
                return Answer(question, f"I cannot answer this: {planned}.", True)
            if planned is not None:
                try:
                    return self._process(question, planned)
                except ToolError as exc:
                    return Answer(question, f"I cannot answer this: {exc}.", True)
        counting = _has(low, ("how many", "number of", "count"))
        single = _LARGEST_EXPENSE.search(low) and not counting and not _has(low, _AVERAGE)
        if single and not _has(low, _OUT_OF_SCOPE):
            try:
                return self._largest_expenses(question)
            except (Abstain, ToolError) as exc:
                return Answer(question, f"I cannot answer this: {exc}.", True)
        try:
            query, period, derive = self.plan(question)
            statement, params = compile_query(query, self.layer, cap=self.session.row_cap)
            result = self.session.query(statement, params)
            if derive:
                return self._derived(question, query, period, derive, statement, params, result)
        except (Abstain, ToolError) as exc:
            return Answer(question, f"I cannot answer this: {exc}.", True)
        metric = self.layer[query.metric]
        sql_text = statement.as_string(self.session.conn)
        rows = result.rows
        if _has(question.lower(), _GROWTH) and not _compared(question.lower(), query.filters):
            rows = sorted(rows)  # the two periods in time order
            try:
                answer = self._growth_answer(question, metric, query, period, result.rows)
            except Abstain as exc:
                return Answer(question, f"I cannot answer this: {exc}.", True)
        else:
            text = render(metric, query, period, result.columns, result.rows)
            empty = not result.rows or result.rows[0][-1] is None and query.group_by is None
            answer = Answer(question, text, empty, query.as_dict())
        answer.sql, answer.params, answer.columns = sql_text, params, result.columns
        answer.rows, answer.provenance = [list(r) for r in rows], [metric.relation]
        return answer

    def _derived(self, question, query, period, derive, statement, params, result) -> Answer:
        """A share of a total or a monthly average, computed from the compiled totals."""
        metric = self.layer[query.metric]
        value = result.rows[0][0] if result.rows else None
        scope = "; ".join(
            [f"{dim} {', '.join(vals)}" for dim, vals in sorted(query.filters.items())] + [period or ""]
        ).strip("; ")
        sqls, rows = [statement.as_string(self.session.conn)], [list(r) for r in result.rows]
        if value is None:
            raise Abstain(f"{metric.label} ({scope}) has no rows in gold")
        if derive[0] == "share":
            base_query = StructuredQuery(query.metric, None, derive[1], query.start, query.end)
            base_sql, base_params = compile_query(base_query, self.layer, cap=self.session.row_cap)
            base = self.session.query(base_sql, base_params).rows[0][0]
            if not base:
                raise Abstain("the total to divide by has no spend")
            derived = round(100 * Decimal(value) / Decimal(base), 2)
            within = "; ".join(f"{dim} {', '.join(v)}" for dim, v in sorted(derive[1].items())) or "all spend"
            text = (
                f"Share of spend ({scope}): {derived:.2f} %, {_number(value, metric.unit)} of"
                f" {_number(base, metric.unit)} ({within}{f'; {period}' if period else ''})."
            )
            sqls.append(base_sql.as_string(self.session.conn))
            params = [params, base_params]
            rows.append([base])
            kind = "share_pct"
        else:
            months = derive[1]
            derived = round(Decimal(value) / months, 2)
            per = f"{derived:,.2f} EUR" if metric.unit == "EUR" else f"{derived:,.2f} {metric.unit}"
            text = (
                f"{metric.label} per month{f' ({scope})' if scope else ''}: {per},"
                f" {_number(value, metric.unit)} over {months} months."
            )
            kind = "per_month"
        answer = Answer(question, text, False, query.as_dict() | {"derived": kind}, derived=derived)
        answer.sql, answer.params, answer.columns = ";\n".join(sqls), params, ["value"]
        answer.rows, answer.provenance = rows, [metric.relation]
        return answer


def _number(value: Any, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "EUR":
        return f"{Decimal(value):,.2f} EUR"
    if unit == "%":
        return f"{Decimal(value):.2f} %"
    return f"{value:,} {unit}".strip()


def render(metric: Metric, query: StructuredQuery, period: str | None, columns: list[str], rows: list) -> str:
    """The answer sentence, from the result only: the value (or the top entity and its value), the
    metric, the filters and the period."""
    scope = [f"{dim} {', '.join(vals)}" for dim, vals in sorted(query.filters.items())]
    if period:
        scope.append(period)
    where = f" ({'; '.join(scope)})" if scope else ""
    if not rows or rows[0][-1] is None:
        return f"No data: {metric.label}{where} has no rows in gold."
    if query.group_by is None:
        return f"{metric.label}{where}: {_number(rows[0][0], metric.unit)}."
    ranked = "; ".join(f"{row[0]}: {_number(row[1], metric.unit)}" for row in rows)
    word = "Lowest" if query.order == "asc" else "Highest"
    return f"{word} {query.group_by} by {metric.label.lower()}{where}: {ranked}."
