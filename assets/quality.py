"""The quality gates: Dagster asset checks on silver and gold that are not dbt tests.

One check step per table (so a failing table blocks only what is built from it), holding:

| check | tables | severity | blocking |
| --- | --- | --- | --- |
| `dq_score` | silver, gold | ERROR | yes: overall score below the layer's threshold |
| `reject_rate_<class>` | silver | ERROR | yes: one reject reason class above its limit |
| `gx_profile` | silver, gold | WARN | no: Great Expectations distribution / row-count suite |

The gates of the daily tables (transactions, events) score the run's partition window (the days its
dbt models rebuilt, from the run's tags) and count the whole table; the others score whole tables.
`quality.dq_scores` records the window of each score (README: What a gate vouches for).

Row-level rules are dbt tests (they arrive as asset checks through dagster-dbt); the gates read the
reject reasons and the gold rules from the dbt project (`assay.quality.rules`), never restate them.

Blocking ERROR checks fail their step, and Dagster then skips every asset downstream of the table in
the same run: gold does not build on a failing silver table, platinum (and what follows it) not on
a failing gold table. Each run appends the scores to `quality.dq_scores` and observes them on the
asset (so they chart over time in the UI); the results reach `quality.check_results` from the run's
events, like every check's (`assay.quality.store.record_run_checks`).
"""

from collections.abc import Iterator, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetObservation,
    MetadataValue,
    multi_asset_check,
)

from assay.assets.metadata import table_value
from assay.assets.partitions import run_window
from assay.core.database import PostgresResource
from assay.landing.files import PARTITIONED_SOURCES
from assay.quality import store
from assay.quality.config import QualitySettings, get_quality_settings
from assay.quality.expectations import SUITE_KINDS, Facts, SuiteOutcome, read_facts, run_suite
from assay.quality.rules import DIMENSIONS, SILVER_TABLES, gold_rules, reason_dimension, source_reasons
from assay.quality.scores import gold_failing_rows, gold_score, reject_examples, silver_score

DQ_DESCRIPTION = (
    "DQ score gate: completeness, uniqueness, validity and timeliness as shares of rows; the overall "
    "score must reach the layer's threshold (ASSAY_DQ_{LAYER}_MIN_SCORE). History: quality.dq_scores."
)


def _spec(table_key: AssetKey, name: str, blocking: bool, description: str, deps: Sequence) -> AssetCheckSpec:
    return AssetCheckSpec(
        name, asset=table_key, blocking=blocking, description=description, additional_deps=deps
    )


def _gx_specs(key: AssetKey, deps: Sequence) -> list[AssetCheckSpec]:
    return [_spec(key, kind.check_name, kind.blocking, kind.description, deps) for kind in SUITE_KINDS]


def _silver_gate(table: str):
    key = AssetKey(["silver", table])
    deps = [AssetKey(["silver", "rejects"]), AssetKey(["bronze", table])]
    gx_deps = [*deps, AssetKey(["silver", "categories"])]
    specs = [
        _spec(key, "dq_score", True, DQ_DESCRIPTION.replace("{LAYER}", "SILVER"), deps),
        *[
            _spec(
                key,
                f"reject_rate_{reason_class}",
                True,
                f"Share of bronze.{table} rows rejected as `{reason_class}` "
                f"({reason_dimension(reason_class)}) stays within its limit (ASSAY_DQ_MAX_REJECT_RATE).",
                deps,
            )
            for reason_class in source_reasons(table)
        ],
        *_gx_specs(key, gx_deps),
    ]

    @multi_asset_check(
        specs=specs,
        name=f"quality_silver_{table}",
        description=f"Quality gate of silver.{table}: DQ score, reject rates, GX profile.",
    )
    def _gate(context: AssetCheckExecutionContext, postgres: PostgresResource) -> Iterator:
        def results(conn, score, threshold, passed, settings: QualitySettings) -> list:
            return [
                _dq_result(key, score, threshold, passed, _silver_hint(table)),
                *(
                    _reject_rate_result(
                        key,
                        table,
                        reason_class,
                        score,
                        settings,
                        reject_examples(conn, table, reason_class, settings.sample_rows),
                    )
                    for reason_class in source_reasons(table)
                ),
            ]

        # a daily table is scored on the days of the run (those its dbt models rebuilt), not whole
        window = run_window(context.run.tags) if table in PARTITIONED_SOURCES else None
        yield from _run_gate(
            context, postgres, key, "silver", lambda conn: silver_score(conn, table, window), results
        )

    return _gate


