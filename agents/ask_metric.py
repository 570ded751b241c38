"""Which metric a question asks for and the shape of its query (Ask assay): the metric from the
semantic layer's synonyms, a ranking's dimension and order, an exclusion, a share or monthly average
derived from totals, growth against the period before, and the checks that a metric found fits."""

from __future__ import annotations

import calendar
import datetime as dt
import re

from rapidfuzz import fuzz, process

from assay.agents.ask_periods import MONTHS
from assay.agents.ask_values import MATCH_SCORE, match_values
from assay.agents.ask_words import (
    ANOMALY,
    AVERAGE,
    BY_COUNT,
    COUNTING,
    DIMENSION_WORDS,
    EXCLUSION,
    GROWTH,
    MEAN,
    MONTHLY,
    MONTHLY_BARE,
    OFTEN,
    PER_TRANSACTION,
    RANK_ASC,
    RANK_DESC,
    SELLS,
    SHARE,
    SPEND_WORDS,
    TRANSACTION_NOUNS,
    VENDOR_ASKED,
    Abstain,
    has,
    top_n,
    weekly,
)
from assay.agents.tools.semantic import GRAINS, Metric, StructuredQuery

# the one-word transaction nouns long enough to have a near spelling worth reading
_NEAR_NOUNS = [n for n in TRANSACTION_NOUNS if " " not in n and len(n) >= 6]
# the transaction nouns that say a count, not an amount ("expenses" may be either)
_COUNTED = tuple(n for n in TRANSACTION_NOUNS if "expense" not in n)


