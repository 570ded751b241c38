"""Process statistics over the whole event log with polars: DFG, variants, bottlenecks, durations.

Every function takes the normalised log of `assets/process_log.py` (`case_id`, `event_index`,
`activity`, `event_ts`, `resource`, sorted by case and position) and returns the rows of one gold
table. Durations are in hours; percentiles are linear interpolations (as Postgres'
`percentile_cont`, numpy and pm4py compute them).
"""

import hashlib

import polars as pl

SEPARATOR = "\x1f"  # joins a variant's activities into one key; cannot occur in an activity name
ARROW = " → "


def _hours_stats(column: str, prefix: str = "") -> list[pl.Expr]:
    c = pl.col(column)
    return [
        c.mean().alias(f"{prefix}mean_hours"),
        c.median().alias(f"{prefix}median_hours"),
        c.quantile(0.95, interpolation="linear").alias(f"{prefix}p95_hours"),
        c.min().alias(f"{prefix}min_hours"),
        c.max().alias(f"{prefix}max_hours"),
    ]


def transitions(events: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """One row per event: the activity before it in its case (null for the first) and the hours since.

    Relies on the log's order (case, position): a shift and a comparison, no sort, no group-by.
    """
    same_case = pl.col("case_id") == pl.col("case_id").shift(1)
    return events.lazy().select(
        "case_id",
        source=pl.when(same_case).then(pl.col("activity").shift(1)),
        target="activity",
        hours=pl.when(same_case).then(
            (pl.col("event_ts") - pl.col("event_ts").shift(1)).dt.total_microseconds() / 3.6e9
        ),
        is_last=(pl.col("case_id") != pl.col("case_id").shift(-1)).fill_null(True),
    )


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


def directly_follows(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The directly-follows graph: `follows` edges with frequency and transition-time statistics,
    plus `start` (source null) and `end` (target null) edges counting cases that start / end there.
    """
    steps = transitions(events)
    follows = (
        steps.filter(pl.col("source").is_not_null())
        .group_by("source", "target")
        .agg(pl.len().alias("frequency"), *_hours_stats("hours"))
        .with_columns(edge_kind=pl.lit("follows"))
    )
    starts = (
        steps.filter(pl.col("source").is_null())
        .group_by("target")
        .agg(pl.len().alias("frequency"))
        .with_columns(edge_kind=pl.lit("start"), source=pl.lit(None, pl.String))
    )
    ends = (
        steps.filter(pl.col("is_last"))
        .group_by(pl.col("target").alias("source"))
        .agg(pl.len().alias("frequency"))
        .with_columns(edge_kind=pl.lit("end"), target=pl.lit(None, pl.String))
    )
    parts = pl.collect_all([follows, starts, ends])
    order = pl.col("edge_kind").replace_strict({"start": 0, "follows": 1, "end": 2}, return_dtype=pl.Int8)
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .select(
            pl.col(name).cast(dtype) if name in DFG_SCHEMA else pl.col(name)
            for name, dtype in DFG_SCHEMA.items()
        )
        .sort(order, "frequency", "source", "target", descending=[False, True, False, False], nulls_last=True)
    )


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
            key=pl.col("activity").str.join(SEPARATOR),
            hours=(pl.col("event_ts").last() - pl.col("event_ts").first()).dt.total_microseconds() / 3.6e9,
        )
        .collect()
    )
    total = traces.height
    stats = (
        traces.group_by("key")
        .agg(pl.len().alias("cases"), *_hours_stats("hours"))
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


def bottlenecks(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Activities and edges ranked by the time cases wait for them.

    The log has one (completion) timestamp per event, so an activity's waiting time and its sojourn
    time are the same thing: the hours from the case's previous event until it. `activity` rows
    (`target` = the activity) aggregate that over every predecessor, `edge` rows per predecessor.
    `share_of_wait` is the part of all waiting in the log; ranks are 1 = slowest.
    """
    steps = transitions(events).filter(pl.col("source").is_not_null())
    stats = [
        pl.len().alias("occurrences"),
        pl.col("hours").mean().alias("mean_hours"),
        pl.col("hours").median().alias("median_hours"),
        pl.col("hours").quantile(0.95, interpolation="linear").alias("p95_hours"),
        pl.col("hours").sum().alias("total_hours"),
    ]
    by_activity = (
        steps.group_by("target")
        .agg(stats)
        .with_columns(kind=pl.lit("activity"), source=pl.lit(None, pl.String))
    )
    by_edge = steps.group_by("source", "target").agg(stats).with_columns(kind=pl.lit("edge"))
    parts = []
    for part in pl.collect_all([by_activity, by_edge]):
        total = part["total_hours"].sum()
        parts.append(
            part.with_columns(
                share_of_wait=pl.col("total_hours") / total if total else pl.lit(0.0),
                rank_by_total=pl.col("total_hours").rank("ordinal", descending=True),
                rank_by_mean=pl.col("mean_hours").rank("ordinal", descending=True),
            ).sort("rank_by_total")
        )
    frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame(schema=BOTTLENECK_SCHEMA)
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
