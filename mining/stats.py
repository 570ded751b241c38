"""Process statistics over the whole event log with polars: DFG, variants, bottlenecks, durations.

Every function takes the normalised log of `assay.mining.log` (`case_id`, `event_index`,
`activity` as a `Categorical`, `event_ts`, `resource`, sorted by case and position) and returns the
rows of one gold table, names as text. Durations are in hours; percentiles are linear
interpolations (as Postgres' `percentile_cont`, numpy and pm4py compute them).
"""

import hashlib
from typing import Literal

import polars as pl

SEPARATOR = "\x1f"  # joins a variant's activities into one key; cannot occur in an activity name
ARROW = " → "


def _hours_stats(column: str) -> list[pl.Expr]:
    c = pl.col(column)
    return [
        c.mean().alias("mean_hours"),
        c.median().alias("median_hours"),
        c.quantile(0.95, interpolation="linear").alias("p95_hours"),
        c.min().alias("min_hours"),
        c.max().alias("max_hours"),
    ]


_US_PER_HOUR = 3.6e9


def _micro_stats(column: str) -> list[pl.Expr]:
    """Duration statistics computed on integer microseconds (sorting integers is what makes the
    median and p95 cheap), returned in hours."""
    c = pl.col(column)
    return [
        (c.mean() / _US_PER_HOUR).alias("mean_hours"),
        (c.median() / _US_PER_HOUR).alias("median_hours"),
        (c.quantile(0.95, interpolation="linear") / _US_PER_HOUR).alias("p95_hours"),
        (c.min() / _US_PER_HOUR).alias("min_hours"),
        (c.max() / _US_PER_HOUR).alias("max_hours"),
    ]


def _list_wait_stats(values: pl.Expr) -> list[pl.Expr]:
    """Count and waiting-time statistics (hours) of a list column that holds each group's
    microseconds."""
    return [
        values.list.len().cast(pl.Int64).alias("frequency"),
        (values.list.mean() / _US_PER_HOUR).alias("mean_hours"),
        (values.list.median() / _US_PER_HOUR).alias("median_hours"),
        (values.list.agg(pl.element().quantile(0.95, interpolation="linear")) / _US_PER_HOUR).alias(
            "p95_hours"
        ),
        (values.list.min() / _US_PER_HOUR).alias("min_hours"),
        (values.list.max() / _US_PER_HOUR).alias("max_hours"),
        (values.list.sum() / _US_PER_HOUR).alias("total_hours"),
    ]


def activity_codes(events: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.Expr]:
    """The log with a categorical `activity` (a text one is cast), n = the largest code + 1, and the
    code as an integer expression: an edge's key is `previous code * n + code`, exact."""
    if not isinstance(events.schema["activity"], pl.Categorical | pl.Enum):
        events = events.with_columns(pl.col("activity").cast(pl.Categorical))
    n = (events["activity"].to_physical().max() or 0) + 1
    return events, n, pl.col("activity").to_physical().cast(pl.UInt64)


