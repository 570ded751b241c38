"""`assay db backup` / `assay db restore` and the daily `backup_database` job, on real embedded servers:
a backup restored into an empty server holds every table with the same rows (count and checksum), a
restore refuses to replace data without --yes and then replaces all of it, a broken backup leaves the
old data, and the job keeps the newest ASSAY_BACKUP_KEEP backups."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from dagster import DefaultScheduleStatus
from homes import own_home
from psycopg import sql

from assay.core import backup
from assay.core.database import DatabaseError, PostgresResource
from assay.orchestration.cli import main
from assay.orchestration.maintenance import backup_database_job

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

# a little of each kind of thing a real home holds: layers' tables, a partitioned table, vectors, a
# view, rows in the tables the migrations own (quality history, API keys), sequences in use
SEED = """
create table bronze.readings (id bigserial, day date not null, payload jsonb, primary key (id, day))
    partition by range (day);
create table bronze.readings_2025_01 partition of bronze.readings
    for values from ('2025-01-01') to ('2025-02-01');
create table bronze.readings_2025_02 partition of bronze.readings
    for values from ('2025-02-01') to ('2025-03-01');
insert into bronze.readings (day, payload)
    select date '2025-01-01' + (g % 59), jsonb_build_object('n', g, 'text', md5(g::text))
    from generate_series(1, 3000) g;
create table silver.amounts as
    select g as id, (g * 1.25)::numeric(12, 2) as amount, 'EUR' as currency
    from generate_series(1, 2000) g;
create table gold.vendor_spend (vendor text primary key, spend numeric, embedding vector(3));
insert into gold.vendor_spend
    select 'vendor ' || g, g * 10.5, format('[%s,%s,%s]', g, g + 1, g + 2)::vector
    from generate_series(1, 500) g;
create view gold.top_vendors as select vendor from gold.vendor_spend where spend > 5000;
create table platinum.documents (id int primary key, body text);
insert into platinum.documents select g, repeat('word ', g % 20) from generate_series(1, 400) g;
insert into api.keys (id, name, secret_sha256, scopes, marts)
    select 'k' || g, 'key ' || g, sha256(g::text::bytea), array['read'], array['monthly_summary']
    from generate_series(1, 3) g;
"""


def _fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Every assay table: its row count and the md5 of its rows as text, in order."""
    with psycopg.connect(url, autocommit=True) as conn:
        result = {}
        for schema, name in backup.assay_tables(conn):
            table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            query = sql.SQL(
                "select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from {} t"
            ).format(table)
            result[f"{schema}.{name}"] = conn.execute(query).fetchone()
        return result


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (s for s in SEED.split(";") if s.strip()):
            conn.execute(statement)


@pytest.fixture(scope="module")
def dumps() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="assay-dumps-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def source(dumps: Path) -> tuple[Path, dict]:
    """A home with a little data in every layer, backed up with `assay db backup --to`."""
    with own_home("assay-backup-src-"):
        url = PostgresResource().url()
        _seed(url)
        expected = _fingerprint(url)
        result = CliRunner().invoke(main, ["db", "backup", "--to", str(dumps)])
        assert result.exit_code == 0, result.output
    files = list(dumps.glob("assay-*.dump"))
    assert len(files) == 1 and not list(dumps.glob(".*")), "one backup, no partial file left"
    assert f"assay db restore {files[0]}" in result.output
    return files[0], expected


@pytest.fixture(scope="module")
def target() -> Iterator[Path]:
    """A fresh home: its server starts empty (assay's bootstrap only)."""
    with own_home("assay-backup-dst-") as home:
        yield home


def test_restore_into_an_empty_server_gives_the_same_rows(source, target):
    path, expected = source
    url = PostgresResource().url()
    assert not backup.tables_with_data(psycopg.connect(url, autocommit=True))
    result = CliRunner().invoke(main, ["db", "restore", str(path)])  # empty: no --yes needed
    assert result.exit_code == 0, result.output
    got = _fingerprint(url)
    assert got == expected
    assert got["bronze.readings"][0] == 3000 and got["gold.vendor_spend"][0] == 500
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from gold.top_vendors").fetchone()[0] == 500 - 476
        # the sequence carries on where the source left it
        assert conn.execute("select nextval('bronze.readings_id_seq')").fetchone()[0] == 3001
    # bootstrap ran again: the reader reads gold, and nothing below it
    with psycopg.connect(PostgresResource().reader_url()) as reader:
        assert reader.execute("select count(*) from gold.vendor_spend").fetchone()[0] == 500
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("select count(*) from bronze.readings")


def test_restore_refuses_without_yes_then_replaces_everything(source, target):
    path, expected = source
    url = PostgresResource().url()
    backup.restore(path, replace=True)  # whatever the tests before left
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table gold.newer (id int)")
        conn.execute("insert into gold.newer values (1)")
        conn.execute("delete from silver.amounts where id <= 10")
    changed = _fingerprint(url)
    refused = CliRunner().invoke(main, ["db", "restore", str(path)])
    assert refused.exit_code == 1
    assert "gold.newer" in refused.output and "--yes" in refused.output
    assert _fingerprint(url) == changed  # nothing touched
    done = CliRunner().invoke(main, ["db", "restore", str(path), "--yes"])
    assert done.exit_code == 0, done.output
    assert _fingerprint(url) == expected  # the stray table is gone, the deleted rows are back


def test_a_broken_backup_leaves_the_old_data(source, target, dumps):
    path, _expected = source
    url = PostgresResource().url()
    backup.restore(path, replace=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into platinum.documents values (100000, 'only here')")
    before = _fingerprint(url)
    broken = dumps / "broken.dump"
    data = path.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])  # the table of contents reads; the data stops short
    result = CliRunner().invoke(main, ["db", "restore", str(broken), "--yes"])
    assert result.exit_code == 1
    assert "rolled back" in result.output, result.output
    assert _fingerprint(url) == before


def test_the_daily_job_keeps_the_newest_backups(target, monkeypatch):
    folder = backup.backups_dir()
    folder.mkdir(parents=True, exist_ok=True)
    old = [folder / f"assay-2025010{d}T020000Z.dump" for d in (1, 2, 3)]
    for path in old:
        path.write_bytes(b"old")
    (folder / "notes.txt").write_text("not a backup")
    monkeypatch.setenv("ASSAY_BACKUP_KEEP", "2")
    result = backup_database_job.execute_in_process(resources={"postgres": PostgresResource()})
    assert result.success
    outputs = {e.step_key: e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"}
    meta = outputs["write_backup"].event_specific_data.metadata
    written = Path(meta["file"].value)
    assert meta["removed"].value == [old[0].name, old[1].name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([old[2].name, written.name, "notes.txt"])
    assert meta["bytes"].value == written.stat().st_size > 1000
    assert os.access(written, os.R_OK)


def test_the_schedule_runs_the_backup_job_daily():
    from assay.orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("daily_backup")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert schedule.job_name == "backup_database"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_an_external_server_needs_client_tools_at_least_as_new(tmp_path, monkeypatch):
    external = PostgresResource(database_url="postgresql://owner@db.example/assay")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DatabaseError, match="no pg_dump on PATH.*postgresql-client-17"):
        backup._tool("pg_dump", external, 17)
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 16.4'\n")
    fake.chmod(0o755)
    with pytest.raises(DatabaseError, match="version 16, older than the server .PostgreSQL 17"):
        backup._tool("pg_dump", external, 17)
    assert backup._tool("pg_dump", external, 16) == str(fake)
