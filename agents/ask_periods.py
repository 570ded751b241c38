"""The period a question names (Ask assay): months, quarters, half-years, ranges, years and the
relative periods ("last month", "this year")."""

from __future__ import annotations

import calendar
import datetime as dt
import re

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
    r"20\d{2}(?:-(?:0[1-9]|1[0-2])|-?q[1-4])?|[qh][1-4]|[1-9]|[12]\d|3[01]|\d{1,2}(?:st|nd|rd|th)"
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
    # half-years: "H1 2025", "the second half of 2025"
    half = re.search(r"\bh([12])\s*(?:of\s+)?(20\d{2})\b", low) or re.search(
        r"\b(first|1st|second|2nd) half(?:[- ]year)? (?:of\s+)?(20\d{2})\b", low
    )
    if half:
        number = 1 if half[1] in ("1", "first", "1st") else 2
        year = int(half[2])
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