def _grouped_waits(events: pl.DataFrame, by: Literal["edge", "target"]) -> pl.DataFrame:
    """Count and waiting-time statistics per edge (`source`, `target`), plus the count of case
    starts per activity (`source` null, no statistics); or per activity waited for (`target`,
    events with a predecessor only).

    Relies on the log's order (case, position) and its `event_index` (0 = first event of a case):
    a shift and a comparison with a constant, no sort and no string comparison. The group-by runs
    on an integer key made of the activity's categorical codes, `previous code * n + code` with
    n = the largest code + 1: exact (one key per edge, no collision check) and read from the codes
    the log's readers made while they parsed (a text `activity` is cast here first, which costs
    more than the codes save). Case starts are counted apart, so that only the events with a
    predecessor are grouped.

    The group-by only gathers each edge's microseconds into a list; the statistics then run on
    each list's contiguous values. Aggregating them in the group-by instead gathers the column
    once per statistic (about twice the time on the large sample).
    """
    events, n, code = activity_codes(events)
    ts = pl.col("event_ts")
    waits = (
        events.lazy()
        .select(
            "activity",
            "event_index",
            key=code.shift(1) * n + code if by == "edge" else code,
            us=(ts - ts.shift(1)).dt.total_microseconds(),
        )
        .filter(pl.col("event_index") > 0)
        .group_by("key")
        .agg(pl.col("activity").first().alias("target"), "us")
        .select("key", "target", *_list_wait_stats(pl.col("us")))
    )
    if by == "target":
        grouped = waits.collect().with_columns(pl.col("target").cast(pl.String))
        return grouped.select(pl.lit(None, pl.String).alias("source"), pl.exclude("key"))
    starts = (
        events.lazy()
        .filter(pl.col("event_index") == 0)
        .group_by(pl.col("activity").alias("target"))
        .agg(pl.len().cast(pl.Int64).alias("frequency"))
    )
    grouped, starts = pl.collect_all([waits, starts])
    # an edge's source is either a case's first event or some other edge's target: named in one
    names = pl.concat(
        [
            grouped.select(code=pl.col("key") % n, name="target"),
            starts.select(code=pl.col("target").to_physical().cast(pl.UInt64), name="target"),
        ]
    ).unique("code")
    edges = grouped.with_columns(code=pl.col("key") // n).join(names, on="code", how="left")
    return pl.concat(
        [
            starts,
            edges.select(pl.col("name").cast(pl.String).alias("source"), pl.exclude("key", "code", "name")),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.col("target").cast(pl.String))


DFG_SCHEMA = {
    "edge_kind": pl.String,
    "source": pl.String,
    "target": pl.String,
    "frequency": pl.Int64,
    "mean_hours": pl.Float64,
    "median_hours": pl.Float64,
    "p95_hours": pl.Float64,
    "min_hours": pl.Float64,
    "max_hours": pl.Float64,
}


def directly_follows(events: pl.DataFrame) -> pl.DataFrame:
    """The directly-follows graph: `follows` edges with frequency and transition-time statistics,
    plus `start` (source null) and `end` (target null) edges counting cases that start / end there.

    One group-by over all events: the rows without a predecessor are the start counts, and an
    activity ends a case as often as it occurs without a successor (occurrences - outgoing edges).
    """
    grouped = _grouped_waits(events, "edge")
    follows = grouped.filter(pl.col("source").is_not_null()).with_columns(edge_kind=pl.lit("follows"))
    starts = grouped.filter(pl.col("source").is_null()).select(
        "target", "frequency", edge_kind=pl.lit("start")
    )
    occurrences = grouped.group_by("target").agg(pl.col("frequency").sum().alias("occurs"))
    outgoing = follows.group_by("source").agg(pl.col("frequency").sum().alias("out"))
    ends = (
        occurrences.join(outgoing, left_on="target", right_on="source", how="left")
        .select(
            source="target",
            frequency=pl.col("occurs") - pl.col("out").fill_null(0),
            edge_kind=pl.lit("end"),
        )
        .filter(pl.col("frequency") > 0)
    )
    order = pl.col("edge_kind").replace_strict({"start": 0, "follows": 1, "end": 2}, return_dtype=pl.Int8)
    frame = pl.concat([starts, follows, ends], how="diagonal_relaxed")
    return frame.select(
        pl.col(n).cast(t) if n in frame.columns else pl.lit(None, t).alias(n) for n, t in DFG_SCHEMA.items()
    ).sort(order, "frequency", "source", "target", descending=[False, True, False, False], nulls_last=True)


VARIANT_SCHEMA = {
    "variant_id": pl.String,
    "variant_rank": pl.Int32,
    "variant": pl.String,
    "activities": pl.String,  # a Postgres text[] literal
    "length": pl.Int32,
    "cases": pl.Int64,
    "case_share": pl.Float64,
    "mean_hours": pl.Float64,
    "median_hours": pl.Float64,
    "p95_hours": pl.Float64,
    "min_hours": pl.Float64,
    "max_hours": pl.Float64,
}


def variant_id(activities: list[str]) -> str:
    """Stable id of an activity sequence (the same sequence has the same id in every run and log)."""
    return hashlib.sha1(SEPARATOR.join(activities).encode()).hexdigest()[:12]


def _array_literal(activities: list[str]) -> str:
    quoted = (a.replace("\\", "\\\\").replace('"', '\\"') for a in activities)
    return "{" + ",".join(f'"{a}"' for a in quoted) + "}"


def variants(events: pl.DataFrame | pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(variants, case -> variant). Variants are ranked by case count (ties by sequence)."""
    traces = (
        events.lazy()
        .group_by("case_id")
        .agg(
            # joined as text: joining the categorical itself took 1.6x as long on the large sample
            key=pl.col("activity").cast(pl.String).str.join(SEPARATOR),
            us=(pl.col("event_ts").last() - pl.col("event_ts").first()).dt.total_microseconds(),
        )
        .collect()
    )
    total = traces.height
    stats = (
        traces.group_by("key")
        .agg(pl.len().alias("cases"), *_micro_stats("us"))
        .sort("cases", "key", descending=[True, False])
        .with_row_index("variant_rank", offset=1)
    )
    sequences = [key.split(SEPARATOR) for key in stats["key"]]
    table = stats.with_columns(
        variant_id=pl.Series([variant_id(s) for s in sequences], dtype=pl.String),
        variant=pl.Series([ARROW.join(s) for s in sequences], dtype=pl.String),
        activities=pl.Series([_array_literal(s) for s in sequences], dtype=pl.String),
        length=pl.Series([len(s) for s in sequences], dtype=pl.Int32),
        case_share=pl.col("cases") / total,
    )
    case_variants = traces.join(table.select("key", "variant_id"), on="key").select("case_id", "variant_id")
    return table.select(pl.col(n).cast(t) for n, t in VARIANT_SCHEMA.items()), case_variants


def variant_sequences(variant_table: pl.DataFrame) -> list[list[str]]:
    """The activity lists of a `variants()` table, in its row order."""
    return [_parse_array(a) for a in variant_table["activities"]]


def _parse_array(literal: str) -> list[str]:
    body = literal[2:-2]  # strip {" and "}
    if not body:
        return []
    parts = body.split('","')
    return [p.replace('\\"', '"').replace("\\\\", "\\") for p in parts]


BOTTLENECK_SCHEMA = {
    "kind": pl.String,
    "source": pl.String,
    "target": pl.String,
    "occurrences": pl.Int64,
    "mean_hours": pl.Float64,
    "median_hours": pl.Float64,
    "p95_hours": pl.Float64,
    "total_hours": pl.Float64,
    "share_of_wait": pl.Float64,
    "rank_by_total": pl.Int32,
    "rank_by_mean": pl.Int32,
}


def bottlenecks(events: pl.DataFrame, dfg: pl.DataFrame) -> pl.DataFrame:
    """Activities and edges ranked by the time cases wait for them.

    The log has one (completion) timestamp per event, so an activity's waiting time and its sojourn
    time are the same thing: the hours from the case's previous event until it. `activity` rows
    (`target` = the activity) aggregate that over every predecessor; `edge` rows are the DFG's
    edges (`dfg` from `directly_follows` on the same log). `share_of_wait` is the part of all
    waiting in the log; ranks are 1 = slowest.

    Where the log has lifecycle transitions, events carry a `start_ts` (their `start` event's time)
    and `service` rows (`target` = the activity) give the service times: from each start to its
    completion, for the completions that have a start (shares and ranks among the service rows).
    The `activity` rows stay completion to completion (waiting plus service time).
    """
    by_activity = _grouped_waits(events, "target").select(
        "source",
        "target",
        "mean_hours",
        "median_hours",
        "p95_hours",
        "total_hours",
        kind=pl.lit("activity"),
        occurrences="frequency",
    )
    by_edge = dfg.filter(pl.col("edge_kind") == "follows").select(
        "source",
        "target",
        "mean_hours",
        "median_hours",
        "p95_hours",
        kind=pl.lit("edge"),
        occurrences="frequency",
        total_hours=pl.col("mean_hours") * pl.col("frequency"),
    )
    parts = []
    by_service = None
    if "start_ts" in events.columns and events["start_ts"].null_count() < events.height:
        service = events.filter(pl.col("start_ts").is_not_null()).with_columns(
            us=(pl.col("event_ts") - pl.col("start_ts")).dt.total_microseconds()
        )
        by_service = (
            service.group_by("activity")
            .agg("us")
            .with_columns(_list_wait_stats(pl.col("us")))
            .select(
                "mean_hours",
                "median_hours",
                "p95_hours",
                "total_hours",
                source=pl.lit(None, pl.String),
                target="activity",
                kind=pl.lit("service"),
                occurrences="frequency",
            )
        )
    for part in (by_activity, by_edge, by_service):
        if part is None:
            continue
        total = part["total_hours"].sum()
        parts.append(
            part.with_columns(
                share_of_wait=pl.col("total_hours") / total if total else pl.lit(0.0),
                rank_by_total=pl.col("total_hours").rank("ordinal", descending=True),
                rank_by_mean=pl.col("mean_hours").rank("ordinal", descending=True),
            ).sort("rank_by_total")
        )
    frame = pl.concat(parts, how="diagonal_relaxed")
    return frame.select(pl.col(n).cast(t) for n, t in BOTTLENECK_SCHEMA.items())


CASE_DURATION_SCHEMA = {
    "grouping": pl.String,
    "department": pl.String,
    "category": pl.String,
    "cases": pl.Int64,
    "mean_hours": pl.Float64,
    "median_hours": pl.Float64,
    "p95_hours": pl.Float64,
    "min_hours": pl.Float64,
    "max_hours": pl.Float64,
}
UNKNOWN = "(unknown)"


def case_durations(cases: pl.DataFrame) -> pl.DataFrame:
    """Case duration by department and category, with the per-department, per-category and overall
    rollups (`grouping` names the columns grouped by; the others are null). A case without a
    department or category counts under `(unknown)`."""
    filled = cases.with_columns(pl.col("department", "category").fill_null(UNKNOWN))
    parts = []
    for keys in (("department", "category"), ("department",), ("category",), ()):
        grouped = filled.group_by(*keys) if keys else filled.group_by(pl.lit(1).alias("_all"))
        part = grouped.agg(pl.len().alias("cases"), *_hours_stats("duration_hours"))
        parts.append(part.with_columns(grouping=pl.lit(", ".join(keys) or "all")))
    frame = pl.concat(parts, how="diagonal_relaxed")
    level = pl.col("grouping").replace_strict(
        {"department, category": 0, "department": 1, "category": 2, "all": 3}, return_dtype=pl.Int8
    )
    return frame.select(
        pl.col(n).cast(t) if n in frame.columns else pl.lit(None, t).alias(n)
        for n, t in CASE_DURATION_SCHEMA.items()
    ).sort(level, "department", "category", nulls_last=True)
