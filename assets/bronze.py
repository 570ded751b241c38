"""Bronze assets: one per source, loading its landing files with the bronze loader
(`assay.landing.bronze`): one row per source record, nothing dropped."""

from dagster import AssetCheckSpec, AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset
from psycopg import sql

from assay.assets.partitions import daily_partitions, single_run, window_days
from assay.core.database import PostgresResource
from assay.core.retries import retry_transient
from assay.core.settings import get_settings
from assay.landing.bronze import load_source
from assay.landing.files import (
    PARTITIONED_SOURCES,
    SOURCES,
    files_without_partition,
    without_partition_message,
)
from assay.quality.drift import batch_drift, expected_fields


def _bronze_asset(source: str):
    key = AssetKey(["bronze", source])
    partitioned = source in PARTITIONED_SOURCES
    what = "the files of the partition's day (`<name>-YYYY-MM-DD.<ext>`)" if partitioned else "new files"

    @asset(
        key=key,
        group_name="bronze",
        description=f"Raw `{source}` records from `$ASSAY_HOME/landing/{source}/` ({what}), one row per "
        "line, payload as JSONB; lines that do not parse are kept with `parse_error`.",
        kinds={"python", "postgres"},
        metadata={"table": f"bronze.{source}"},
        partitions_def=daily_partitions if partitioned else None,
        backfill_policy=single_run if partitioned else None,
        check_specs=[
            AssetCheckSpec(
                "schema_drift",
                asset=key,
                description="Fields of the files loaded in this run against the expected fields "
                f"({', '.join(expected_fields(source))}): extra, missing, probably renamed. WARN only: "
                "drifting files still load in full (quality/drift.py).",
            )
        ],
    )
    @retry_transient
    def _load(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
        landing_dir = get_settings().landing_dir
        days = window_days(context.partition_time_window) if partitioned else None
        loads = load_source(postgres, source, landing_dir, days)
        new = [f for f in loads if not f.skipped]
        rows = sum(f.rows for f in new)
        seconds = sum(f.seconds for f in new)
        for f in new:
            context.log.info(f"{f.source_file}: {f.rows} rows, {f.parse_errors} parse errors")
        # a file loaded again under its name, put back, or a copy of a file loaded before
        replaced = [f.note for f in loads if f.note]
        for note in replaced:
            context.log.warning(note)
        unplaced = [
            rel
            for rel in files_without_partition(landing_dir, daily_partitions.start.date())
            if rel.startswith(f"{source}/")
        ]
        for rel in unplaced:
            context.log.warning(without_partition_message(rel))
        table = sql.Identifier(f"{source}_active")  # the rows silver reads
        with postgres.connect() as conn:
            if days is None:
                count = conn.execute(sql.SQL("select count(*) from bronze.{}").format(table))
            else:  # the rows of this run's window
                count = conn.execute(
                    sql.SQL("select count(*) from bronze.{} where partition_date between %s and %s").format(
                        table
                    ),
                    list(days),
                )
            row_count = count.fetchone()[0]
            drift = batch_drift(conn, source, [f.batch_id for f in new if f.batch_id])
        drift_result = drift.check_result(key)
        metadata = {
            "files_loaded": len(new),
            "files_skipped": len(loads) - len(new),
            "rows_loaded": rows,
            "parse_errors": sum(f.parse_errors for f in new),
            "rows_per_second": MetadataValue.float(round(rows / seconds, 1) if seconds else 0.0),
            "dagster/row_count": row_count,
            "files": MetadataValue.md(
                "\n".join(f"- `{f.source_file}`: {f.rows} rows" for f in new) or "no new files"
            ),
            "files_superseded": MetadataValue.md("\n".join(f"- {note}" for note in replaced) or "none"),
        }
        if partitioned:
            metadata["files_without_partition"] = MetadataValue.md(
                "\n".join(f"- {without_partition_message(rel)}" for rel in unplaced) or "none"
            )
        return MaterializeResult(metadata=metadata, check_results=[drift_result])

    return _load


bronze_assets = [_bronze_asset(source) for source in SOURCES]
