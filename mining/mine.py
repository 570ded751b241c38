"""Every analysis of the event log: DFG, variants, discovered model, conformance, bottlenecks, case
durations and the process maps, on a normalised log (`assay.mining.log`).

Statistics over the whole log are polars (`stats`); pm4py (`models`) discovers the model and replays /
aligns each *variant* against the reference model (`reference_process.tree` beside this module).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from dagster import Config
from pydantic import Field

from assay.core.tables import read_frame
from assay.mining import maps as process_map
from assay.mining import models as process_models
from assay.mining import stats as process_stats
from assay.mining.alignments import align_bounded
from assay.mining.log import CASES_TABLE, EVENT_LOG_TABLE


class ProcessMiningConfig(Config):
    reference_model: str | None = Field(
        default=None,
        description="Reference model file (.tree process tree or .pnml); default "
        "the intended approval process shipped with assay (assay/mining/reference_process.tree).",
    )
    noise_threshold: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Inductive miner noise threshold; 0 = plain IM, >0 = IMf."
    )
    fitness_threshold: float = Field(
        default=0.95, ge=0.0, le=1.0, description="Conformance check fails below this log fitness."
    )
    fitness_severity: Literal["WARN", "ERROR"] = Field(
        default="WARN", description="Severity of a failed conformance check."
    )
    max_aligned_variants: int = Field(
        default=1000, ge=0, description="Non-fitting variants aligned (most frequent first)."
    )
    alignment_variant_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one variant's alignment may take before it is "
        "recorded as `not aligned` (pm4py's max_align_time_trace).",
    )
    alignment_budget_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds all alignments together may take; variants "
        "(most frequent first) not reached by then are recorded as `not aligned`.",
    )
    process_maps: bool = Field(default=True, description="Render the process map pictures.")


# table name -> columns (name, Postgres type as format_type spells it)
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "process_dfg": (
        ("edge_kind", "text not null"),
        ("source", "text"),
        ("target", "text"),
        ("frequency", "bigint not null"),
        ("mean_hours", "double precision"),
        ("median_hours", "double precision"),
        ("p95_hours", "double precision"),
        ("min_hours", "double precision"),
        ("max_hours", "double precision"),
    ),
    "process_variants": (
        ("variant_id", "text not null"),
        ("variant_rank", "integer not null"),
        ("variant", "text not null"),
        ("activities", "text[] not null"),
        ("length", "integer not null"),
        ("cases", "bigint not null"),
        ("case_share", "double precision not null"),
        ("mean_hours", "double precision"),
        ("median_hours", "double precision"),
        ("p95_hours", "double precision"),
        ("min_hours", "double precision"),
        ("max_hours", "double precision"),
    ),
    "process_model": (
        ("model", "text not null"),
        ("source", "text not null"),
        ("version", "text"),
        ("process_tree", "text"),
        ("pnml", "text not null"),
        ("places", "integer not null"),
        ("transitions", "integer not null"),
        ("silent_transitions", "integer not null"),
        ("arcs", "integer not null"),
        ("log_fitness", "double precision not null"),
        ("fitting_case_share", "double precision not null"),
    ),
    "process_model_arcs": (
        ("model", "text not null"),
        ("arc_id", "text not null"),
        ("source_id", "text not null"),
        ("source_kind", "text not null"),
        ("source_label", "text"),
        ("target_id", "text not null"),
        ("target_kind", "text not null"),
        ("target_label", "text"),
        ("weight", "integer not null"),
    ),
    "process_conformance": (
        ("case_id", "text not null"),
        ("variant_id", "text not null"),
        ("is_fit", "boolean not null"),
        ("trace_fitness", "double precision not null"),
        ("missing_tokens", "bigint not null"),
        ("remaining_tokens", "bigint not null"),
        ("consumed_tokens", "bigint not null"),
        ("produced_tokens", "bigint not null"),
        ("deviations", "text"),
        ("reference_version", "text not null"),
    ),
    "process_variant_deviations": (
        ("variant_id", "text not null"),
        ("variant_rank", "integer not null"),
        ("variant", "text not null"),
        ("cases", "bigint not null"),
        ("alignment_fitness", "double precision not null"),
        ("move_number", "integer not null"),
        ("move_type", "text not null"),
        ("activity", "text not null"),
        ("trace_position", "integer not null"),
        ("reference_version", "text not null"),
    ),
    "process_bottlenecks": (
        ("kind", "text not null"),
        ("source", "text"),
        ("target", "text not null"),
        ("occurrences", "bigint not null"),
        ("mean_hours", "double precision"),
        ("median_hours", "double precision"),
        ("p95_hours", "double precision"),
        ("total_hours", "double precision"),
        ("share_of_wait", "double precision"),
        ("rank_by_total", "integer not null"),
        ("rank_by_mean", "integer not null"),
    ),
    "process_case_durations": (
        ("grouping", "text not null"),
        ("department", "text"),
        ("category", "text"),
        ("cases", "bigint not null"),
        ("mean_hours", "double precision"),
        ("median_hours", "double precision"),
        ("p95_hours", "double precision"),
        ("min_hours", "double precision"),
        ("max_hours", "double precision"),
    ),
}
PRIMARY_KEYS = {
    "process_variants": ("variant_id",),
    "process_model": ("model",),
    "process_model_arcs": ("model", "arc_id"),
    "process_conformance": ("case_id",),
    "process_variant_deviations": ("variant_id", "move_number"),
}
DESCRIPTIONS = {
    "process_dfg": "Directly-follows graph: one row per edge with frequency and transition time "
    "(mean, median, p95 hours); `start`/`end` edges count the cases starting/ending at an activity. "
    "Process maps (frequency and performance views) are in the metadata.",
    "process_variants": "Variants (distinct activity sequences) with case count, share and case "
    "duration statistics, ranked by case count.",
    "process_model": "The discovered model (inductive miner) and the reference model as PNML text "
    "and process tree, with their token-replay fitness on the log.",
    "process_model_arcs": "The arcs of each model's Petri net (places, transitions, silent steps).",
    "process_conformance": "Token-based replay of every case against the reference model: fitness, "
    "token counts, and the deviating moves of its variant's alignment.",
    "process_variant_deviations": "Deviating moves of each non-fitting variant's optimal alignment "
    "with the reference model: `log` = done but not allowed, `model` = required but skipped.",
    "process_bottlenecks": "Activities and edges ranked by the time cases wait for them.",
    "process_case_durations": "Case duration by department and category, with rollups.",
}


@dataclass
class MiningResult:
    tables: dict[str, pl.DataFrame]
    reference_version: str
    log_fitness: float
    fitting_cases: int
    cases: int
    events: int
    variants_not_aligned: int
    discovered_tree: str | None
    per_variant: pl.DataFrame  # variant_id, variant_rank, variant, cases, trace_fitness, violating_cases, ...
    activity_counts: dict[str, int] = field(default_factory=dict)
    alignment_coverage: float = 1.0
    """Share of cases whose variant fits (nothing to align) or was aligned within the budget."""
    alignment_seconds: float = 0.0


def mine(
    events: pl.DataFrame,
    cases: pl.DataFrame,
    config: ProcessMiningConfig,
    progress: Callable[[str], None] | None = None,
) -> MiningResult:
    """Every analysis on a normalised event log (sorted by case and position) and its case table.

    `progress` receives progress lines of the long steps (alignments: variants done, ETA).
    A reference model that cannot be used raises `ModelError` before any analysis runs."""
    reference = process_models.load_reference_model(config.reference_model)
    absent = process_models.check_model_activities(reference, set(events["activity"].unique()))
    if absent and progress:
        progress(f"reference model activities never in the log: {', '.join(absent)}")
    dfg = process_stats.directly_follows(events)
    variant_table, case_variants = process_stats.variants(events)
    sequences = process_stats.variant_sequences(variant_table)
    weights = variant_table["cases"]

    discovered = process_models.discover_model(
        {tuple(s): int(c) for s, c in zip(sequences, weights, strict=True)}, config.noise_threshold
    )
    replayed = process_models.replay(reference, sequences)
    replayed_discovered = process_models.replay(discovered, sequences)
    by_variant = pl.concat(
        [variant_table.select("variant_id", "variant_rank", "variant", "cases"), replayed], how="horizontal"
    )

    # alignments only for the variants that do not fit (a fitting variant has no deviating move)
    misfits = by_variant.filter(~pl.col("is_fit")).sort("variant_rank")
    aligned = misfits.head(config.max_aligned_variants)
    bounded = align_bounded(
        reference,
        [sequences[r - 1] for r in aligned["variant_rank"]],
        aligned["cases"].to_list(),
        config.alignment_variant_timeout_s,
        config.alignment_budget_s,
        progress,
    )
    deviation_rows, summaries = [], {}
    for row in misfits.tail(misfits.height - aligned.height).iter_rows(named=True):
        summaries[row["variant_id"]] = (
            f"not aligned: beyond max_aligned_variants ({config.max_aligned_variants})"
        )
    for row, alignment, reason in zip(
        aligned.iter_rows(named=True), bounded.alignments, bounded.reasons, strict=True
    ):
        if alignment is None:
            summaries[row["variant_id"]] = reason
            continue
        summaries[row["variant_id"]] = "; ".join(
            f"{'extra' if kind == 'log' else 'missing'}: {activity}" for kind, activity, _ in alignment.moves
        )
        for number, (kind, activity, position) in enumerate(alignment.moves, start=1):
            deviation_rows.append(
                {
                    "variant_id": row["variant_id"],
                    "variant_rank": row["variant_rank"],
                    "variant": row["variant"],
                    "cases": row["cases"],
                    "alignment_fitness": alignment.fitness,
                    "move_number": number,
                    "move_type": kind,
                    "activity": activity,
                    "trace_position": position,
                    "reference_version": reference.version,
                }
            )
    deviations = pl.DataFrame(deviation_rows, schema=_schema("process_variant_deviations"))
    variant_conformance = by_variant.with_columns(
        deviations=pl.col("variant_id").replace_strict(summaries, default=None, return_dtype=pl.String)
    )
    conformance = (
        case_variants.join(variant_conformance.drop("variant_rank", "variant", "cases"), on="variant_id")
        .with_columns(reference_version=pl.lit(reference.version))
        .sort("case_id")
    )

    fitting_cases = int(by_variant.filter(pl.col("is_fit"))["cases"].sum())
    models = []
    for model, result in ((discovered, replayed_discovered), (reference, replayed)):
        places, transitions = process_models.ordered_nodes(model)
        models.append(
            {
                "model": model.name,
                "source": model.source,
                "version": model.version,
                "process_tree": model.tree_text,
                "pnml": process_models.to_pnml(model),
                "places": len(places),
                "transitions": len(transitions),
                "silent_transitions": sum(t.label is None for t in transitions),
                "arcs": len(model.net.arcs),
                "log_fitness": process_models.log_fitness(result, weights),
                "fitting_case_share": (
                    float(weights.filter(result["is_fit"]).sum() / weights.sum()) if weights.len() else 1.0
                ),
            }
        )
    tables = {
        "process_dfg": dfg,
        "process_variants": variant_table,
        "process_model": pl.DataFrame(models, schema=_schema("process_model")),
        "process_model_arcs": pl.concat(
            [process_models.arc_rows(discovered), process_models.arc_rows(reference)]
        ),
        "process_conformance": conformance,
        "process_variant_deviations": deviations,
        "process_bottlenecks": process_stats.bottlenecks(events, dfg),
        "process_case_durations": process_stats.case_durations(cases),
    }
    per_variant = by_variant.select(
        "variant_id",
        "variant_rank",
        "variant",
        "cases",
        "trace_fitness",
        violating_cases=pl.when(pl.col("is_fit")).then(0).otherwise(pl.col("cases")),
    ).with_columns(violation_rate=pl.col("violating_cases") / pl.col("cases"))
    counts = events.group_by("activity").len()
    return MiningResult(
        tables=tables,
        reference_version=reference.version or "",
        log_fitness=process_models.log_fitness(replayed, weights),
        fitting_cases=fitting_cases,
        cases=int(weights.sum()),
        events=events.height,
        variants_not_aligned=misfits.height - sum(a is not None for a in bounded.alignments),
        alignment_coverage=_coverage(weights.sum(), misfits, bounded.alignments),
        alignment_seconds=bounded.seconds,
        discovered_tree=discovered.tree_text,
        per_variant=per_variant,
        activity_counts=dict(zip(counts["activity"], counts["len"], strict=True)),
    )


def _coverage(total_cases: int, misfits: pl.DataFrame, alignments: list) -> float:
    if not total_cases:
        return 1.0
    missing = misfits["cases"].sum() - sum(
        c for c, a in zip(misfits["cases"], alignments, strict=False) if a is not None
    )
    return float(1 - missing / total_cases)


def _schema(table: str) -> dict[str, pl.DataType]:
    types = {
        "text": pl.String,
        "text[]": pl.String,
        "integer": pl.Int32,
        "bigint": pl.Int64,
        "double precision": pl.Float64,
        "boolean": pl.Boolean,
    }
    return {name: types[ddl.split(" not null")[0]] for name, ddl in TABLES[table]}


def read_event_log(conn) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The event log tables written by `process_event_log`, events in case order (no resources)."""
    # resources are not mined (yet): leaving them out saves a fifth of the bytes copied
    events = read_frame(
        conn,
        f"select case_id, event_index, activity, event_ts, start_ts from {EVENT_LOG_TABLE}",
        {
            "case_id": pl.String,
            "event_index": pl.Int32,
            "activity": pl.Categorical,  # the DFG groups on its codes; see `assay.mining.log.normalise`
            "event_ts": pl.Datetime("us", "UTC"),
            "start_ts": pl.Datetime("us", "UTC"),
        },
    ).sort("case_id", "event_index")
    cases = read_frame(
        conn,
        f"select case_id, department, category, duration_hours from {CASES_TABLE}",
        {"case_id": pl.String, "department": pl.String, "category": pl.String, "duration_hours": pl.Float64},
    )
    return events, cases


def process_maps(result: MiningResult) -> dict[str, bytes]:
    dfg = result.tables["process_dfg"]
    waits = result.tables["process_bottlenecks"].filter(pl.col("kind") == "activity")
    activity_waits = dict(zip(waits["target"], waits["median_hours"], strict=True))
    subtitle = f"{result.cases:,} cases, {result.events:,} events"
    titles = {
        "frequency": f"Process map, frequency: events per activity and edge ({subtitle})",
        "performance": f"Process map, performance: median wait per activity and edge ({subtitle})",
    }
    return {
        view: process_map.render(dfg, result.activity_counts, view, title, activity_waits)
        for view, title in titles.items()
    }
