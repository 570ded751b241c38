"""The embedded server is shared by processes and stops when the last one exits; any server keeps
the reader role read-only."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from assay.core.database import DATABASE, PostgresResource

pytestmark = pytest.mark.integration  # a real server, a browser or subprocesses throughout

CONNECT = (
    "from assay.core.database import PostgresResource; import psycopg;"
    "c = psycopg.connect(PostgresResource().url()); print(c.execute('select pg_backend_pid()').fetchone()[0])"
)


def _in_subprocess(home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASSAY_HOME": str(home)}
    env.pop("ASSAY_DATABASE_URL", None)
    command = [sys.executable, "-c", CONNECT]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.embedded
def test_a_second_process_joins_and_leaves_the_server_running(postgres, assay_home):
    url = postgres.url()  # this process holds the server
    result = _in_subprocess(assay_home)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url) as conn:  # still up after the other process exited
        assert conn.execute("select current_database()").fetchone()[0] == DATABASE


@pytest.mark.embedded
def test_the_last_process_stops_the_server():
    home = Path(tempfile.mkdtemp(prefix="assay-stop-"))
    try:
        result = _in_subprocess(home)
        assert result.returncode == 0, result.stderr
        assert (home / "pgdata" / "PG_VERSION").exists()
        assert not _postmaster_running(home / "pgdata")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.embedded
def test_a_killed_process_does_not_keep_the_server_running():
    home = Path(tempfile.mkdtemp(prefix="assay-kill-"))
    try:
        env = {k: v for k, v in os.environ.items() if k != "ASSAY_DATABASE_URL"}
        killed = subprocess.run(
            [sys.executable, "-c", CONNECT + "; import os; os.kill(os.getpid(), 9)"],
            env={**env, "ASSAY_HOME": str(home)},
            capture_output=True,
            timeout=120,
        )
        assert killed.returncode == -9
        handles = home / "pgdata" / ".handle_pids.json"
        assert handles.read_text().strip() not in ("", "[]")  # it died on the list, with the server up
        assert _postmaster_running(home / "pgdata")
        result = _in_subprocess(home)  # the next process forgets it, and stops the server as it leaves
        assert result.returncode == 0, result.stderr
        assert not _postmaster_running(home / "pgdata")
        assert handles.read_text().strip() == "[]"
    finally:
        if _postmaster_running(home / "pgdata"):  # never leave a server behind a failed assertion
            os.kill(int((home / "pgdata" / "postmaster.pid").read_text().split()[0]), signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)


def test_external_url_is_used_unchanged(postgres):
    external = PostgresResource(database_url=postgres.url())
    assert not external.is_embedded
    with external.connect(autocommit=True) as conn:
        schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata")}
    assert {"bronze", "silver", "gold", "platinum", "quality", "agents"} <= schemas


def test_reader_role_cannot_write(postgres, pipeline_run):
    # the role's own grants, as a client like psql meets them: no read-only session settings
    with psycopg.connect(postgres.reader_url(), autocommit=True) as conn:
        assert conn.execute("select count(*) > 0 from gold.vendor_spend").fetchone()[0]
        for statement in (
            "delete from gold.vendor_spend",
            "create table gold.x (a int)",
            "select count(*) from bronze.transactions",
        ):
            try:
                conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                continue
            raise AssertionError(f"the read-only role could run: {statement}")


def test_a_relative_home_stays_where_assay_started(tmp_path):
    # dbt's in-process adapter changes the working directory; the default `.assay` must not follow it
    script = (
        "import os; from assay.core.settings import get_settings; os.chdir('/');"
        "print(get_settings().home_dir)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ASSAY_HOME"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str((tmp_path / ".assay").resolve())
