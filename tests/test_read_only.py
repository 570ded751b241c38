"""The read-only role really is read-only: each way a reader could change something or hold up the
pipeline, tried as `assay_reader` against the real server."""

import threading

import psycopg
import pytest

from assay.core import database
from assay.core.database import READER_ROLE, reader_options
from assay.landing import bronze

pytestmark = pytest.mark.integration

LARGE_OBJECT_WRITES = (
    "select lo_from_bytea(0, 'persisted')",
    "select lo_create(0)",
    "select lo_creat(-1)",
    "select lo_put(0, 0, 'x')",
    "select lo_import('/etc/hostname')",
)


def _refused(conn: psycopg.Connection, statement: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


@pytest.mark.embedded  # on an external server the DBA revokes these (README, "External PostgreSQL")
def test_the_reader_cannot_create_large_objects(postgres, conn):
    before = conn.execute("select count(*) from pg_largeobject_metadata").fetchone()[0]
    with psycopg.connect(postgres.reader_url(), autocommit=True) as reader:  # as with psql
        allowed = [s for s in LARGE_OBJECT_WRITES if not _refused(reader, s)]
    assert not allowed, f"the reader could run: {allowed}"
    assert conn.execute("select count(*) from pg_largeobject_metadata").fetchone()[0] == before
    # the owner keeps them (assay itself uses none, but nothing else may break)
    with conn.transaction(force_rollback=True):
        assert conn.execute("select lo_from_bytea(0, 'owner')").fetchone()[0]


def test_settings_the_reader_stores_for_itself_change_nothing(postgres, conn):
    with psycopg.connect(postgres.reader_url(), autocommit=True) as reader:  # as with psql
        # PostgreSQL lets every role store settings for itself; nothing can forbid it
        for setting in (
            "default_transaction_read_only = off",
            "statement_timeout = 0",
            "search_path = pg_catalog",
            "lock_timeout = 1",
        ):
            reader.execute(f"alter role {READER_ROLE} set {setting}")
    try:
        options = reader_options(5000, idle_in_transaction_session_timeout=10000)
        with psycopg.connect(postgres.reader_url(), autocommit=True, options=options) as fresh:
            shown = dict(
                fresh.execute(
                    "select name, setting from pg_settings where name = any(%s)",
                    [["default_transaction_read_only", "statement_timeout", "search_path", "lock_timeout"]],
                ).fetchall()
            )
            assert shown == {
                "default_transaction_read_only": "on",
                "statement_timeout": "5000",
                "search_path": "public",
                "lock_timeout": "0",
            }
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                fresh.execute("create temp table t (a int)")
        with postgres.connect(reader=True, autocommit=True) as plain:
            assert plain.execute("show default_transaction_read_only").fetchone()[0] == "on"
    finally:
        # the next start of any assay process forgets them
        database._bootstrapped.cache_clear()
        postgres.url()
    stored = conn.execute(
        "select count(*) from pg_db_role_setting s join pg_roles r on r.oid = s.setrole where r.rolname = %s",
        [READER_ROLE],
    ).fetchone()[0]
    if not postgres.is_embedded:  # an ordinary owner may not alter the reader: the DBA clears them
        with psycopg.connect(postgres.reader_url(), autocommit=True) as reader:
            reader.execute(f"alter role {READER_ROLE} reset all")
        return
    assert stored == 0


def test_the_reader_cannot_take_or_hold_the_loaders_lock(postgres, tmp_path):
    source = "unit_reader_lock"
    landing = tmp_path / "landing"
    (landing / source).mkdir(parents=True)
    (landing / source / "a.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    with postgres.connect(autocommit=True) as owner:  # a source table laid out like the migrated ones
        owner.execute(f"create table if not exists bronze.{source} (like bronze.transactions including all)")

    reader = psycopg.connect(postgres.reader_url())  # as with psql: no read-only session
    try:
        reader.execute("select 1")  # one open transaction: whatever the reader takes, it holds
        attacks = {
            "advisory": f"select pg_advisory_lock(hashtext('assay.bronze.{source}'))",
            "advisory_xact": f"select pg_advisory_xact_lock(hashtext('assay.bronze.{source}'))",
            "bootstrap": "select pg_advisory_xact_lock(hashtext('assay.bootstrap'))",
            "table": f"lock table bronze.{source} in access exclusive mode",
            "row": "select * from bronze.load_batches for update",
        }
        taken = [name for name, statement in attacks.items() if not _refused(reader, statement)]
        if postgres.is_embedded:
            assert not taken, f"the reader took: {taken}"
        else:  # without a DBA's revoke a reader may take advisory locks; the loader ignores them
            assert "table" not in taken and "row" not in taken

        done: list[bronze.FileLoad] = []
        loader = threading.Thread(
            target=lambda: done.extend(bronze.load_source(postgres, source, landing)), daemon=True
        )
        loader.start()
        loader.join(timeout=60)
        assert done and done[0].rows == 2, "the loader waited on the reader"
    finally:
        reader.close()