def _gold_gate(table: str):
    key = AssetKey(["gold", table])
    deps = [AssetKey(layer_table.split(".")) for layer_table in gold_rules()[table].upstream]
    gx_deps = [*deps, AssetKey(["silver", "categories"])]
    specs = [
        _spec(key, "dq_score", True, DQ_DESCRIPTION.replace("{LAYER}", "GOLD"), deps),
        *_gx_specs(key, gx_deps),
    ]

    @multi_asset_check(
        specs=specs,
        name=f"quality_gold_{table}",
        description=f"Quality gate of gold.{table}: DQ score and GX profile.",
    )
    def _gate(context: AssetCheckExecutionContext, postgres: PostgresResource) -> Iterator:
        def results(conn, score, threshold, passed, settings: QualitySettings) -> list:
            rows = [] if passed else gold_failing_rows(conn, table, settings.sample_rows)
            return [_dq_result(key, score, threshold, passed, _gold_hint(table), rows)]

        yield from _run_gate(context, postgres, key, "gold", lambda conn: gold_score(conn, table), results)

    return _gate


def _run_gate(
    context, postgres: PostgresResource, key: AssetKey, layer: str, score_of, results_of
) -> Iterator:
    """The body both gates share: score the table, record each result, run the GX suites, keep the history.

    `score_of(conn)` scores the table; `results_of(conn, score, threshold, passed, settings)` gives the
    layer's own results (the DQ score, and silver's reject rates).
    """
    settings = get_quality_settings()
    run_id = context.run.run_id
    with postgres.connect(autocommit=True) as conn:
        score = score_of(conn)
        threshold = settings.min_score(layer)
        # a source is also judged by an absolute floor: a handful of bad rows in a tiny source
        # must not block gold (gold itself has none: its rows are all built by assay)
        short = round(score.input_rows * (1 - score.overall))
        floor = settings.min_rejected_rows if layer == "silver" else 0
        passed = score.overall >= threshold - 1e-12 or short <= floor
        yield from results_of(conn, score, threshold, passed, settings)
        facts = read_facts(
            conn,
            store.previous_row_count(conn, score.table, run_id),
            settings.max_row_count_change,
            window=score.window,
            table_rows=score.whole_rows,
            window_rows=score.row_count,
        )
        yield from _gx_results(key, postgres, score.table, facts, settings)
        store.record_score(conn, run_id, score, threshold, passed)
    yield _observation(key, score, threshold)


# -- results ---------------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.2f} %"


