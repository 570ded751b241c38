"""Ask assay's answer: what it states and the sentence rendered from a query's result, never
written by a model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from assay.agents.tools.semantic import Metric, StructuredQuery


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


def number(value: Any, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "EUR":
        return f"{Decimal(value):,.2f} EUR"
    if unit == "%":
        return f"{Decimal(value):.2f} %"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)  # a whole count, which the compiled SQL rounds to numeric with 2 places
    return f"{value:,} {unit}".strip()


def render(
    metric: Metric,
    query: StructuredQuery,
    period: str | None,
    columns: list[str],
    rows: list,
    more: bool = False,
) -> str:
    """The answer sentence, from the result only: the value (or the top entity and its value), the
    metric, the filters and the period; `more`: a list holds more rows than were read."""
    scope = [f"{dim} {', '.join(vals)}" for dim, vals in sorted(query.filters.items())]
    if period:
        scope.append(period)
    where = f" ({'; '.join(scope)})" if scope else ""
    if not rows or rows[0][-1] is None:
        return f"No data: {metric.label}{where} has no rows in gold."
    if query.group_by is None:
        return f"{metric.label}{where}: {number(rows[0][0], metric.unit)}."
    ranked = "; ".join(f"{row[0]}: {number(row[1], metric.unit)}" for row in rows)
    if query.limit is None:  # a list ("which vendors sell X"): every value, the largest first
        first = f" (the first {len(rows)}; gold holds more)" if more else ""
        return f"{query.group_by.capitalize()}s with spend{where}, largest first{first}: {ranked}."
    word = "Lowest" if query.order == "asc" else "Highest"
    return f"{word} {query.group_by} by {metric.label.lower()}{where}: {ranked}."
