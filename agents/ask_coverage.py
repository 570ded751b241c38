"""Every word of a question accounted for (Ask assay): after planning, each word must have been read
by a step — the period (when one was found), a value matched (or its near spelling), a synonym of
the layer's metrics and dimensions, a dimension's or grain's word, a ranking, comparison, share,
growth, average, total, single-transaction or exclusion cue — or be a function word
(`ask_words.FUNCTION_WORDS`). A content word left over ("excluding" before assay knew exclusions,
"over 1000 EUR", "didn't") would be a condition silently dropped, so the question abstains and the
words are named ("did not understand: excluding").

`COVERAGE` says which unread words abstain: "strict", every one; "conditions", only those
`conditions` finds (a qualifier, a number, a preposition's object)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

from assay.agents.ask_periods import MONTHS, period_word
from assay.agents.ask_values import MATCH_SCORE, spelled_as, value_words
from assay.agents.ask_words import (
    ALTERNATIVES,
    ANOMALY,
    AVERAGE,
    BY_COUNT,
    COMPARATIVE,
    COUNTING,
    DIMENSION_WORDS,
    EXCLUSION,
    FUNCTION_WORDS,
    GROWTH,
    MEAN,
    MONTHLY,
    NUMBER_WORDS,
    OFTEN,
    PER_TRANSACTION,
    QUALIFIERS,
    RANK_ASC,
    RANK_DESC,
    SELLS,
    SHARE,
    SINGLE,
    SPEND_WORDS,
    TOTAL,
    TRANSACTION_NOUNS,
    WEEKLY,
    has,
)

COVERAGE = "conditions"
_TOKEN = re.compile(r"[a-z0-9][a-z0-9&'.-]*")
_CONTRACTION = re.compile(r"'(?:s|ve|re|ll|d|m)$")
# the cue lists every step may read; a phrase of one that stands in the question is read
CUES = (
    ALTERNATIVES, ANOMALY, AVERAGE, BY_COUNT, COMPARATIVE, COUNTING, EXCLUSION, GROWTH, MEAN, MONTHLY, OFTEN,
    PER_TRANSACTION, RANK_ASC, RANK_DESC, SELLS, SHARE, SINGLE, SPEND_WORDS, TOTAL, TRANSACTION_NOUNS, WEEKLY,
    *DIMENSION_WORDS.values(),
)  # fmt: skip
# the one-word nouns a near spelling of which the metric choice reads ("transactons")
_NEAR = [n for n in TRANSACTION_NOUNS if " " not in n and len(n) >= 6]


def words(text: str) -> list[str]:
    """The text's words, lower case, without a possessive, a contraction ("we've": we; not "n't")
    or a trailing dot."""
    return [_CONTRACTION.sub("", t.rstrip(".'")).rstrip("'") for t in _TOKEN.findall(text.lower())]


def cue_words(low: str, phrases: Iterable[str]) -> set[str]:
    """The words of the phrases that stand in the question (as `has` finds them; a one-word phrase
    by a set look-up, which is the same and much faster than a search per phrase)."""
    alone = set(re.findall(r"[a-z0-9]+", low))
    found = set()
    for phrase in phrases:
        phrase = phrase.lower()
        if phrase in alone if phrase.isalnum() else has(low, (phrase,)):
            found.update(words(phrase))
    return found


def _months(period: tuple[dt.date, dt.date | None]) -> set[int] | None:
    """The months of the year a query's range [start, end) touches; None: all of them."""
    start, end = period
    span = None if end is None else (end.year - start.year) * 12 + end.month - start.month
    if span is None or span >= 12:
        return None
    return {(start.month + i - 1) % 12 + 1 for i in range(span)}


def unread_words(
    question: str,
    read: set[str],
    filters: dict[str, list[str]],
    period: tuple[dt.date, dt.date | None] | None,
    extra: Iterable[str] = (),
) -> list[str]:
    """The question's words that no step read, in the order they stand: not a function word, not a
    word of a cue phrase in the question, of `extra` phrases (the metric's synonyms) or of a value
    found (nor its near spelling), not a period's word when the query has a period ([start, end)),
    and a month's name only when that range holds the month ("Oct vs Sep 2025" read as September
    against August leaves "oct" unread)."""
    low = question.lower()
    months = _months(period) if period else None
    read = read | cue_words(low, [w for cue in CUES for w in cue]) | cue_words(low, extra)
    named = value_words(filters)

    def read_word(word: str) -> bool:
        if word in FUNCTION_WORDS or word in read or spelled_as(word, named):  # "softwre": software
            return True
        if period and period_word(word):
            return months is None or word not in MONTHS or MONTHS[word] in months
        # "transactons"
        hit = len(word) >= 4 and process.extractOne(word, _NEAR, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
        return bool(hit)

    unread: list[str] = []
    for word in words(question):
        # a hyphenated word is read whole ("2025-03", a value's) or part by part ("month-on-month")
        parts = [word] if read_word(word) or "-" not in word else [p for p in word.split("-") if p]
        unread += [p for p in parts if not read_word(p) and p not in unread]
    return unread


# the prepositions a condition's object follows ("went on furniture", "bought from hanse")
_PREPOSITIONS = {"on", "for", "to", "from", "with", "at", "in", "by", "of"}


def conditions(question: str, unread: list[str]) -> list[str]:
    """The unread words that may put a condition on the answer (the softer rule): a qualifier
    ("only", "before", "per", a negation such as "didn't"), a number (in digits or words: "six"), a
    month's name, or a word right
    after a preposition or an exclusion ("went on furniture"); chatter and verbs ("hey, quick one",
    "booked") are let be."""
    tokens = words(question)
    heads = _PREPOSITIONS | {w for phrase in EXCLUSION for w in words(phrase)}  # "excluding refunds"
    after = {w for p, w in zip(tokens, tokens[1:], strict=False) if p in heads}
    return [
        w
        for w in unread
        if w in QUALIFIERS
        or w.endswith("n't")
        or any(c.isdigit() for c in w)
        or w in NUMBER_WORDS
        or w in MONTHS
        or w in after
    ]
