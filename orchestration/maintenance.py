"""Maintenance from the Dagster UI: retract a bad landing file (the same as `assay bronze retract`).

Launch `retract_file` from the UI's Jobs page with its config (the file's ledger name, e.g.
`transactions/transactions-2025-03-14.jsonl`, and a reason); the next pipeline run rebuilds silver,
gold and platinum without the file's rows, which stay in bronze for audit.

`backup_database` writes a backup of the assay database (`assay db backup`) to
`$ASSAY_HOME/backups` and keeps the newest ASSAY_BACKUP_KEEP; its schedule runs it daily at 02:00 UTC.

`apply_retention` removes what each layer keeps no longer (core/retention.py, `assay retention`); its
schedule runs it daily at 02:30 UTC, after the backup.
"""

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)

from assay.core import backup, retention
from assay.core.database import DatabaseError, PostgresResource
from assay.core.settings import get_settings
from assay.landing.bronze import retract_file


class RetractConfig(Config):
    source_file: str
    """The file's name in bronze's ledger (`assay bronze files`): `<source>/<file name>`."""
    reason: str = "retracted by a user"
    undo: bool = False
    """Make a retracted file's rows active again."""


@op(description="Retract (or with undo, restore) every loaded version of one landing file.")
def retract_landing_file(
    context: OpExecutionContext, config: RetractConfig, postgres: PostgresResource
) -> None:
    with postgres.connect(autocommit=True) as conn:
        changed = retract_file(conn, config.source_file, config.reason, undo=config.undo)
    if not changed:
        raise Failure(
            f"no {'retracted' if config.undo else 'active'} loaded file named {config.source_file!r}; "
            "`assay bronze files` lists the ledger's names"
        )
    rows = sum(f.rows for f in changed)
    done = "active again" if config.undo else "retracted"
    context.log.info(
        f"{config.source_file}: {rows} rows {done}; the next pipeline run rebuilds silver and up"
    )


@job(
    name="retract_file",
    description="Retract a bad landing file: its rows stay in bronze for audit and leave silver, gold "
    "and platinum at the next pipeline run (`assay bronze retract` on the command line).",
)
def retract_file_job() -> None:
    retract_landing_file()


@op(
    description="pg_dump the assay database to $ASSAY_HOME/backups; "
    "delete the oldest beyond ASSAY_BACKUP_KEEP."
)
def write_backup(context: OpExecutionContext, postgres: PostgresResource) -> Output:
    try:
        done = backup.backup(postgres=postgres)
    except DatabaseError as exc:
        raise Failure(str(exc)) from exc
    keep = get_settings().backup_keep
    removed = backup.prune(done.path.parent, keep)
    context.log.info(f"backup {done.path} ({done.bytes:,} bytes); removed {len(removed)} beyond {keep}")
    return Output(
        None,
        metadata={
            "file": MetadataValue.path(str(done.path)),
            "bytes": done.bytes,
            "seconds": round(done.seconds, 2),
            "kept": keep,
            "removed": MetadataValue.json([p.name for p in removed]),
        },
    )


@job(
    name="backup_database",
    description="Back up the assay database (pg_dump -Fc, as `assay db backup`) and keep the newest "
    "ASSAY_BACKUP_KEEP backups (default 7).",
)
def backup_database_job() -> None:
    write_backup()


backup_schedule = ScheduleDefinition(
    name="daily_backup",
    job=backup_database_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 02:00 UTC: a backup of the assay database (an RPO of 24 hours).",
)


class RetentionConfig(Config):
    dry_run: bool = False
    """Count what would be removed; remove nothing."""


@op(
    description="Remove what each layer keeps no longer (ASSAY_RETENTION_*): whole partitions where a "
    "table is partitioned, else batched deletes; never a row silver or gold still needs."
)
def remove_expired(
    context: OpExecutionContext, config: RetentionConfig, postgres: PostgresResource
) -> Output:
    with postgres.connect(autocommit=True) as conn:
        report = retention.apply(conn, dry_run=config.dry_run, echo=context.log.info)
    verb = "would remove" if report.dry_run else "removed"
    context.log.info(f"retention {verb} {report.rows:,} rows")
    meta = report.as_metadata()
    return Output(
        None,
        metadata={
            "dry_run": report.dry_run,
            "rows_removed": report.rows,
            "removed": MetadataValue.json(meta["removed"]),
            "horizons": MetadataValue.json(meta["horizons"]),
            "partitions_dropped": MetadataValue.json(meta["partitions_dropped"]),
        },
    )


@job(
    name="apply_retention",
    description="Remove rows older than each layer's retention (ASSAY_RETENTION_*, "
    "ASSAY_AUDIT_RETENTION_DAYS), as `assay retention`; what it removed is the run's metadata.",
)
def apply_retention_job() -> None:
    remove_expired()


retention_schedule = ScheduleDefinition(
    name="daily_retention",
    job=apply_retention_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 02:30 UTC, after the backup: retention (`apply_retention`).",
)
