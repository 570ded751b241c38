"""The words of an anomaly explanation that carry numbers, rendered from the facts, and the check that
an explanation states no number or date that is not in its facts or its cited rows.

The model never writes a number: it chooses which of the week's largest transactions to cite and
may add a short reason without digits. Everything numeric (the week's total, its ratio to the
four-week average, z, the cited transactions' share) is computed and formatted here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


def ratio(facts: dict[str, Any]) -> float | None:
    average = float(facts["moving_avg_4w_eur"])
    return float(facts["total_amount_eur"]) / average if average else None


def share(facts: dict[str, Any], cited: Sequence[dict[str, Any]]) -> float | None:
    total = float(facts["total_amount_eur"])
    return 100 * sum(float(row["amount_eur"]) for row in cited) / total if total and cited else None


def render(facts: dict[str, Any], cited: Sequence[dict[str, Any]], reason: str = "") -> str:
    """The explanation: the numeric sentences from the facts, then the model's reason (if any)."""
    category = str(facts["category"]).capitalize()
    total, average = float(facts["total_amount_eur"]), float(facts["moving_avg_4w_eur"])
    times = ratio(facts)
    against = (
        f"{times:.1f}× its four-week average of {average:,.2f} EUR"
        if times is not None
        else "with no spend in the four weeks before"
    )
    text = (
        f"{category} spend in the week of {facts['week_start']} was {total:,.2f} EUR, "
        f"{against} (z = {float(facts['z_score']):.1f})."
    )
    cited_share = share(facts, cited)
    if cited_share is not None:
        text += f" The cited transactions make up {cited_share:.1f} % of the week's total."
    elif not cited:
        text += " No transaction of this category is recorded in that week."
    reason = " ".join(reason.split())
    if reason:
        text += f" {reason.rstrip('.')}."
    return text


def allowed_values(facts: dict[str, Any], cited: Sequence[dict[str, Any]]) -> list[float]:
    """Every number an explanation may state: the facts, the values derived from them, the cited amounts."""
    values = [
        float(facts[name])
        for name in ("total_amount_eur", "moving_avg_4w_eur", "z_score", "transaction_count")
        if facts.get(name) is not None
    ]
    values += [float(row["amount_eur"]) for row in cited]
    values += [v for v in (ratio(facts), share(facts, cited)) if v is not None]
    return values


def unfaithful(text: str, facts: dict[str, Any], cited: Sequence[dict[str, Any]]) -> list[str]:
    """The dates and numbers in `text` that neither the facts nor the cited rows hold (empty: faithful).

    A date must be the week's start or a cited row's date; a number must equal an allowed value
    rounded to the decimals it is stated with (so "2.4×" matches a ratio of 2.4137).
    """
    dates = {str(facts["week_start"])} | {str(row["date"]) for row in cited if row.get("date")}
    wrong = [d for d in DATE.findall(text) if d not in dates]
    values = allowed_values(facts, cited)
    for token in NUMBER.findall(DATE.sub(" ", text)):
        stated = float(token.replace(",", ""))
        decimals = len(token.split(".")[1]) if "." in token else 0
        if not any(round(v, decimals) == round(stated, decimals) for v in values):
            wrong.append(token)
    return wrong


def faithfulness(
    explanations: Iterable[tuple[str, str, dict[str, Any], Sequence[dict[str, Any]]]],
) -> tuple[int, list[str]]:
    """(explanations checked, 'key: tokens' for each one stating something not in its facts or rows)."""
    checked, failures = 0, []
    for key, text, facts, cited in explanations:
        checked += 1
        wrong = unfaithful(text, facts, cited)
        if wrong:
            failures.append(f"{key}: {', '.join(wrong)}")
    return checked, failures
