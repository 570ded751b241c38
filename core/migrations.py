"""Versioned migrations of the tables Python owns, applied with yoyo-migrations.

The migrations are plain SQL files in `core/migrations/` (package data), one per owning concern,
named `NNNN-<what>.sql`; each names the one before it in a `-- depends:` header, so they apply in
order. yoyo keeps the history in its own tables (`_yoyo_migration`, `_yoyo_log`, `_yoyo_version`,
`yoyo_lock`, in the owner's default schema). The first migrations are the baseline: `if not exists`
throughout, so a home whose tables the code made before migrations existed adopts them as they are.
dbt owns silver, gold and platinum's models; nothing here touches them.

`migrate` runs once per process and database, from the bootstrap in `assay.core.database`. Several
processes may bootstrap at once (run workers, tests): yoyo's lock lets one apply, and the others find
nothing left to do. A lock left by a process killed while migrating is cleared by the next one.
"""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import urlencode

from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 120  # how long a process waits for another one's migrations
ADVISORY_LOCK = 0x61737361795F6D69  # "assay_mi": every migrating process holds it (see `migrate`)


def yoyo_uri(url: str) -> str:
    """A libpq URL or conninfo as yoyo's URI for psycopg 3 (`postgresql+psycopg`).

    Every connection parameter travels in the query string, which yoyo hands to `psycopg.connect`
    as is (the database name too: yoyo does not unquote the URI's path): a unix-socket host, a
    password or database name with any character, sslmode and the rest need no rules of their own.
    """
    return f"postgresql+psycopg:///?{urlencode(conninfo_to_dict(url))}"


def migrate(url: str) -> list[str]:
    """Apply the pending migrations to the database at `url`; returns the ids applied here."""
    from yoyo import get_backend, read_migrations

    with resources.as_file(resources.files("assay.core") / "migrations") as folder:
        migrations = read_migrations(str(folder))
        with get_backend(yoyo_uri(url)) as backend:
            if not backend.to_apply(migrations):  # the common case: nothing to do, no lock taken
                return []
            # yoyo's lock is a row, which a process killed while migrating would leave behind for good;
            # the advisory lock (gone with its connection) lets whoever holds it clear such a row first
            backend.execute(f"select pg_advisory_lock({ADVISORY_LOCK})")
            try:
                backend.break_lock()
                with backend.lock(timeout=LOCK_TIMEOUT_S):
                    todo = backend.to_apply(migrations)  # another process may have applied them meanwhile
                    backend.apply_migrations(todo)
            finally:
                backend.execute(f"select pg_advisory_unlock({ADVISORY_LOCK})")
    applied = [m.id for m in todo]
    if applied:
        log.info("applied migrations %s", ", ".join(applied))
    return applied