def _transaction_noun(m: re.Match) -> str:
    """A near spelling of a transaction noun is that noun ("transactons"); its other number is not
    ("expense" is no transaction noun, "expenses" is)."""
    hit = process.extractOne(m[0], _NEAR_NOUNS, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
    return hit[0] if hit and hit[0].removesuffix("s") != m[0].removesuffix("s") else m[0]


def choose_metric(question: str, layer: dict[str, Metric], filters: dict[str, list[str]]) -> str:
    """The metric a question asks for, from the metrics' synonyms; Abstain when none fits."""
    low = re.sub(r"[a-z]{6,}", _transaction_noun, question.lower())
    vendor = "vendor" in filters or has(low, DIMENSION_WORDS["vendor"])
    scores = {}
    for name, metric in layer.items():
        hits = [s for s in metric.synonyms if has(low, (s.lower(),))]
        scores[name] = sum(len(s.split()) for s in hits)
    if has(low, SHARE) and vendor:
        return "vendor_share_pct"
    if has(low, ANOMALY):
        return "anomaly_weeks"
    if (week := weekly(low)) is not None:
        # the layer's one weekly figure is the average weekly spend
        if not week or has(low, COUNTING) or has(low, _COUNTED):
            raise Abstain("the semantic layer has one weekly figure: the average weekly spend")
        return "avg_weekly_spend_eur"
    how_many = has(low, COUNTING)
    if not how_many and (
        has(low, PER_TRANSACTION)
        or has(low, MEAN)
        and has(low, (*TRANSACTION_NOUNS, "ticket size"))
        and not has(low, MONTHLY)
    ):
        return "avg_transaction_eur"
    counting = how_many or has(low, (*BY_COUNT, *OFTEN))
    if counting and has(low, TRANSACTION_NOUNS):
        return "vendor_transaction_count" if vendor else "transaction_count"
    if vendor and has(low, OFTEN):
        return "vendor_transaction_count"
    if scores.get("total_spend_eur") or has(low, SPEND_WORDS):
        return "vendor_spend_eur" if vendor else "total_spend_eur"
    best = max(scores, key=scores.get) if scores else None
    if best and scores[best] > 0:
        return best
    if filters and has(low, GROWTH) and not has(low, SHARE):
        # "growth in travel for October 2025": a category's (department's, vendor's) growth is of spend
        return "vendor_spend_eur" if vendor else "total_spend_eur"
    raise Abstain(
        "the question names no metric assay knows (spend, transactions, vendor share, anomalous weeks)"
    )


def check_fit(
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
    growth = has(low, GROWTH)
    if derive and derive[0] == "share":
        return
    if (has(low, SHARE) or "%" in low) and metric.unit != "%" and not growth:
        raise Abstain("the question asks for a share; the semantic layer has shares only of vendors' spend")
    if metric.name == "vendor_share_pct" and "vendor" not in filters and group_by != "vendor":
        raise Abstain("a share of spend needs a vendor; the semantic layer has shares only of vendors' spend")
    averages = ("avg_weekly_spend_eur", "avg_transaction_eur")
    if has(low, AVERAGE) and metric.name not in averages and not derive:
        raise Abstain(
            "the question asks for an average; the semantic layer has averages only of weekly spend"
        )
    within = metric.average_within
    if within and group_by != within and len(filters.get(within, ())) != 1:
        raise Abstain(f"{metric.label} is kept per {within}: ask for one {within}'s")
    named = {MONTHS[w] for w in re.findall(r"[a-z]+", low) if w in MONTHS and w != "may"}
    ranged = period is not None and " to " in period  # "Jan-Mar 2025", "since October 2025"
    if len(named) > 1 and not growth and not ranged and not re.search(r"\b(?:between|from)\b", low):
        raise Abstain("the question names several months; assay reads one period or one range")
    quarters = set(re.findall(r"\bq([1-4])\b", low))
    if len(quarters) > 1 and not growth:
        raise Abstain("the question names several quarters; assay reads one period")


def ranking(low: str, metric: Metric) -> tuple[str | None, str, int | None]:
    """(group_by, order, limit) for ranking questions ("which vendor ...", "peak month"). A breakdown
    asked without a ranking ("spend by category in 2025") abstains: one figure is no breakdown, and
    the total it would state is not what was asked."""
    if not has(low, RANK_DESC) and not has(low, RANK_ASC):
        for dim, words in DIMENSION_WORDS.items():
            if re.search(rf"\bby\s+(?:the\s+|each\s+)?(?:{'|'.join(map(re.escape, words))})\b", low):
                plural = "halves" if dim == "half" else words[1]  # "vendors", "categories", ...
                raise Abstain(
                    f"a breakdown by {dim} is a list of figures, not one; ask for the top ones"
                    f" ('the top 5 {plural} by spend') or for one {dim}"
                )
        return None, "desc", None
    order = "asc" if has(low, RANK_ASC) else "desc"
    limit = top[1] if (top := top_n(low)) else 1
    for dim, words in DIMENSION_WORDS.items():
        if has(low, words) and (
            dim in metric.dimensions or (dim in ("month", "quarter", "half", "year", "week"))
        ):
            if dim == "week" and metric.time_dimension is None:
                continue
            return dim, order, limit
    return None, order, None


def without_excluded(
    question: str, filters: dict[str, list[str]], values: dict[str, list[str]]
) -> dict[str, list[str]]:
    """ "excluding travel", "except Sales", "other than Fjord Hotels": the values named after the
    word are left out (the filter keeps every other value of their dimension); an exclusion that
    names no value abstains rather than count what it would leave out."""
    words = "|".join(re.escape(w) for w in EXCLUSION)
    m = re.search(rf"\b(?:{words})\s+(.*)", question, flags=re.IGNORECASE)
    if not m:
        return filters
    excluded = match_values(m[1], values)
    if not excluded:
        raise Abstain(f"{m[0].strip()!r}: assay found nothing it holds to leave out")
    kept = {dim: vals for dim, vals in filters.items() if dim not in excluded}
    for dim, vals in excluded.items():
        left = {v.lower() for v in vals}
        named = [v for v in filters.get(dim, []) if v.lower() not in left]  # "A and B except B"
        kept[dim] = named or [v for v in values[dim] if v and v.lower() not in left]
    return kept


def derivation(question: str, name: str, filters, start, end, group_by, values, data_months) -> tuple | None:
    """A share of a total (of a category, a department) or an average per month, from totals.

    Share: the values named inside "share of ..." (up to its verb or preposition) are the base,
    the rest the part ("What share of Sales' spending went to meals": meals within Sales). A
    monthly average divides by the months of the period, or of the data when none is named."""
    low = question.lower()
    if group_by is not None or has(low, GROWTH):
        return None
    derivable = name in ("total_spend_eur", "transaction_count")
    if derivable and (has(low, SHARE) or "%" in low) and name == "total_spend_eur":
        segment = re.search(
            r"(?:share|percentage|percent|proportion|fraction|portion|slice|%)\s+of\s+(.*?)"
            r"(?:\b(?:went|go|goes|gone|was|were|is|are|on|to|for|came|come|did|does|do|spent|by|from)\b|$)",
            low,
        )
        named = match_values(segment[1], values) if segment else {}
        base = {d: v for d, v in filters.items() if set(v) <= set(named.get(d, ()))}
        if not filters or base == filters:
            raise Abstain("a share needs a part of the total (a category, a department) to divide")
        return ("share", base)
    # "average monthly spend", "spend per month"; a bare "monthly spend" too, as "per month" reads
    # (of one month it is that month's total, nothing to divide)
    per_month = has(low, MONTHLY)
    if per_month and derivable or has(low, MONTHLY_BARE):
        if start is None:
            start, end = data_months()
        months = (end.year - start.year) * 12 + end.month - start.month
        if per_month or months > 1:
            if not derivable:
                raise Abstain(
                    "a figure per month is derived from total spend and transaction counts only;"
                    " ask for one month of it (e.g. March 2025)"
                )
            return ("per_month", months)
    return None


def growth_query(query: StructuredQuery, period: str | None, group_by: str | None, layer: dict[str, Metric]):
    """Growth against the period before: one query grouped by the period's grain over both."""
    months = query.start and (query.end.year - query.start.year) * 12 + query.end.month - query.start.month
    if months == 2 and period and " to " in period:  # "grew from May to June": June against May
        query.start, months = (query.end - dt.timedelta(days=1)).replace(day=1), 1
        period = f"{calendar.month_name[query.start.month]} {query.start.year}"
    grain = {1: "month", 3: "quarter", 12: "year"}.get(months or 0)
    if grain is None or group_by is not None or layer[query.metric].unit == "%":
        raise Abstain("growth needs one month, quarter or year to compare with the one before, and a total")
    first = query.start.year * 12 + query.start.month - 1 - months
    query.start, query.group_by, query.limit = dt.date(first // 12, first % 12 + 1, 1), grain, 2
    return query, period


def vendor_list(low: str, filters: dict[str, list[str]]) -> bool:
    """ "Which vendors sell flights", "who do we buy office supplies from", "which suppliers provide
    telecom": the vendors with spend in the category named, not a figure. A vendor named, a count or
    a sum asked ("how much did we buy from ...") is a figure."""
    if set(filters) != {"category"} or has(low, (*COUNTING, *SPEND_WORDS, "how much")):
        return False
    for value in filters["category"]:  # "office supplies" names the category, it is no verb
        low = low.replace(value.replace("_", " "), " ")
    return has(low, SELLS) and has(low, (*DIMENSION_WORDS["vendor"], *VENDOR_ASKED))


def for_period(
    name: str, layer: dict[str, Metric], filters: dict[str, list[str]], start, group_by: str | None
) -> tuple[str, tuple | None]:
    """(metric, derivation): an all-time metric asked for a period, a time grain or a cut it has not
    is asked of its twin over the period (meta.per_period: gold.vendor_monthly); a vendor's share of
    a period is derived from the twin's totals: the vendor's over all vendors' (with the other
    filters). Without a period or such a cut the all-time metric answers, as before; so it does
    when the question names no vendor and ranks none ("how much did vendor shares grow": not read)."""
    metric = layer[name]
    twin = layer.get(metric.per_period or "")
    outside = set(filters) - set(metric.dimensions)
    vendors = "vendor" in filters or group_by == "vendor"
    if twin is None or not vendors or not (start or outside or group_by in GRAINS):
        return name, None
    if set(filters) - set(twin.dimensions):
        return name, None
    if metric.unit == "%":
        if group_by is not None or "vendor" not in filters:
            raise Abstain("a vendor's share of a period needs one vendor named, not a ranking")
        return twin.name, ("share", {d: v for d, v in filters.items() if d != "vendor"})
    return twin.name, None
