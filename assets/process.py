"""Process mining assets: DFG, variants, discovered model, conformance, bottlenecks, case durations.

One multi-asset reads the event log (`gold.process_event_log`, `gold.process_cases`) once and
writes eight `gold.process_*` tables, each replaced atomically with COPY. Statistics over the whole
log are polars (`assets/process_stats.py`); pm4py (`assets/process_models.py`) discovers the model
and replays / aligns each *variant* against the reference model in `assets/reference_process.tree`.
The conformance check (overall token-replay fitness against a threshold) lives with the asset.
"""

import base64
import time
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from assets import process_map, process_models, process_stats
from assets.process_log import CASES_KEY, CASES_TABLE, EVENT_LOG_KEY, EVENT_LOG_TABLE, process_event_log
from assets.tables import read_frame, replace_table, table_schema
from orchestration.database import PostgresResource
from orchestration.retries import retry_transient
from orchestration.settings import get_settings
from quality.store import CheckRecorder


class ProcessMiningConfig(Config):
    reference_model: str | None = Field(
        default=None,
        description="Reference model file (.tree process tree or .pnml); default "
        "assets/reference_process.tree, the intended approval process.",
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
KEYS = {name: AssetKey(["gold", name]) for name in TABLES}
CONFORMANCE_CHECK = "conformance_fitness"


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


def mine(events: pl.DataFrame, cases: pl.DataFrame, config: ProcessMiningConfig) -> MiningResult:
    """Every analysis on a normalised event log (sorted by case and position) and its case table."""
    dfg = process_stats.directly_follows(events)
    variant_table, case_variants = process_stats.variants(events)
    sequences = process_stats.variant_sequences(variant_table)
    weights = variant_table["cases"]

    reference = process_models.load_reference_model(config.reference_model)
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
    alignments = process_models.align(reference, [sequences[r - 1] for r in aligned["variant_rank"]])
    deviation_rows, summaries = [], {}
    for row, alignment in zip(aligned.iter_rows(named=True), alignments, strict=True):
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
        variants_not_aligned=misfits.height - aligned.height,
        discovered_tree=discovered.tree_text,
        per_variant=per_variant,
        activity_counts=dict(zip(counts["activity"], counts["len"], strict=True)),
    )


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
        f"select case_id, event_index, activity, event_ts from {EVENT_LOG_TABLE}",
        {
            "case_id": pl.String,
            "event_index": pl.Int32,
            "activity": pl.String,
            "event_ts": pl.Datetime("us", "UTC"),
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


def _violation_table(per_variant: pl.DataFrame, limit: int = 25) -> str:
    lines = [
        "| rank | variant | cases | trace fitness | violating cases | violation rate |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in per_variant.sort("variant_rank").head(limit).iter_rows(named=True):
        lines.append(
            f"| {row['variant_rank']} | {row['variant']} | {row['cases']:,} | {row['trace_fitness']:.3f}"
            f" | {row['violating_cases']:,} | {row['violation_rate']:.0%} |"
        )
    if per_variant.height > limit:
        lines.append(f"\n{per_variant.height - limit} less frequent variants not shown.")
    return "\n".join(lines)


def _image_md(png: bytes, alt: str) -> MetadataValue:
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


@multi_asset(
    specs=[
        AssetSpec(
            KEYS[name],
            deps=[EVENT_LOG_KEY, CASES_KEY],
            group_name="gold",
            kinds={"python", "pm4py", "postgres"}
            if name
            in ("process_model", "process_model_arcs", "process_conformance", "process_variant_deviations")
            else {"python", "polars", "postgres"},
            description=DESCRIPTIONS[name],
            metadata={"table": f"gold.{name}", "dagster/column_schema": table_schema(TABLES[name])},
        )
        for name in TABLES
    ],
    check_specs=[
        AssetCheckSpec(
            CONFORMANCE_CHECK,
            asset=KEYS["process_conformance"],
            description="Token-replay fitness of the whole log against the reference model is at least "
            "the configured threshold (default 0.95; WARN, configurable to ERROR).",
            blocking=False,
        )
    ],
    can_subset=False,
)
@retry_transient
def process_mining(context: AssetExecutionContext, config: ProcessMiningConfig, postgres: PostgresResource):
    timings = {}
    with postgres.connect(autocommit=True) as conn:
        started = time.perf_counter()
        events, cases = read_event_log(conn)
        timings["read"] = time.perf_counter() - started
        result = mine(events, cases, config)
        timings["mine"] = time.perf_counter() - started - timings["read"]
        for name, frame in result.tables.items():
            replace_table(conn, f"gold.{name}", TABLES[name], frame, primary_key=PRIMARY_KEYS.get(name, ()))
    timings["write"] = time.perf_counter() - started - timings["read"] - timings["mine"]
    context.log.info(", ".join(f"{step} {seconds:.1f}s" for step, seconds in timings.items()))
    maps_md = {}
    if config.process_maps and events.height:
        folder = get_settings().home_dir / "process"
        folder.mkdir(parents=True, exist_ok=True)
        for view, png in process_maps(result).items():
            path = folder / f"process_map_{view}.png"
            path.write_bytes(png)
            maps_md[f"process_map_{view}"] = _image_md(png, f"process map, {view}")
            maps_md[f"process_map_{view}_file"] = MetadataValue.path(str(path))
    extra = {
        "process_dfg": {
            **{f"seconds_{step}": MetadataValue.float(round(sec, 2)) for step, sec in timings.items()},
            "edges": result.tables["process_dfg"].filter(pl.col("edge_kind") == "follows").height,
            "activities": len(result.activity_counts),
            **maps_md,
        },
        "process_variants": {
            "cases": result.cases,
            "top_variant_share": MetadataValue.float(
                float(result.tables["process_variants"]["case_share"].max() or 0.0)
            ),
        },
        "process_model": {
            "discovered_tree": MetadataValue.text(result.discovered_tree or ""),
            "reference_version": result.reference_version,
        },
        "process_conformance": {
            "log_fitness": MetadataValue.float(round(result.log_fitness, 6)),
            "fitting_cases": result.fitting_cases,
            "non_fitting_cases": result.cases - result.fitting_cases,
            "reference_version": result.reference_version,
        },
        "process_variant_deviations": {"variants_not_aligned": result.variants_not_aligned},
    }
    for name, frame in result.tables.items():
        yield MaterializeResult(
            asset_key=KEYS[name], metadata={"dagster/row_count": frame.height, **extra.get(name, {})}
        )
    passed = result.log_fitness >= config.fitness_threshold
    check = AssetCheckResult(
        asset_key=KEYS["process_conformance"],
        check_name=CONFORMANCE_CHECK,
        passed=passed,
        severity=AssetCheckSeverity(config.fitness_severity),
        description=f"log fitness {result.log_fitness:.4f} "
        f"{'>=' if passed else '<'} threshold {config.fitness_threshold}",
        metadata={
            "log_fitness": MetadataValue.float(round(result.log_fitness, 6)),
            "threshold": MetadataValue.float(config.fitness_threshold),
            "fitting_cases": result.fitting_cases,
            "non_fitting_cases": result.cases - result.fitting_cases,
            "fitting_case_share": MetadataValue.float(
                round(result.fitting_cases / result.cases, 6) if result.cases else 1.0
            ),
            "reference_version": result.reference_version,
            "violation_rate_per_variant": MetadataValue.md(_violation_table(result.per_variant)),
            "violation_rate_by_variant_id": MetadataValue.json(
                {
                    r["variant_id"]: round(r["violation_rate"], 6)
                    for r in result.per_variant.iter_rows(named=True)
                }
            ),
        },
    )
    with CheckRecorder(postgres, context.run_id) as recorder:  # `assay quality` lists it too
        yield recorder.add(check)


process_assets = [process_event_log, process_mining]
