"""Ask assay: an analyst's question -> a structured query over the semantic layer -> an answer.

The hard parts are deterministic: periods are parsed (months, quarters, years, "last month"), literal
values (categories, departments, vendors) are matched against the dimensions' actual values with
rapidfuzz, and the metric is chosen by the words analysts use for it (the metrics' `meta.synonyms`).
The answer sentence is rendered from the query's result, never written by a model; a question that
fits no metric, or asks for a cut the layer does not have, is answered with an abstention and why.

This module is the orchestration (`Asker`); each step has its own: the words it reads and `Abstain`
(ask_words), periods (ask_periods), literal values and unknown names (ask_values), the metric and the
query's shape (ask_metric), the answer and its sentence (ask_render), process questions (ask_process).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from psycopg import sql

from assay.agents.ask_coverage import COVERAGE, conditions, unread_words, words
from assay.agents.ask_metric import (
    check_fit,
    choose_metric,
    derivation,
    for_period,
    growth_query,
    ranking,
    vendor_list,
    without_excluded,
)
from assay.agents.ask_periods import (
    Span,
    compared_periods,
    held_fully,
    month_range,
    parse_period,
    period_before,
    preceding_half,
    within_data,
    year_on_year,
)
from assay.agents.ask_process import ProcessQuery, plan_process
from assay.agents.ask_render import Answer, number, render
from assay.agents.ask_values import (
    compared,
    match_values,
    synonym_values,
    unexplained_names,
    unknown_objects,
    with_values_named,
)
from assay.agents.ask_words import (
    AVERAGE,
    COMPARATIVE_ASC,
    GROWTH,
    OUT_OF_SCOPE,
    Abstain,
    asks_change,
    has,
    top_n,
)
from assay.agents.tools.db import ReaderSession, ToolError
from assay.agents.tools.lineage import transaction_sources
from assay.agents.tools.semantic import Metric, StructuredQuery, compile_query, semantic_layer

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
_TXN_FILTERS = {"category": "category", "department": "department"}  # dimension -> documents column


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
    """Answers questions on one reader session; dimension values and the months gold holds are read once.

    `today` (the calendar date by default) is the day relative periods count from."""

    def __init__(
        self, session: ReaderSession, layer: dict[str, Metric] | None = None, today: dt.date | None = None
    ):
        self.session = session
        self.layer = layer or semantic_layer()
        self.values = _dimension_values(session, self.layer)
        dimensions = [d for m in self.layer.values() for d in m.dimensions.values()]
        self.synonyms = synonym_values(dimensions, self.values)
        # relative periods ("last month", "this year") count from the calendar, not from the data
        self.today = today or dt.date.today()
        months = session.query("select min(month), max(month) from gold.monthly_summary").rows
        self.first, self.last = months[0]  # gold's first and latest month
        # the layer's words: every metric's and dimension's synonyms (the metric choice reads them all)
        self.vocabulary = {
            s
            for m in self.layer.values()
            for s in (*m.synonyms, *(w for d in m.dimensions.values() for w in d.synonyms))
        }
        # the DFG's few edges name every activity of the flow; the event log would be a full scan
        # of every event on each question
        self.activities = (
            [r[0] for r in session.query(ACTIVITIES).rows] if session.table_exists("gold.process_dfg") else []
        )

    def _data_months(self) -> tuple[dt.date, dt.date]:
        """The data's months: from gold's first month to the end of the latest."""
        return self.first, month_range(self.last.year, self.last.month)[1]

    def _period(self, question: str) -> tuple[dt.date | None, dt.date | None, str | None]:
        """The period the question names, cut to the months gold holds; Abstain when it holds none."""
        return within_data(parse_period(question, self.today), self.first, self.last)

    def plan(self, question: str) -> tuple[StructuredQuery, str | None, tuple | None]:
        """The structured query for a question, the period's label and what is derived from its value
        (("share", base filters): the value over the same total with only the base's filters;
        ("per_month", months): the value over the period's months); Abstain when none fits."""
        low = question.lower()
        if has(low, OUT_OF_SCOPE):
            raise Abstain(
                "assay holds spend, transactions, vendors and anomalies; the question asks for something else"
            )
        named = match_values(question, self.values)
        if names := unexplained_names(question, named):
            raise Abstain(f"{', '.join(names)}: no category, department or vendor of that name in gold")
        if names := unknown_objects(question, named, self.values):
            raise Abstain(f"{', '.join(names)}: no category, department or vendor of that name in gold")
        query, period, derive = self._shape(question, named)
        # every word read: a word no step read is a condition the answer would drop; two periods
        # compared read the months of both
        span = (derive[1].start, query.end) if derive and derive[0] == "growth" else (query.start, query.end)
        before = period_before(question) if has(question.lower(), GROWTH) and query.limit == 2 else None
        if before and before[0] != query.group_by:  # "Q3 2025 versus the month before"
            raise Abstain(
                f"growth against the {before[0]} before needs a {before[0]}, not a {query.group_by}"
            )
        read = before[1] if before else set()  # "versus the month before"
        self._all_read(question, named, span if query.start else None, self.vocabulary, read)
        return query, period, derive

    def _all_read(self, question: str, named, period, synonyms=(), read: set[str] | None = None):
        """Abstain when a word of the question was read by no step (`agents/ask_coverage.py`)."""
        read = set(read or ())
        if top := top_n(question.lower()):
            read.add(top[0])  # "top 3"
        unread = unread_words(question, read, named, period, synonyms)
        if COVERAGE != "strict":
            unread = conditions(question, unread)
        if unread:
            raise Abstain(f"did not understand: {', '.join(unread)}")

    def _shape(
        self, question: str, named: dict[str, list[str]]
    ) -> tuple[StructuredQuery, str | None, tuple | None]:
        """The plan of a question whose values are `named`."""
        low = question.lower()
        filters = without_excluded(question, named, self.values)
        listing = vendor_list(low, filters)  # "which vendors sell X": every vendor of X, by spend
        name = "vendor_spend_eur" if listing else choose_metric(question, self.layer, filters)
        group_by, order, limit = ranking(low, self.layer[name])
        if listing:
            group_by, limit = "vendor", top[1] if (top := top_n(low)) else None
        start, end, period = self._period(question)
        # a vendor figure of a period (or a category) is its twin's, over gold.vendor_monthly
        name, per_period = for_period(name, self.layer, filters, start, group_by)
        metric = self.layer[name]
        if rivals := compared(low, filters):
            # "Sales vs Marketing: who spent more": the named values ranked against each other
            if (
                per_period
                or set(filters) - set(metric.dimensions)
                or (start and metric.time_dimension is None)
            ):
                raise Abstain(f"{metric.label} cannot be cut so in the semantic layer")
            order = "asc" if has(low, COMPARATIVE_ASC) else "desc"
            return StructuredQuery(name, rivals, filters, start, end, order, 1), period, None
        if group_by in filters:
            filters.pop(group_by)  # "which vendor" ranks vendors; a matched name in it is not a filter
        unsupported = sorted(set(filters) - set(metric.dimensions))
        if unsupported:
            raise Abstain(f"{metric.label} cannot be cut by {', '.join(unsupported)} in the semantic layer")
        if start and metric.time_dimension is None:
            raise Abstain(f"{metric.label} is an all-time figure in gold; it is not kept per period")
        derive = per_period or derivation(
            question, name, filters, start, end, group_by, self.values, self._data_months
        )
        check_fit(low, metric, filters, group_by, derive, period)
        if has(low, GROWTH) and (pair := self._compared(question, start, end)):
            # two named periods ("Oct vs Sep 2025", "H2 compared with H1"): the later against the earlier
            if group_by is not None or metric.unit == "%" or metric.time_dimension is None:
                raise Abstain("growth between two periods needs a total kept per period")
            later = pair[1]
            return (
                StructuredQuery(name, None, filters, later.start, later.end),
                later.label,
                ("growth", *pair),
            )
        if has(low, GROWTH):
            if not asks_change(low):
                # "compare travel and meals in 2025" asks for no growth of the period before
                raise Abstain("a comparison needs the two periods compared; name both")
            quarters = sorted({int(q) for q in re.findall(r"\bq([1-4])\b", low)})
            if len(quarters) > 1:
                if len(quarters) != 2 or quarters[1] - quarters[0] != 1 or start is None:
                    raise Abstain("growth compares one quarter with the one just before it")
                start = dt.date(start.year, 3 * quarters[1] - 2, 1)
                end, period = month_range(start.year, 3 * quarters[1])[1], f"Q{quarters[1]} {start.year}"
            query = StructuredQuery(name, None, filters, start, end)
            return (*growth_query(query, period, group_by, self.layer), None)
        query = StructuredQuery(name, group_by, filters, start, end, order, limit)
        return query, period, derive

    def _compared(self, question: str, start, end) -> tuple[Span, Span] | None:
        """The two periods a growth question compares, each held whole by gold: two it names, the
        period and the same one a year before ("year over year"), or a half-year and the one before
        it (growth against the period before for the other grains is one grouped query,
        `growth_query`)."""
        pair = compared_periods(question, self.today)
        if pair is None and asks_change(question.lower()):
            pair = year_on_year(question, start, end) or (start and preceding_half(start, end))
        return pair and tuple(held_fully(span, self.first, self.last) for span in pair)

    def _growth_answer(self, question: str, metric: Metric, query: StructuredQuery, period, rows) -> Answer:
        rows = sorted(rows)
        if len(rows) != 2 or not rows[0][1]:
            raise Abstain("the period before has no spend to compare with")
        (before, old), (now, new) = rows
        growth = round(100 * (Decimal(new) - Decimal(old)) / Decimal(old), 2)
        scope = "; ".join(f"{dim} {', '.join(vals)}" for dim, vals in sorted(query.filters.items()))
        text = (
            f"{metric.label}{f' ({scope})' if scope else ''}: {number(new, metric.unit)} in {now} against"
            f" {number(old, metric.unit)} in {before}, a change of {growth:+.2f} %."
        )
        return Answer(question, text, False, query.as_dict() | {"derived": "growth_pct"}, derived=growth)

    def _largest_expenses(self, question: str) -> Answer:
        """ "The largest expense in March 2025": single transactions ranked by amount (platinum's
        transaction documents, as search reads them), each with its landing file and line."""
        low = question.lower()
        filters = match_values(question, {k: v for k, v in self.values.items() if k in _TXN_FILTERS})
        if names := unexplained_names(question, filters):
            raise Abstain(f"{', '.join(names)}: no category or department of that name in platinum")
        start, end, period = self._period(question)
        self._all_read(
            question,
            filters,
            (start, end) if start else None,
            self.vocabulary,
            read=set(words(_LARGEST_EXPENSE.search(low)[0])),
        )
        limit = min(top[1], self.session.row_cap) if (top := top_n(low)) else 1
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
        elif planned.kind == "bottleneck":
            text = (
                f"Bottleneck, ranked by mean wait: {row[0]}: cases wait {row[1]:,} hours on average before it"
                f" ({row[2]:,} times; {row[3]:,} hours in all, rank {row[4]} by total wait)."
            )
        else:
            text = f"{planned.label}: {number(row[0], planned.unit)} (over {row[-1]:,} cases)."
            if planned.kind == "cases_with":
                text = f"{planned.label}: {number(row[0], planned.unit)} of {row[-1]:,} cases."
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
        # the layer's other words for a value are read as the value ("consultancy": consulting)
        answer = self._ask(with_values_named(question, self.synonyms))
        answer.question = question
        return answer

    def _ask(self, question: str) -> Answer:
        low = question.lower()
        if self.activities and not has(low, OUT_OF_SCOPE):
            planned = plan_process(question, self.activities)
            if isinstance(planned, ProcessQuery) and planned.kind in ("variants", "bottleneck"):
                # all-time tables: a department, category or vendor named is a condition they lack
                try:
                    named = any(match_values(question, self.values).values())
                except Abstain:
                    named = True
                if named:
                    planned = "gold's process tables are all-time, not split by department, category, vendor"
            if isinstance(planned, str):
                return Answer(question, f"I cannot answer this: {planned}.", True)
            if planned is not None:
                try:
                    return self._process(question, planned)
                except ToolError as exc:
                    return Answer(question, f"I cannot answer this: {exc}.", True)
        counting = has(low, ("how many", "number of", "count"))
        single = _LARGEST_EXPENSE.search(low) and not counting and not has(low, AVERAGE)
        if single and not has(low, OUT_OF_SCOPE):
            try:
                return self._largest_expenses(question)
            except (Abstain, ToolError) as exc:
                return Answer(question, f"I cannot answer this: {exc}.", True)
        try:
            query, period, derive = self.plan(question)
            # one row past the cap: a list cut at the cap says so (`result.truncated`)
            statement, params = compile_query(query, self.layer, cap=self.session.row_cap + 1)
            result = self.session.query(statement, params)
            if derive:
                return self._derived(question, query, period, derive, statement, params, result)
        except (Abstain, ToolError) as exc:
            return Answer(question, f"I cannot answer this: {exc}.", True)
        metric = self.layer[query.metric]
        sql_text = statement.as_string(self.session.conn)
        rows = result.rows
        if has(question.lower(), GROWTH) and not compared(question.lower(), query.filters):
            rows = sorted(rows)  # the two periods in time order
            try:
                answer = self._growth_answer(question, metric, query, period, result.rows)
            except Abstain as exc:
                return Answer(question, f"I cannot answer this: {exc}.", True)
        else:
            text = render(metric, query, period, result.columns, result.rows, more=result.truncated)
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
        if derive[0] == "growth":  # the later period's total against the earlier one's
            earlier = derive[1]
            base_query = StructuredQuery(query.metric, None, query.filters, earlier.start, earlier.end)
            base_sql, base_params = compile_query(base_query, self.layer, cap=self.session.row_cap)
            old = self.session.query(base_sql, base_params).rows[0][0]
            rows = [[earlier.key, old], [derive[2].key, value]]
            answer = self._growth_answer(question, metric, query, period, rows)
            answer.query |= {
                "compared_with": {"start": earlier.start.isoformat(), "end": earlier.end.isoformat()}
            }
            answer.sql = ";\n".join([base_sql.as_string(self.session.conn), *sqls])
            answer.params, answer.columns = [base_params, params], [metric.time_dimension.name, "value"]
            answer.rows, answer.provenance = rows, [metric.relation]
            return answer
        if derive[0] == "share":
            base_query = StructuredQuery(query.metric, None, derive[1], query.start, query.end)
            base_sql, base_params = compile_query(base_query, self.layer, cap=self.session.row_cap)
            base = self.session.query(base_sql, base_params).rows[0][0]
            if not base:
                raise Abstain("the total to divide by has no spend")
            derived = round(100 * Decimal(value) / Decimal(base), 2)
            within = "; ".join(f"{dim} {', '.join(v)}" for dim, v in sorted(derive[1].items())) or "all spend"
            text = (
                f"Share of spend ({scope}): {derived:.2f} %, {number(value, metric.unit)} of"
                f" {number(base, metric.unit)} ({within}{f'; {period}' if period else ''})."
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
                f" {number(value, metric.unit)} over {months} months."
            )
            kind = "per_month"
        answer = Answer(question, text, False, query.as_dict() | {"derived": kind}, derived=derived)
        answer.sql, answer.params, answer.columns = ";\n".join(sqls), params, ["value"]
        answer.rows, answer.provenance = rows, [metric.relation]
        return answer
