"""The period a question names (Ask assay): months, quarters, half-years, ranges, years and the
relative periods ("last month", "this year")."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import NamedTuple

from assay.agents.ask_words import Abstain

MONTHS = (
    {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
    | {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m and m != "May"}
    | {"sept": 9}
)


# The words a period is written in; a question's word is read as part of its period when
# `parse_period` found one (a year, a day number, "Q3", "since", "ytd").
PERIOD_WORDS = frozenset(
    [*MONTHS, "quarter", "quarters", "half", "year", "years", "month", "months", "first", "second", "third"]
    + ["fourth", "final", "last", "previous", "this", "since", "between", "from", "to", "through", "until"]
    + ["till", "and", "of", "date", "ytd", "year-to-date", "whole"]
)
_PERIOD_TOKEN = re.compile(
    r"20\d{2}(?:-(?:0[1-9]|1[0-2])|-?q[1-4])?|[qh][1-4]|[12]h|[1-9]|[12]\d|3[01]|\d{1,2}(?:st|nd|rd|th)"
)


def period_word(word: str) -> bool:
    """A word that can be part of a period: "march", "2025", "q3", "30", "1st", "ytd"."""
    return word in PERIOD_WORDS or bool(_PERIOD_TOKEN.fullmatch(word))


def month_range(year: int, month: int) -> tuple[dt.date, dt.date]:
    end = dt.date(year + month // 12, month % 12 + 1, 1)
    return dt.date(year, month, 1), end


def parse_period(text: str, today: dt.date) -> tuple[dt.date | None, dt.date | None, str | None]:
    """(start, end, label) of the period a question names; (None, None, None) when it names none.

    Relative periods count from the calendar: `today` is the day the question is asked, so on
    2026-12-04 "last month" is November 2026, "this month" December 2026, "last year" 2025 ("Q3 last
    year": Q3 2025), "this year" / "year to date" / "ytd" 2026, and "since October 2025" runs to
    December 2026, whatever months gold holds (`within_data` says whether it holds them)."""
    # "last year" / "this year" name a year: "Q3 last year", "the second half of last year"
    low = re.sub(r"\blast year\b", str(today.year - 1), text.lower())
    low = re.sub(r"\bthis year\b", str(today.year), low)
    if m := re.search(r"\b(20\d{2})-(0[1-9]|1[0-2])\b", low):
        year, month = int(m[1]), int(m[2])
        return (*month_range(year, month), f"{calendar.month_name[month]} {year}")
    month_names = "|".join(sorted(MONTHS, key=len, reverse=True))
    day = r"(?:(\d{1,2})(?:st|nd|rd|th)?\s+)?"  # "1 April": a day before the month
    # a range of months in one year: "between April and June 2025", "from 1 April to 30 June 2025",
    # "Jan-Mar 2025"
    if m := re.search(
        rf"\b(?:(?:between|from)\s+{day}({month_names})\.?\s+(?:and|to|through|until|till)\s+"
        rf"|{day}({month_names})\.?\s*[-–]\s*){day}({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b",
        low,
    ):
        first_day, first_name = (m[1], m[2]) if m[2] else (m[3], m[4])
        first, last, year = MONTHS[first_name], MONTHS[m[6]], int(m[7])
        if first < last:
            end = month_range(year, last)[1]
            # a range cut inside a month is a period gold does not keep (it holds whole months)
            if first_day not in (None, "1") or m[5] not in (None, str((end - dt.timedelta(days=1)).day)):
                raise Abstain("the period starts or ends inside a month; gold keeps whole months")
            label = f"{calendar.month_name[first]} to {calendar.month_name[last]} {year}"
            return dt.date(year, first, 1), end, label
    # "since October 2025": from that month to this month
    if m := re.search(rf"\bsince\s+({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b", low):
        month, year = MONTHS[m[1]], int(m[2])
        end = month_range(today.year, today.month)[1]
        if dt.date(year, month, 1) < end:
            label = f"{calendar.month_name[month]} {year} to {calendar.month_name[today.month]} {today.year}"
            return dt.date(year, month, 1), end, label
    if re.search(
        rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{month_names})\b|\b(?:{month_names})\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?!\d)",
        low,
    ):
        raise Abstain("the question names a day; gold keeps whole months")
    if m := re.search(rf"\b({month_names})\.?,?\s+(?:of\s+)?(20\d{{2}})\b", low):
        month, year = MONTHS[m[1]], int(m[2])
        return (*month_range(year, month), f"{calendar.month_name[month]} {year}")
    # half-years: "H1 2025", "2H 2025", "the second half of 2025"
    half = re.search(r"\b(?:h([12])|([12])h)\s*(?:of\s+)?(20\d{2})\b", low) or re.search(
        r"\b(first|1st|second|2nd) half(?:[- ]year)? (?:of\s+)?(20\d{2})\b", low
    )
    if half:
        number = 1 if (half[1] or half[2]) in ("1", "first", "1st") else 2
        year = int(half[half.lastindex])
        start = dt.date(year, 6 * number - 5, 1)
        return start, month_range(year, 6 * number)[1], f"H{number} {year}"
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
        return start, month_range(year, 3 * quarter)[1], f"Q{quarter} {year}"
    if re.search(r"\blast month\b|\bprevious month\b", low):
        first = today.replace(day=1)
        start = (first - dt.timedelta(days=1)).replace(day=1)
        return start, first, f"{calendar.month_name[start.month]} {start.year}"
    if re.search(r"\bthis month\b", low):
        start = today.replace(day=1)
        return (*month_range(start.year, start.month), f"{calendar.month_name[start.month]} {start.year}")
    if re.search(r"\byear to date\b|\bytd\b", low):
        return dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1), str(today.year)
    if m := re.search(r"\b(?:in|during|for|of|over)\s+(20\d{2})\b", low) or re.search(r"\b(20\d{2})\b", low):
        year = int(m[1])
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1), str(year)
    return None, None, None


def month_label(month: dt.date) -> str:
    return f"{calendar.month_name[month.month]} {month.year}"


def within_data(
    period: tuple[dt.date | None, dt.date | None, str | None], first: dt.date | None, last: dt.date | None
) -> tuple[dt.date | None, dt.date | None, str | None]:
    """The period cut to the months gold holds (`first` to `last`, the first days of its first and
    latest months); Abstain when it holds none of them: a total of a period outside the data is
    unknown, not 0. A period that reaches past the data ("since October 2025" on 2026-12-04) keeps
    only the months held, and its label says so."""
    start, end, label = period
    if start is None or first is None or last is None:
        return period
    held_end = month_range(last.year, last.month)[1]
    if end <= first or start >= held_end:
        raise Abstain(f"no data for {label}: gold holds {month_label(first)} to {month_label(last)}")
    if start >= first and end <= held_end:
        return period
    start, end = max(start, first), min(end, held_end)
    held = f"{month_label(start)} to {month_label(end - dt.timedelta(days=1))}"
    return start, end, f"{label}, of which gold holds {held}"


class Span(NamedTuple):
    """One named period of a comparison: [start, end), its label ("October 2025") and its key, as a
    query grouped by its grain would show it ("2025-10", "2025-Q3", "2025-H2", "2025")."""

    start: dt.date
    end: dt.date
    label: str
    key: str


_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_OF_YEAR = r"(?:,?\s+(?:of\s+)?(?P<{}>20\d{{2}}))?"
# a period as one side of a comparison, its year optional ("Oct vs Sep 2025": both 2025)
_MENTION = re.compile(
    r"\b(?P<iso_y>20\d{2})-(?P<iso_m>0[1-9]|1[0-2])\b"
    r"|\b(?P<yq_y>20\d{2})\s*-?\s*q(?P<yq>[1-4])\b"
    rf"|\bq(?P<q>[1-4]){_OF_YEAR.format('q_y')}\b"
    rf"|\b(?P<qo>first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter{_OF_YEAR.format('qo_y')}\b"
    rf"|\b(?:h(?P<h>[12])|(?P<hx>[12])h){_OF_YEAR.format('h_y')}\b"
    rf"|\b(?P<ho>first|second|1st|2nd)\s+half(?:[- ]year)?{_OF_YEAR.format('ho_y')}\b"
    rf"|\b(?P<m>{_MONTH_NAMES})\b\.?{_OF_YEAR.format('m_y')}(?![\d-])"
    r"|\b(?P<y>20\d{2})\b(?!-)"
)
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
# what stands between the two sides: "Oct vs Sep", "H2 compared with H1", "Q3 against Q2"; or, after
# "from" / "between", "from Q2 to Q3", "between May and June"
_VERSUS = re.compile(
    r"\s*,?\s*(?:vs\.?|versus|compar(?:e|es|ed|ing)\s+(?:with|to|against)|against|relative\s+to)\s+(?:the\s+)?"
)
_FROM_TO = re.compile(r"\s+(?:to|and|until|through|till)\s+(?:the\s+)?")
_FROM = re.compile(r"\b(?:from|between)\s+(?:the\s+)?$")
# "compare March 2025 with February": the verb before both sides
_WITH = re.compile(r"\s+(?:with|to|against|and)\s+(?:the\s+)?")
_COMPARE = re.compile(r"\bcompar(?:e|ing)\b")


def _mention(m: re.Match) -> tuple[str, int, int | None]:
    """(kind, number within the year, year or None) of a period named in a comparison."""
    year = next(
        (int(m[g]) for g in ("iso_y", "yq_y", "q_y", "qo_y", "h_y", "ho_y", "m_y", "y") if m[g]), None
    )
    if m["iso_m"]:
        return "month", int(m["iso_m"]), year
    if m["yq"] or m["q"] or m["qo"]:
        return "quarter", int(m["yq"] or m["q"] or 0) or _ORDINAL[m["qo"]], year
    if m["h"] or m["hx"] or m["ho"]:
        return "half", int(m["h"] or m["hx"] or 0) or _ORDINAL[m["ho"]], year
    if m["m"]:
        return "month", MONTHS[m["m"]], year
    return "year", 0, year


def _span(kind: str, number: int, year: int) -> Span:
    if kind == "year":
        return Span(dt.date(year, 1, 1), dt.date(year + 1, 1, 1), str(year), str(year))
    months = {"month": 1, "quarter": 3, "half": 6}[kind]
    first = months * (number - 1) + 1
    start, end = dt.date(year, first, 1), month_range(year, first + months - 1)[1]
    if kind == "month":
        return Span(start, end, f"{calendar.month_name[number]} {year}", f"{year}-{number:02d}")
    letter = "Q" if kind == "quarter" else "H"
    return Span(start, end, f"{letter}{number} {year}", f"{year}-{letter}{number}")


def compared_periods(text: str, today: dt.date) -> tuple[Span, Span] | None:
    """(earlier, later): the two periods of one kind a growth question compares, or None when it
    names no such pair. A pair is two months, quarters, halves or years on either side of "vs",
    "versus", "compared with/to", "against", after "from" / "between" joined by "to" / "and", or
    after "compare" joined by "with" / "to" / "and":
    "Oct vs Sep 2025", "H2 2025 compared with H1", "from Q2 to Q3 2025", "between 2024 and 2025". A
    side without its year takes the other side's (or the question's one other year).

    Growth is always of the later period against the earlier one, (later - earlier) / earlier, in
    whichever order they are written: "Oct vs Sep" and "Sep vs Oct" both say how October changed
    from September (a change happens in time; the answer names both periods and their values, so
    the direction is never hidden). Two periods of different lengths, the same period twice, or
    two pairs, abstain. Only a growth question is read so: elsewhere "between April and June" is
    one range."""
    low = re.sub(r"\blast year\b", str(today.year - 1), text.lower())
    low = re.sub(r"\bthis year\b", str(today.year), low)
    mentions = list(_MENTION.finditer(low))
    pairs = [
        (a, b)
        for a, b in zip(mentions, mentions[1:], strict=False)
        if _VERSUS.fullmatch(low[a.end() : b.start()])
        or (_FROM_TO.fullmatch(low[a.end() : b.start()]) and _FROM.search(low[: a.start()]))
        or (_WITH.fullmatch(low[a.end() : b.start()]) and _COMPARE.search(low[: a.start()]))
    ]
    if not pairs:
        return None
    if len(pairs) > 1:
        raise Abstain("the question compares more than two periods; ask for one pair")
    a, b = pairs[0]
    if not _VERSUS.fullmatch(low[a.end() : b.start()]) and (
        _VERSUS.search(low[b.end() :]) or period_before(low) or _YEAR_ON_YEAR.search(low)
    ):
        # "between April and June compared with the previous quarter": a range against another period
        raise Abstain("the question compares a range with another period; name the two periods compared")
    (kind_a, num_a, year_a), (kind_b, num_b, year_b) = (_mention(m) for m in pairs[0])
    if kind_a != kind_b:
        raise Abstain("the periods compared are of different lengths; growth compares like with like")
    if year_a is None and year_b is None:
        inside = {i for m in pairs[0] for i in range(m.start(), m.end())}
        others = {m[0] for m in re.finditer(r"\b20\d{2}\b", low) if m.start() not in inside}
        if len(others) != 1:
            return None
        year_a = year_b = int(others.pop())
    a, b = _span(kind_a, num_a, year_a or year_b), _span(kind_b, num_b, year_b or year_a)
    if a.start == b.start:
        raise Abstain(f"the question compares {a.label} with itself")
    return (a, b) if a.start < b.start else (b, a)


def _whole(start: dt.date, end: dt.date) -> tuple[str, int] | None:
    """(kind, number within the year) when [start, end) is a whole month, quarter, half-year or
    year; None for any other range."""
    months = (end.year - start.year) * 12 + end.month - start.month
    kind = {1: "month", 3: "quarter", 6: "half", 12: "year"}.get(months)
    if kind is None or start.day != 1 or (start.month - 1) % months:
        return None
    return kind, (start.month - 1) // months + 1


def preceding_half(start: dt.date, end: dt.date) -> tuple[Span, Span] | None:
    """(the half-year before, the half-year) when [start, end) is a half-year; else None."""
    whole = _whole(start, end)
    if whole is None or whole[0] != "half":
        return None
    before = _span("half", 2, start.year - 1) if whole[1] == 1 else _span("half", 1, start.year)
    return before, _span(*whole, start.year)


# "year over year", "yoy", "the same quarter last year", "a year earlier": against the year before
_YEAR_ON_YEAR = re.compile(
    r"\byear[- ]?(?:over|on)[- ]?year\b|\byoy\b|\ba year (?:earlier|before|ago)\b"
    r"|\bsame (?:month|quarter|half|half-year|period|time) (?:of |in )?(?:the )?"
    r"(?:last|previous|prior) year\b"
)


def year_on_year(text: str, start: dt.date | None, end: dt.date | None) -> tuple[Span, Span] | None:
    """(the same period a year before, the period) when the question asks for growth year on year
    ("Q3 2025 year over year", "October 2025 vs the same month last year"); None when it does not.
    Abstain when it does and its period is no whole month, quarter, half or year."""
    if not _YEAR_ON_YEAR.search(text.lower()):
        return None
    whole = _whole(start, end) if start and end else None
    if whole is None:
        raise Abstain("year-on-year growth needs one month, quarter, half-year or year")
    return _span(*whole, start.year - 1), _span(*whole, start.year)


# "versus the month before", "compared with the previous quarter", "month over month", "QoQ": growth
# against the period just before, of that grain
_BEFORE = (
    re.compile(r"\b(?:the\s+)?(month|quarter|year)\s+before\b"),
    re.compile(r"\b(?:the\s+)?(?:previous|prior|preceding)\s+(month|quarter|year)\b"),
    re.compile(r"\b(month|quarter)[- ](?:over|on)[- ](?:the\s+)?(?:previous\s+)?\1\b"),
    re.compile(r"\b(q)oq\b"),
)


def period_before(text: str) -> tuple[str, set[str]] | None:
    """(grain, its words) of "the month before" / "the previous quarter" / "month over month" in a
    question: growth against the period before says so, and its grain must be the period's (a
    quarter is no "month before")."""
    low = text.lower()
    found = [m for pattern in _BEFORE for m in pattern.finditer(low)]
    if len(found) != 1:
        return None
    grain = {"q": "quarter"}.get(found[0][1], found[0][1])
    return grain, set(re.split(r"[\s-]+", found[0][0]))


def held_fully(span: Span, first: dt.date | None, last: dt.date | None) -> Span:
    """The span when gold holds all of its months; Abstain when it holds none or only part of them
    (a part of a period against a whole one is no growth)."""
    start, end, label = within_data((span.start, span.end, span.label), first, last)
    if (start, end) != (span.start, span.end):
        raise Abstain(f"gold holds only part of {span.label}: {label.split(', of which gold holds ')[-1]}")
    return span
