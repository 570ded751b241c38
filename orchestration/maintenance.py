"""Maintenance from the Dagster UI: retract a bad landing file (the same as `assay bronze retract`).

Launch `retract_file` from the UI's Jobs page with its config (the file's ledger name, e.g.
`transactions/transactions-2025-03-14.jsonl`, and a reason); the next pipeline run rebuilds silver,
gold and platinum without the file's rows, which stay in bronze for audit.
"""

from dagster import Config, Failure, OpExecutionContext, job, op

from assay.core.database import PostgresResource
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
