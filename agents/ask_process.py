"""Process questions of Ask assay, answered from the process-mining tables (`gold.process_*`).

Six kinds of question, each one fixed SQL statement over one table (identifiers are constants here,
activity names bound parameters):

- the usual path ("the most common sequence of approval steps"): `gold.process_variants`' rank 1;
- a case's duration ("the average case duration", "how long does a claim take", mean or median, in
  hours, or in days when the question asks in days): `gold.process_cases.duration_hours`, first to
  last event;
- the time between two activities ("from submission to payment"): per case that has both, the first
  B after the first A, in hours (or days), over `gold.process_event_log`;
- cases that passed an activity ("how many claims were rejected", "what share of claims end in
  rejection"): distinct cases of `gold.process_event_log` with that activity, or their share in %;
- the number of variants ("how many process variants / different paths / distinct sequences"): the
  rows of `gold.process_variants`, one a distinct activity sequence;
- the bottleneck ("which step is the bottleneck", "the slowest step", "where do cases wait
  longest"): the `activity` row of `gold.process_bottlenecks` ranked first by mean wait
  (`rank_by_mean`: the hours from a case's previous event until the activity), its total beside it.

The process tables are all-time (no period, department or month in them): a variant count or a
bottleneck asked for a period, a department or per month abstains.

Activities are found by their names in the event log: a question word names an activity word when
they share a stem (all but the activity word's last two letters, at least three: "submission" names
Submit, "rejected" Reject, "payment" Pay; "paid" is Pay's one irregular form); a multi-word activity
("Request Changes") is named by all its words, or by a word no one-word activity has ("changes").
A question of this kind that names no activity it needs abstains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from assay.agents.ask_periods import MONTHS
from assay.agents.ask_words import DIMENSION_WORDS, NEGATION, has

_CASE_WORDS = ("case", "cases", "claim", "claims", "process", "approval", "approvals", "expense claim")
_PATH = re.compile(
    r"\b(usual|most common|most frequent|commonest|typical|standard|normal|main|happy)\b.*?"
    r"\b(path|variant|sequence|route|flow|order)\b"
    r"|\b(path|variant|sequence|route)\b.*\bmost\s+(cases|claims)\b"
)
# the whole case, as the ends of a "from ... to ..." duration
_WHOLE_CASE = re.compile(
    r"\b(?:from\s+)?(?:start|beginning)\s+to\s+(?:finish|end)\b|\bend[- ]to[- ]end\b"
    r"|\bfirst\s+(?:\w+\s+)?to\s+(?:its\s+|the\s+)?last\s+(?:step|event|activity|activities)\b"
)
# a duration asked in days ("how many days does a case take"), not in hours
_IN_DAYS = re.compile(r"\b(?:days?|in\s+days)\b")
_DURATION = re.compile(
    r"\b(duration|how long|cycle time|lead time|throughput time|turnaround|time from|time between"
    r"|hours|days)\b"
)
_VARIANTS = re.compile(
    r"\b(how many|number of|count)\b.*\b(variants?|(different|distinct|unique)\s+(\w+\s+)?"
    r"(paths?|sequences?|routes?|flows?))\b"
)
_BOTTLENECK = re.compile(
    r"\bbottlenecks?\b|\bslowest\s+(step|activity|stage|part)\b"
    r"|\bwait(s|ing)?\s+(the\s+)?longest\b|\blongest\s+wait"
)
# a condition the all-time process tables cannot honour: a period, a grouping, a dimension (the
# dimension words are Ask's own, ask_words.DIMENSION_WORDS)
_PERIOD = re.compile(r"\b(20\d{2}|q[1-4]|h[12]|[12]h)\b")
_CONDITION = (
    *(word for words in DIMENSION_WORDS.values() for word in words),
    *("monthly", "weekly", "quarterly", "yearly", "annual", "per", "each", "since", "ytd"),
    *MONTHS,
)
_IRREGULAR = {"paid": "pay"}
_COUNT = ("how many", "number of", "count")
_SHARE = ("share", "percentage", "percent", "proportion", "fraction", "rate", "%")
# "skipped manager approval", "never reached Pay": the cases without the activity named
_WITHOUT = (*NEGATION, "didn't")


@dataclass
class ProcessQuery:
    kind: str  # path | case_duration | between | cases_with | variants | bottleneck
    label: str
    unit: str
    statement: str
    params: list[Any] = field(default_factory=list)
    activities: list[str] = field(default_factory=list)
    relation: str = ""


def _has(low: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", low) for w in words)


def _stem_match(word: str, activity_word: str) -> bool:
    word = _IRREGULAR.get(word, word)
    need = min(len(activity_word), max(3, len(activity_word) - 2))
    return word[:need] == activity_word[:need] and len(word) >= need


def find_activities(text: str, activities: list[str]) -> list[str]:
    """The activities a piece of text names, in the order they appear in it (see the module doc)."""
    words = re.findall(r"[a-z]+", text.lower())
    single = [a for a in activities if len(a.split()) == 1]
    found: list[tuple[int, set[int], str]] = []  # (words of the activity matched, positions, activity)
    for activity in activities:
        parts = activity.lower().split()
        hits = [(i, p) for p in parts for i, w in enumerate(words) if _stem_match(w, p)]
        matched = {p for _, p in hits}
        if len(parts) > 1 and matched != set(parts):
            # a partial multi-word name counts only through a word no one-word activity has
            hits = [(i, p) for i, p in hits if not any(_stem_match(words[i], a.lower()) for a in single)]
        if hits:
            found.append((len({p for _, p in hits}), {i for i, _ in hits}, activity))
    # the activities naming the most of their words claim their question words first
    claimed: set[int] = set()
    named: list[tuple[int, str]] = []
    for _, positions, activity in sorted(found, key=lambda f: -f[0]):
        if not positions & claimed:
            claimed |= positions
            named.append((min(positions), activity))
    return [activity for _, activity in sorted(named)]


def is_process_question(low: str) -> bool:
    return (
        _has(low, _CASE_WORDS)
        or bool(_BOTTLENECK.search(low))
        or bool(_PATH.search(low) and _has(low, ("step", "steps", "activities")))
    )


def plan_process(question: str, activities: list[str]) -> ProcessQuery | str | None:
    """The process query a question asks for; a reason to abstain (str) when it is a process question
    that none of the six kinds answers; None when it is not a process question. (A variant count or a
    bottleneck that names a department, category or vendor is the caller's to refuse: it knows them.)"""
    low = question.lower()
    between = re.search(r"\b(?:from|between)\s+(.+?)\s+(?:to|and|until|till)\s+(.+)", low)
    ends = [find_activities(part, activities) for part in between.groups()] if between else []
    two = len(ends) == 2 and all(len(e) == 1 for e in ends) and ends[0] != ends[1]
    if not (is_process_question(low) or (two and _DURATION.search(low))):
        return None
    variants, bottleneck = _VARIANTS.search(low), _BOTTLENECK.search(low)
    if (variants or bottleneck) and (_PERIOD.search(low) or has(low, _CONDITION)):
        return "gold's process tables are all-time: no period, department or per-month split of them"
    if variants:
        return ProcessQuery(
            "variants",
            "Process variants (distinct activity sequences)",
            "variants",
            "select count(*) as value, sum(cases) as cases from gold.process_variants",
            relation="gold.process_variants",
        )
    if bottleneck:
        return ProcessQuery(
            "bottleneck",
            "Bottleneck (the longest mean wait before an activity)",
            "hours",
            "select target as activity, round(mean_hours::numeric, 2) as mean_hours, occurrences,"
            " round(total_hours::numeric, 2) as total_hours, rank_by_total from gold.process_bottlenecks"
            " where kind = 'activity' order by rank_by_mean limit 1",
            relation="gold.process_bottlenecks",
        )
    if _PATH.search(low):
        return ProcessQuery(
            "path",
            "Most common path",
            "",
            "select variant, cases, round(case_share::numeric, 4) as case_share"
            " from gold.process_variants order by variant_rank limit 1",
            relation="gold.process_variants",
        )
    median = _has(low, ("median",))
    aggregate = "percentile_cont(0.5) within group (order by {})" if median else "avg({})"
    days = bool(_IN_DAYS.search(low)) and not _has(low, ("hours", "hour"))
    unit, per = ("days", 24) if days else ("hours", 1)
    if between and _DURATION.search(low) and not _WHOLE_CASE.search(low):
        if not two:
            return "the question names no two activities of the event log to measure between"
        first, last = ends
        hours = f"extract(epoch from (b - a)) / {3600 * per}"
        return ProcessQuery(
            "between",
            f"{'Median' if median else 'Average'} time from {first[0]} to {last[0]}",
            unit,
            "select round((" + aggregate.format(hours) + ")::numeric, 2) as value, count(*) as cases from"
            " (select case_id, min(event_ts) filter (where activity = %s) as a,"
            " min(event_ts) filter (where activity = %s) as b"
            " from gold.process_event_log group by case_id) as t where a is not null and b >= a",
            [first[0], last[0]],
            [first[0], last[0]],
            "gold.process_event_log",
        )
    if _DURATION.search(low) or _has(low, ("long", "time")):
        if not _has(low, ("average", "avg", "mean", "median", "typical", "how long", "on average")):
            return "a case duration is answered as its mean or median; ask for one"
        return ProcessQuery(
            "case_duration",
            f"{'Median' if median else 'Average'} case duration",
            unit,
            "select round((" + aggregate.format(f"duration_hours / {per}") + ")::numeric, 2) as value,"
            " count(*) as cases from gold.process_cases",
            relation="gold.process_cases",
        )
    named = find_activities(low, activities)
    counting, share = _has(low, _COUNT), _has(low, _SHARE)
    if (counting or share) and len(named) == 1:
        having = (
            "select count(distinct case_id) filter (where activity = %s) as cases_with,"
            " count(distinct case_id) as cases from gold.process_event_log"
        )
        # the cases without it are the rest ("how many claims skipped manager approval")
        without = _has(low, _WITHOUT)
        counted, word = ("cases - cases_with", "without") if without else ("cases_with", "with")
        if share:
            statement = (
                f"select round(100.0 * ({counted}) / nullif(cases, 0), 2) as value, {counted} as counted,"
                " cases from (" + having + ") as t"
            )
            label, unit = f"Share of cases {word} {named[0]}", "%"
        else:
            statement = f"select {counted} as value, cases from (" + having + ") as t"
            label, unit = f"Cases {word} {named[0]}", "cases"
        return ProcessQuery("cases_with", label, unit, statement, [named[0]], named, "gold.process_event_log")
    return None  # not one of the six kinds: the metric path decides (and abstains)
