"""The migrations of the tables Python owns (core/migrations/): a fresh database gets them all with
their history, a database made by the code before migrations adopts them, and two processes
migrating at once both succeed."""

import multiprocessing
from importlib import resources

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from assay.core.database import SCHEMAS
from assay.core.migrations import migrate, yoyo_uri

pytestmark = pytest.mark.integration

MIGRATIONS = sorted(
    p.name.removesuffix(".sql")
    for p in (resources.files("assay.core") / "migrations").iterdir()
    if p.name.endswith(".sql")
)
OWNED = (
    "bronze.load_batches",
    "bronze.transactions",
    "bronze.events",
    "bronze.vendors",
    "bronze.employees",
    "platinum.embedding_models",
    "platinum.embeddings",
    "quality.dq_scores",
    "quality.check_results",
    "quality.daily_reports",
    "quality.run_failures",
    "agents.runs",
    "agents.answers",
    "agents.questions",
    "api.keys",
    "quality.alerts_sent",
    "audit.api_access",
    "quality.retention_horizons",
)


@pytest.fixture
def blank(postgres, request) -> str:
    """A new empty database on the session's server with what the bootstrap makes before migrating:
    the vector extension and the schemas."""
    if not postgres.is_embedded:
        pytest.skip("makes databases: needs the embedded server's superuser")
    name = f"assay_migrate_{request.node.name[-20:].lower()}"
    with postgres.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = make_conninfo(**{**conninfo_to_dict(postgres.url()), "dbname": name})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create extension vector")
        for schema in SCHEMAS:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    yield url
    with postgres.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _applied(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("select migration_id from _yoyo_migration order by migration_id")]


