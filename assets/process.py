"""Process mining assets: DFG, variants, discovered model, conformance, bottlenecks, case durations.

One multi-asset reads the event log (`gold.process_event_log`, `gold.process_cases`) once and
writes eight `gold.process_*` tables, each replaced atomically with COPY. The analyses are the
process-mining library's (`assay.mining`); the event log asset loads what they mine.
The conformance check (overall token-replay fitness against a threshold) lives with the asset.
"""

import base64
import time

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from assay.core.database import PostgresResource
from assay.core.retries import retry_transient
from assay.core.settings import get_settings
from assay.core.tables import replace_table, table_schema
from assay.mining.log import (
    CASE_COLUMNS,
    CASES_TABLE,
    EVENT_COLUMNS,
    EVENT_LOG_TABLE,
    EventLogConfig,
    load_event_log,
)
from assay.mining.mine import (
    DESCRIPTIONS,
    PRIMARY_KEYS,
    TABLES,
    ProcessMiningConfig,
    mine,
    process_maps,
    read_event_log,
)

EVENT_LOG_KEY = AssetKey(["gold", "process_event_log"])
CASES_KEY = AssetKey(["gold", "process_cases"])
_SILVER_INPUTS = [AssetKey(["silver", name]) for name in ("events", "transactions", "employees", "vendors")]


def _gold_table_spec(key: AssetKey, table: str, columns, description: str) -> AssetSpec:
    return AssetSpec(
        key,
        deps=_SILVER_INPUTS,
        group_name="gold",
        kinds={"python", "polars", "postgres"},
        description=description,
        metadata={"table": table, "dagster/column_schema": table_schema(columns)},
    )


@multi_asset(
    specs=[
        _gold_table_spec(
            EVENT_LOG_KEY,
            EVENT_LOG_TABLE,
            EVENT_COLUMNS,
            "The event log being mined: one row per event, numbered per case "
            "(silver approval events by default; a CSV or XES log when configured).",
        ),
        _gold_table_spec(
            CASES_KEY,
            CASES_TABLE,
            CASE_COLUMNS,
            "One row per case of the event log: amount, category, department, vendor, "
            "first and last event, duration.",
        ),
    ],
    can_subset=False,
)
@retry_transient
def process_event_log(context: AssetExecutionContext, config: EventLogConfig, postgres: PostgresResource):
    source = config.source if config.source == "silver" else f"{config.source}: {config.path}"
    with postgres.connect(autocommit=True) as conn:
        started = time.perf_counter()
        events, cases, dropped = load_event_log(conn, config)
        read_s = time.perf_counter() - started
        replace_table(
            conn,
            EVENT_LOG_TABLE,
            EVENT_COLUMNS,
            events,
            primary_key=("case_id", "event_index"),
            comment=f"Event log being mined (source: {source}); one row per event, numbered per case.",
        )
        replace_table(
            conn,
            CASES_TABLE,
            CASE_COLUMNS,
            cases,
            primary_key=("case_id",),
            comment="One row per case of gold.process_event_log with its attributes and duration.",
        )
        write_s = time.perf_counter() - started - read_s
    context.log.info(
        f"event log from {source}: {events.height} events, {cases.height} cases, {dropped} dropped"
    )
    span = events.select(pl.col("event_ts").min().alias("first"), pl.col("event_ts").max().alias("last"))
    yield MaterializeResult(
        asset_key=EVENT_LOG_KEY,
        metadata={
            "source": source,
            "dagster/row_count": events.height,
            "cases": cases.height,
            "activities": events["activity"].n_unique(),
            "events_dropped_incomplete": dropped,
            "seconds_read_and_normalise": MetadataValue.float(round(read_s, 2)),
            "seconds_write": MetadataValue.float(round(write_s, 2)),
            "first_event": str(span["first"][0]),
            "last_event": str(span["last"][0]),
        },
    )
    yield MaterializeResult(
        asset_key=CASES_KEY,
        metadata={
            "dagster/row_count": cases.height,
            "cases_with_attributes": cases.filter(pl.col("amount").is_not_null()).height,
        },
    )


KEYS = {name: AssetKey(["gold", name]) for name in TABLES}
CONFORMANCE_CHECK = "conformance_fitness"


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
        result = mine(events, cases, config, progress=context.log.info)
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
            "alignment_coverage": MetadataValue.float(round(result.alignment_coverage, 6)),
        },
        "process_variant_deviations": {
            "variants_not_aligned": result.variants_not_aligned,
            "alignment_coverage": MetadataValue.float(round(result.alignment_coverage, 6)),
            "seconds_alignments": MetadataValue.float(round(result.alignment_seconds, 2)),
        },
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
        f"{'>=' if passed else '<'} threshold {config.fitness_threshold}; deviations known for "
        f"{result.alignment_coverage:.1%} of cases ({result.variants_not_aligned} variants not aligned)",
        metadata={
            "log_fitness": MetadataValue.float(round(result.log_fitness, 6)),
            "threshold": MetadataValue.float(config.fitness_threshold),
            "fitting_cases": result.fitting_cases,
            "non_fitting_cases": result.cases - result.fitting_cases,
            "fitting_case_share": MetadataValue.float(
                round(result.fitting_cases / result.cases, 6) if result.cases else 1.0
            ),
            "reference_version": result.reference_version,
            "alignment_coverage": MetadataValue.float(round(result.alignment_coverage, 6)),
            "variants_not_aligned": result.variants_not_aligned,
            "violation_rate_per_variant": MetadataValue.md(_violation_table(result.per_variant)),
            "violation_rate_by_variant_id": MetadataValue.json(
                {
                    r["variant_id"]: round(r["violation_rate"], 6)
                    for r in result.per_variant.iter_rows(named=True)
                }
            ),
        },
    )
    yield check


process_assets = [process_event_log, process_mining]