def _dq_result(
    key: AssetKey,
    score: store.Score,
    threshold: float,
    passed: bool,
    hint: str,
    failing_rows: list[dict] | None = None,
) -> AssetCheckResult:
    dims = score.dimensions()
    dims_text = ", ".join(f"{d} {_pct(v)}" for d, v in dims.items())
    scope = (
        f" over {score.window[0]} .. {score.window[1]} ({score.input_rows:,} bronze rows of those days; "
        f"whole table {score.whole_rows:,} rows)"
        if score.window
        else ""
    )
    if passed:
        description = (
            f"{score.table}{scope}: {_pct(score.overall)} overall (threshold {_pct(threshold)}); {dims_text}."
        )
    else:
        # the dimensions that fall short, worst first, with how far below a perfect score they are
        short = sorted(((1 - v, d) for d, v in dims.items() if v < 1), reverse=True)
        causes = "; ".join(
            f"{d} {_pct(dims[d])} ({100 * gap:.2f} points short{_classes_text(score, d)})" for gap, d in short
        )
        description = (
            f"{score.table}{scope} scored {_pct(score.overall)} overall, "
            f"{100 * (threshold - score.overall):.2f} points below the {_pct(threshold)} threshold. "
            f"By dimension: {causes or dims_text}. {hint}"
        )
    metadata = {
        "table": score.table,
        "overall_pct": MetadataValue.float(round(100 * score.overall, 4)),
        **{f"{d}_pct": MetadataValue.float(round(100 * v, 4)) for d, v in dims.items()},
        "threshold_pct": MetadataValue.float(round(100 * threshold, 4)),
        "input_rows": score.input_rows,
        "row_count": score.row_count,
        "table_rows": score.whole_rows,
        "window": f"{score.window[0]} .. {score.window[1]}" if score.window else "whole table",
        "details": MetadataValue.json(score.details),
        "where_to_look": hint,
    }
    if failing_rows:
        metadata["failing_rows"] = table_value(failing_rows)
    return AssetCheckResult(
        asset_key=key,
        check_name="dq_score",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def _classes_text(score: store.Score, dimension: str) -> str:
    by_class = score.details.get("rejected_by_class")
    if not by_class or not score.input_rows:
        return ""
    parts = [
        f"{c} {100 * n / score.input_rows:.2f} %"
        for c, n in sorted(by_class.items(), key=lambda item: -item[1])
        if n and reason_dimension(c) == dimension
    ]
    if dimension == "completeness" and score.details.get("unaccounted_rows"):
        parts.append(f"{score.details['unaccounted_rows']:,} bronze rows in neither silver nor rejects")
    return ": " + ", ".join(parts) if parts else ""


def _reject_rate_result(
    key: AssetKey,
    table: str,
    reason_class: str,
    score: store.Score,
    settings: QualitySettings,
    examples: list[dict],
) -> AssetCheckResult:
    n = score.details["rejected_by_class"].get(reason_class, 0)
    rate = n / score.input_rows if score.input_rows else 0.0
    limit = settings.reject_rate_limit(reason_class)
    passed = rate <= limit + 1e-12 or n <= settings.min_rejected_rows
    base = (
        f"{reason_class}: {_pct(rate)} of bronze.{table} rows ({n:,} of {score.input_rows:,}) "
        f"rejected, limit {_pct(limit)} (or at most {settings.min_rejected_rows:,} rows)"
    )
    where = f"silver.rejects where source = '{table}' and reason_class = '{reason_class}'"
    description = (
        f"{base}." if passed else f"{base}: {100 * (rate - limit):.2f} points over. Look at {where}."
    )
    metadata = {
        "rejected_rows": n,
        "bronze_rows": score.input_rows,
        "rate_pct": MetadataValue.float(round(100 * rate, 4)),
        "limit_pct": MetadataValue.float(round(100 * limit, 4)),
        "floor_rows": settings.min_rejected_rows,
        "dimension": reason_dimension(reason_class),
        "where_to_look": where,
    }
    if examples:
        metadata["examples"] = table_value(examples)
    return AssetCheckResult(
        asset_key=key,
        check_name=f"reject_rate_{reason_class}",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def _gx_results(
    key: AssetKey,
    postgres: PostgresResource,
    table: str,
    facts: Facts,
    settings: QualitySettings,
) -> Iterator[AssetCheckResult]:
    for kind in SUITE_KINDS:
        outcome: SuiteOutcome = run_suite(postgres, table, kind.check_name, facts, settings.sample_rows)
        metadata = {
            "suite": outcome.suite,
            "expectations": outcome.evaluated,
            "failed_expectations": len(outcome.failures),
            "window": f"{outcome.window[0]} .. {outcome.window[1]}" if outcome.window else "whole table",
        }
        if outcome.failures:
            metadata["failures"] = table_value(outcome.failures)
        if outcome.failing_rows:
            metadata["failing_rows"] = table_value(outcome.failing_rows)
        yield AssetCheckResult(
            asset_key=key,
            check_name=kind.check_name,
            passed=outcome.passed,
            severity=kind.severity,
            description=outcome.summary(),
            metadata=metadata,
        )


def _observation(key: AssetKey, score: store.Score, threshold: float) -> AssetObservation:
    return AssetObservation(
        asset_key=key,
        metadata={
            "dq/overall_pct": MetadataValue.float(round(100 * score.overall, 4)),
            **{f"dq/{d}_pct": MetadataValue.float(round(100 * getattr(score, d), 4)) for d in DIMENSIONS},
            "dq/threshold_pct": MetadataValue.float(round(100 * threshold, 4)),
            "dq/input_rows": score.input_rows,
            "dq/table_rows": score.whole_rows,
        },
    )


def _silver_hint(table: str) -> str:
    return (
        f"Look at silver.rejects (select reason, count(*) from silver.rejects where source = '{table}'"
        " group by 1 order by 2 desc) or run `assay quality`."
    )


def _gold_hint(table: str) -> str:
    return (
        f"The failing rows of gold.{table} are in this check's metadata; gold is built from silver, "
        "so also look at silver.rejects and run `assay quality`."
    )


quality_checks = [
    *[_silver_gate(table) for table in SILVER_TABLES],
    *[_gold_gate(table) for table in gold_rules()],
]
