"""The literal values a question names (Ask assay): categories, departments and vendors matched
against the dimensions' actual values with rapidfuzz, and the names and objects that match none."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

from assay.agents.ask_periods import MONTHS
from assay.agents.ask_words import (
    ALTERNATIVES,
    COMPARATIVE,
    DIMENSION_WORDS,
    FUNCTION_WORDS,
    OUT_OF_SCOPE,
    QUALIFIERS,
    RANK_ASC,
    RANK_DESC,
    TOTAL,
    TRANSACTION_NOUNS,
    Abstain,
    has,
)
from assay.agents.tools.semantic import Dimension

MATCH_SCORE = 90  # rapidfuzz ratio (0-100) a phrase must reach to name a dimension value
NEAR_SCORE = 80  # a second value this near a phrase makes its near spelling a guess: no match
_WORD = re.compile(r"[a-z0-9][a-z0-9&'.-]*")


def compared(low: str, filters: dict[str, list[str]]) -> str | None:
    """The dimension whose values a question compares ("Sales vs Marketing: who spent more"): several
    values of one dimension, asked as alternatives, with a comparative word."""
    several = [dim for dim, vals in filters.items() if len(vals) > 1]
    if len(several) != 1 or not has(low, COMPARATIVE):
        return None
    # the values must stand on either side of the alternative ("Sales vs Marketing"), so that a
    # value read as another dimension ("Sales or Marketing", marketing the category) compares nothing
    keys = [k for v in filters[several[0]] for k in _keys(v)]
    for a, b in itertools.permutations(keys, 2):
        if re.search(rf"\b{re.escape(a)}\W+(?:or|vs\.?|versus|compared (?:to|with))\W+{re.escape(b)}\b", low):
            return several[0]
    return None


def _phrases(text: str, longest: int = 4) -> list[tuple[str, range]]:
    """Every word n-gram of the text (lowercase, possessive 's dropped) with the words it spans."""
    words = [w.removesuffix("'s") for w in _WORD.findall(text.lower())]
    return [
        (" ".join(words[i : i + n]), range(i, i + n))
        for n in range(1, longest + 1)
        for i in range(len(words) - n + 1)
    ]


def synonym_values(dimensions: Iterable[Dimension], values: dict[str, list[str]]) -> dict[str, str]:
    """The semantic layer's other words for dimension values (`meta.value_synonyms`: "consultancy"
    for consulting), each with the value it names. A word that may name two values, or that is a word
    of a value itself ("Consultants" in a vendor's name), is left out: it names the value it stands in."""
    taken = value_words(values)
    named: dict[str, set[str]] = {}
    for dim in dimensions:
        for word, value in dim.value_synonyms:
            if value in values.get(dim.name, ()) and not set(_WORD.findall(word.lower())) & taken:
                named.setdefault(word.lower(), set()).add(value)
    return {word: next(iter(vals)) for word, vals in named.items() if len(vals) == 1}


def with_values_named(text: str, synonyms: dict[str, str]) -> str:
    """The question with each other word for a value replaced by the value ("the average transaction
    for consultancy": "... for consulting"), so that every step reads the value the analyst meant;
    the answer names the value it used."""
    if not synonyms:
        return text
    words = "|".join(re.escape(w) for w in sorted(synonyms, key=len, reverse=True))
    return re.sub(
        rf"(?<![\w&'-])({words})(?![\w&-])", lambda m: synonyms[m[1].lower()], text, flags=re.IGNORECASE
    )


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


def _candidates(
    phrases: list[tuple[str, range]], options: list[str], rivals: list[tuple[str, str]]
) -> list[tuple[float, str, range]]:
    """The values of `options` the phrases name: exactly, or as a near spelling (`_near_value`). A
    vendor's name without its legal form that two vendors share ("Skylark Airlines" for its GmbH
    and its B.V.) names neither: only the full name does."""
    owners: dict[str, set[str]] = {}
    for option in filter(None, options):
        for key in _keys(option):
            owners.setdefault(key, set()).add(option)
    keys = {key: next(iter(names)) for key, names in owners.items() if len(names) == 1}
    choices = [k for k in keys if len(k) >= 4]
    found = []
    for phrase, span in phrases:
        if phrase in keys and len(phrase) < 4:
            found.append((100.0 + len(phrase) / 100, keys[phrase], span))
        elif len(phrase) >= 4 and (hit := _near_value(phrase, choices, keys, rivals)):
            # longer matches win over a shorter one inside them
            found.append((hit[1] + len(hit[0]) / 100, keys[hit[0]], span))
    return found


def _squeezed(word: str) -> str:
    """A word without doubled letters and a plural s: "telecomms" and "telecom" are both "telecom"."""
    return re.sub(r"(.)\1+", r"\1", word).removesuffix("s")


def _near_value(
    phrase: str, choices: list[str], keys: dict[str, str], rivals: list[tuple[str, str]]
) -> tuple[str, float] | None:
    """The key a phrase names: itself, or the one key it is a near spelling of. A near spelling is
    a typo ("Enginering", "softwre": rapidfuzz ratio `MATCH_SCORE`; one word of five letters or
    more that is a one-word value but for a doubled letter or a plural s, "telecomms") only when
    no other value of any dimension is near the phrase too (`NEAR_SCORE`): between two close values
    a typo could be either, and a guess could be wrong. A derived word is no typo, however near
    ("operational" is not Operations, "financial" not Finance)."""
    hit = process.extractOne(phrase, choices, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
    if hit is not None and hit[1] == 100:
        return hit[0], hit[1]
    if hit is None and " " not in phrase and len(phrase) >= 5:
        same = [k for k in choices if " " not in k and _squeezed(k) == _squeezed(phrase)]
        hit = (same[0], float(MATCH_SCORE)) if len(same) == 1 else None
    if hit is None:
        return None
    value = keys[hit[0]].lower()
    if any(option.lower() != value and fuzz.ratio(phrase, key) >= NEAR_SCORE for key, option in rivals):
        return None
    return hit[0], hit[1]


def _rivals(values: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(key, value) for every value of every dimension: what a near spelling must be far from."""
    return [(key, v) for vals in values.values() for v in vals if v for key in _keys(v)]


def match_values(text: str, values: dict[str, list[str]]) -> dict[str, list[str]]:
    """The dimension values a question names: every word n-gram of the question against each
    dimension's actual values (rapidfuzz ratio >= MATCH_SCORE, case-insensitive, `_` as a space, a
    vendor's legal form optional; a value under 4 characters, such as "HR", must match exactly). Each
    word names one value of one dimension at most: when a word fits two ("marketing" is a category and
    a department), the assignment that names the most dimensions wins, then the one with the most
    evidence: cue words ("on marketing": category; "did Marketing spend": department; "the marketing
    team": department, a dimension's own word counting twice) and the value written in its own case
    (categories are lower case, departments capitalised). Where that leaves a word's dimension
    undecided, Abstain. Several values of one dimension named exactly or by a one-word typo
    ("hardware and software", "softwre and hardwre") are all kept (their total); asked as
    alternatives ("hardware or software", "versus"), Abstain."""
    phrases = _phrases(text)
    words = [w.removesuffix("'s") for w in _WORD.findall(text.lower())]
    written = [w.removesuffix("'s") for w in re.findall(_WORD.pattern, text, flags=re.IGNORECASE)]
    rivals = _rivals(values)
    options = _read_alike({dim: _candidates(phrases, vals, rivals) for dim, vals in values.items()}, words)

    def evidence(dim: str, candidate: tuple[float, str, range]) -> int:
        span = candidate[2]
        near = words[max(span.start - 1, 0) : span.start] + words[span.stop : span.stop + 1]
        found = sum(2 if w in DIMENSION_WORDS.get(dim, ()) else w in _CUES.get(dim, ()) for w in near)
        phrase = " ".join(written[span.start : span.stop])
        own_case = phrase in (candidate[1], candidate[1].replace("_", " "))
        return found + (span.start > 0 and own_case)  # a sentence's first word is capitalised anyway

    def contradicted(dim: str, candidate: tuple[float, str, range]) -> bool:
        """The word right after the value names another dimension ("Marketing departments")."""
        after = words[candidate[2].stop : candidate[2].stop + 1]
        return any(w in DIMENSION_WORDS.get(other, ()) for other in values if other != dim for w in after)

    ranked = []
    for combo in itertools.product(*([None, *found] for found in options.values())):
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
        for extra in options[dim]:
            # another value named exactly, or one word a typo of one ("softwre and hardwre")
            named = extra[0] >= 100 or len(extra[2]) == 1
            if named and extra[1] not in found[dim] and not used & set(extra[2]):
                found[dim].append(extra[1])
                used |= set(extra[2])
    if any(len(v) > 1 for v in found.values()) and has(text.lower(), ALTERNATIVES):
        if compared(text.lower(), found):
            return found  # the caller ranks these values against each other
        raise Abstain("the question names alternatives; ask for each one, or for their total")
    return found


# Words that join two values of one kind: "Sales or Marketing", "travel and meals" (side by side);
# "Sales spent more than Marketing", "Sales versus Marketing" (the second set against the first)
_COORDINATING = ("and", "or", "&")
_CONTRASTING = ("than", "vs", "vs.", "versus", "against", "compared to", "compared with")


def _read_alike(
    options: dict[str, list[tuple[float, str, range]]], words: list[str]
) -> dict[str, list[tuple[float, str, range]]]:
    """The candidates without the readings that break a pairing: a word that may be of two dimensions
    ("Marketing", a category and a department) and is joined to values of only one of them is read as
    that one. In "Who spent more, Sales or Marketing?" Marketing is the department beside Sales, not
    Sales' spend on marketing. The values on either side of the joiner are read alike; a value after
    "than" or "versus" is read like the values named anywhere before it."""
    dims: dict[range, set[str]] = {}
    for dim, found in options.items():
        for candidate in found:
            dims.setdefault(candidate[2], set()).add(dim)
    keep: dict[range, set[str]] = {}
    for span, own in dims.items():
        one, two = (
            " ".join(words[span.start - 1 : span.start]),
            " ".join(words[max(span.start - 2, 0) : span.start]),
        )
        if one in _COORDINATING:
            joiner_start = span.start - 1
            partners = [s for s in dims if s.stop == joiner_start]
        elif one in _CONTRASTING or two in _CONTRASTING:
            joiner_start = span.start - (2 if two in _CONTRASTING else 1)
            partners = [s for s in dims if s.stop <= joiner_start]
        else:
            continue
        common = own & set().union(*(dims[s] for s in partners))
        # the value right before the joiner is read alike too ("Marketing vs Engineering")
        for s in [span, *(s for s in partners if s.stop == joiner_start)]:
            if common and common < dims[s]:
                keep[s] = keep.get(s, dims[s]) & common
    return {dim: [c for c in found if dim in keep.get(c[2], {dim})] for dim, found in options.items()}


# Capitalised words that name no value and need none: units, abbreviations, pronouns.
# the words for a vendor, category or department: the word before one of them names it ("Legal department")
_NAMING_NOUNS = {w for d in ("vendor", "category", "department") for w in DIMENSION_WORDS[d] if " " not in w}
_PLAIN_CAPITALS = {"i", "eur", "euro", "euros", "usd", "ytd", "mtd", "qtd", "id", "ids", "ok", "yoy", "qoq"}


def unexplained_names(text: str, filters: dict[str, list[str]]) -> list[str]:
    """Capitalised words inside a sentence that are no period and no word of a value found: a name
    assay does not hold ("Acme" when no vendor is called so). Answering without it would state a
    total of everything, so the caller abstains."""
    known = value_words(filters)
    names = []
    for sentence in re.split(r"[.?!:;]\s+", text):
        words = re.findall(r"[A-Za-z0-9][A-Za-z0-9&'.-]*", sentence)
        # a sentence's first word is capitalised anyway, unless it is an acronym ("R&D", "EMEA") or
        # the next word says what it names ("Legal department spend in 2025")
        first = words[:1] if words and (_acronym(words[0]) or _named_by_next(words)) else []
        for word in first + words[1:]:
            bare = word.rstrip(".'").removesuffix("'s").lower()
            if not word[0].isupper() or spelled_as(bare, known) or bare in MONTHS or bare in _PLAIN_CAPITALS:
                continue
            if (
                re.fullmatch(r"[qh][1-4]|[12]h", bare)
                or bare in OUT_OF_SCOPE
                or set(bare.split("-")) <= set(MONTHS)
            ):
                continue
            names.append(word.rstrip(".'").removesuffix("'s"))
    return names


def _acronym(word: str) -> bool:
    return sum(c.isupper() for c in word) > 1


def _named_by_next(words: list[str]) -> bool:
    """Whether a sentence's first word is a name by the noun after it ("Legal department", "Acme
    supplier"), and no word of a question or condition ("Which department", "Each team")."""
    first = words[0].lower()
    return (
        len(words) > 1
        and words[1].lower() in _NAMING_NOUNS
        and first not in FUNCTION_WORDS
        and first not in QUALIFIERS
        and first not in TOTAL
        and first not in RANK_DESC + RANK_ASC
    )


def spelled_as(word: str, known: Iterable[str]) -> bool:
    """Whether a word is one of the `known` words of the values found or a near spelling of one,
    by the rule `match_values` reads a typo with ("Enginering" once Engineering was matched)."""
    if word in known or len(word) >= 5 and any(_squeezed(word) == _squeezed(k) for k in known):
        return True
    return len(word) >= 4 and bool(
        process.extractOne(word, known, scorer=fuzz.ratio, score_cutoff=MATCH_SCORE)
    )


def value_words(filters: dict[str, list[str]]) -> set[str]:
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
    known = value_words(filters)
    plain = {w for words in DIMENSION_WORDS.values() for w in words} | set(TRANSACTION_NOUNS)
    unknown = []
    for m in _SPEND_OBJECT.finditer(text.lower()):
        word = m[1] or m[2]
        if (
            set(word.replace("_", " ").split()) <= known
            or spelled_as(word, known)  # "softwre" once software was matched
            or word in _NOT_A_NAME
            or word in MONTHS
            or word in plain
        ):
            continue
        options = [v for vals in values.values() for v in vals if v]
        near = process.extractOne(word, options, scorer=fuzz.ratio, processor=str.lower, score_cutoff=75)
        unknown.append(f"{word} (did you mean {near[0]}?)" if near else word)
    return unknown