def _missing(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [t for t in OWNED if conn.execute("select to_regclass(%s)", [t]).fetchone()[0] is None]


def test_yoyo_uri_keeps_every_connection_parameter():
    conninfo = make_conninfo(
        host="/tmp/pg dir", port=5433, user="me", password="p@ss&w=rd", dbname="a/b c", sslmode="disable"
    )
    uri = yoyo_uri(conninfo)
    assert uri.startswith("postgresql+psycopg:///?")
    from yoyo.connections import parse_uri

    assert parse_uri(uri).args == {
        "host": "/tmp/pg dir",
        "port": "5433",
        "user": "me",
        "password": "p@ss&w=rd",
        "dbname": "a/b c",
        "sslmode": "disable",
    }


def test_the_session_database_is_migrated(postgres):
    url = postgres.url()  # the bootstrap migrated it
    assert _applied(url) == MIGRATIONS
    assert _missing(url) == []
    assert migrate(url) == []  # once applied, nothing to do


def test_a_fresh_database_gets_every_migration_and_its_history(blank):
    assert _missing(blank) == list(OWNED)
    assert migrate(blank) == MIGRATIONS
    assert _missing(blank) == []
    assert _applied(blank) == MIGRATIONS
    with psycopg.connect(blank) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables where tablename like '%yoyo%'")}
        assert {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"} <= tables
        # the lock is released
        assert conn.execute("select count(*) from yoyo_lock").fetchone()[0] == 0
    assert migrate(blank) == []


def test_a_home_made_before_migrations_adopts_them(blank):
    """Tables as the old `create ... if not exists` code left them: a bronze table from before
    partitions (no partition_date), a check recorded twice in one run, no history at all."""
    with psycopg.connect(blank, autocommit=True) as conn:
        conn.execute("""
            create table bronze.transactions (
                bronze_id bigint generated always as identity, batch_id uuid not null,
                source_file text not null, line_number integer not null, record jsonb, raw_text text,
                parse_error text,
                content_hash text not null generated always as (md5(coalesce(record::text, raw_text))) stored,
                loaded_at timestamptz not null default now(),
                check ((record is null) = (parse_error is not null)))""")
        conn.execute("""
            create table quality.check_results (
                result_id bigint generated always as identity primary key, run_id text not null,
                asset_key text not null, check_name text not null, passed boolean not null,
                severity text not null, description text, metadata jsonb not null default '{}',
                evaluated_at timestamptz not null default now())""")
        conn.execute(
            "insert into quality.check_results (run_id, asset_key, check_name, passed, severity)"
            " values ('r1', 'silver/transactions', 'dq_score', false, 'ERROR'),"
            " ('r1', 'silver/transactions', 'dq_score', true, 'ERROR'),"
            " ('r1', 'gold/vendor_spend', 'dq_score', true, 'ERROR')"
        )
    assert migrate(blank) == MIGRATIONS
    assert _missing(blank) == []
    with psycopg.connect(blank) as conn:
        assert conn.execute(
            "select count(*) from information_schema.columns where table_schema = 'bronze'"
            " and table_name = 'transactions' and column_name = 'partition_date'"
        ).fetchone()[0]
        # a duplicate keeps its latest row
        rows = conn.execute(
            "select asset_key, passed from quality.check_results order by asset_key"
        ).fetchall()
        assert rows == [("gold/vendor_spend", True), ("silver/transactions", True)]
        # the stored row hash is gone from every bronze table (0022)
        assert not conn.execute(
            "select table_name from information_schema.columns where table_schema = 'bronze'"
            " and column_name = 'content_hash' and table_name = any(%s)",
            [["transactions", "events", "vendors", "employees"]],
        ).fetchall()

    # the baseline is idempotent: forgetting the history and migrating again changes nothing
    with psycopg.connect(blank, autocommit=True) as conn:
        conn.execute("delete from _yoyo_migration")
    assert migrate(blank) == MIGRATIONS
    assert _applied(blank) == MIGRATIONS


def test_the_row_hash_leaves_bronze_and_the_views_over_it_keep_working(blank):
    """0022 drops the stored `content_hash` of a home that has rows and dbt views over the `_active`
    views (as silver's `int_vendors_checked`): the dependent view survives, and the `_active` view
    computes the same hash on read."""
    from yoyo import get_backend, read_migrations

    with resources.as_file(resources.files("assay.core") / "migrations") as folder:
        before = read_migrations(str(folder)).filter(lambda m: m.id < "0022")
        with get_backend(yoyo_uri(blank)) as backend:
            backend.apply_migrations(backend.to_apply(before))
    with psycopg.connect(blank, autocommit=True) as conn:
        conn.execute(
            "insert into bronze.vendors (batch_id, source_file, line_number, record, raw_text, parse_error)"
            " values (gen_random_uuid(), 'v.jsonl', 1, '{\"vendor_id\": \"V1\"}', null, null),"
            " (gen_random_uuid(), 'v.jsonl', 2, null, 'not json', 'invalid json')"
        )
        stored = conn.execute("select line_number, content_hash from bronze.vendors order by 1").fetchall()
        conn.execute(
            "create view silver.over_bronze as select line_number, content_hash from bronze.vendors_active"
        )
    assert migrate(blank) == [m for m in MIGRATIONS if m >= "0022"]
    with psycopg.connect(blank) as conn:
        assert conn.execute("select to_regclass('bronze.vendors') is not null").fetchone()[0]
        assert not conn.execute(
            "select 1 from information_schema.columns where table_schema = 'bronze'"
            " and table_name = 'vendors' and column_name = 'content_hash'"
        ).fetchall()
        assert conn.execute("select * from silver.over_bronze order by 1").fetchall() == stored
        assert stored[1][1] == conn.execute("select md5('not json')").fetchone()[0]


def test_two_processes_migrating_at_once_both_succeed(blank):
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.map(migrate, [blank, blank])
    # yoyo's lock let one of them apply everything; the other found it done
    assert sorted(results, key=len) == [[], MIGRATIONS]
    assert _applied(blank) == MIGRATIONS
    assert _missing(blank) == []


def test_a_lock_left_by_a_killed_process_does_not_wedge_the_next(blank):
    assert migrate(blank) == MIGRATIONS
    with psycopg.connect(blank, autocommit=True) as conn:
        # what a process killed while it applied the last migration leaves behind
        conn.execute("insert into yoyo_lock (locked, ctime, pid) values (1, now(), 999999)")
        conn.execute("delete from _yoyo_migration where migration_id = %s", [MIGRATIONS[-1]])
    assert migrate(blank) == MIGRATIONS[-1:]
    with psycopg.connect(blank) as conn:
        assert conn.execute("select count(*) from yoyo_lock").fetchone()[0] == 0
