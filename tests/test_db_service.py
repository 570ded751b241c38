"""`assay db start | stop | status`: the embedded server outlives the CLI that started it, listens on
TCP with scram-sha-256 passwords when asked, gives the reader gold and nothing below, and `status`
says what is true in each state. Every command runs as a separate process, as a user would run it."""

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from homes import own_home

from assay.core import db_service

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

JOIN_AND_LEAVE = (
    "from assay.core.database import PostgresResource; import psycopg;"
    "psycopg.connect(PostgresResource().url()).execute('select 1')"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ASSAY_DATABASE_URL", "ASSAY_READER_PASSWORD")}
    return {**env, "ASSAY_HOME": str(home), **extra}


def _assay(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "assay.orchestration.cli", *args]
    return subprocess.run(command, env=_env(home, **extra), capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's PID from its pid file, else None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


@pytest.fixture(scope="module")
def listening():
    """A home whose server `assay db start --port` started; stopped (forced) at the end."""
    with own_home("assay-dbsvc-") as home:
        port = _free_port()
        before = _assay(home, "db", "status")
        started = _assay(home, "db", "start", "--port", str(port))
        try:
            assert started.returncode == 0, started.stderr
            yield home, port, before, started
        finally:
            _assay(home, "db", "stop", "--force")


def test_status_before_any_start_says_not_running(listening):
    _home, _port, before, _started = listening
    assert before.returncode == 3, before.stdout + before.stderr
    assert "not running (no data yet)" in before.stdout


def test_the_server_outlives_the_cli_and_other_assay_processes(listening):
    home, port, _before, started = listening
    pid = _postmaster_pid(home / "pgdata")
    assert pid is not None  # `assay db start` has exited; its server runs on
    assert f"PID {pid}" in started.stdout
    joined = subprocess.run(
        [sys.executable, "-c", JOIN_AND_LEAVE], env=_env(home), capture_output=True, text=True, timeout=120
    )
    assert joined.returncode == 0, joined.stderr
    # without the hold, the last process to leave would have stopped it here
    assert _postmaster_pid(home / "pgdata") == pid
    status = _assay(home, "db", "status")
    assert status.returncode == 0, status.stderr
    assert f"running: PID {pid}" in status.stdout
    assert "held by `assay db start`" in status.stdout
    assert f"    {pid}  the server itself" in status.stdout
    assert f"TCP (reader):     postgresql://assay_reader:****@127.0.0.1:{port}/assay" in status.stdout
    assert f"host={home}/pgdata&port={port}" in status.stdout
    assert json.loads((home / "db-hold.json").read_text())["pid"] == pid


def test_the_reader_reads_gold_over_tcp_with_its_password_and_nothing_else(listening):
    home, port, _before, _started = listening
    current = db_service.state()
    assert current.pgdata == home / "pgdata"
    with psycopg.connect(current.socket_url(), autocommit=True) as owner:
        owner.execute("create table gold.analyst_check as select g as id from generate_series(1, 3) g")
        owner.execute("create table platinum.analyst_check as select 'text' as body")
        owner.execute("create table bronze.below as select 1 as id")
        owner.execute("create table silver.below as select 1 as id")
    printed = _assay(home, "db", "url", "--reader")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    password = (home / "reader-password").read_text().strip()
    assert url == f"postgresql://assay_reader:{password}@127.0.0.1:{port}/assay"
    assert f"jdbc:postgresql://127.0.0.1:{port}/assay?user=assay_reader&password={password}" in printed.stderr
    with psycopg.connect(url, autocommit=True) as reader:
        assert reader.info.host == "127.0.0.1"  # TCP, not the socket
        assert reader.execute("select sum(id) from gold.analyst_check").fetchone()[0] == 6
        assert reader.execute("select body from platinum.analyst_check").fetchone()[0] == "text"
        for statement in (
            "select * from bronze.below",
            "select * from silver.below",
            "insert into gold.analyst_check values (4)",
            "create table gold.mine (id int)",
            "create table public.mine (id int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)


def test_tcp_refuses_a_wrong_password_and_the_passwordless_owner(listening):
    _home, port, _before, _started = listening
    for url in (
        f"postgresql://assay_reader:wrong@127.0.0.1:{port}/assay",
        f"postgresql://postgres@127.0.0.1:{port}/assay",  # trusted on the socket only
    ):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=10)


def test_the_password_file_is_private_and_tcp_asks_for_scram(listening):
    home, _port, _before, _started = listening
    assert stat.S_IMODE((home / "reader-password").stat().st_mode) == 0o600
    host_lines = [
        line.split()
        for line in (home / "pgdata" / "pg_hba.conf").read_text().splitlines()
        if line.startswith("host")
    ]
    assert host_lines == [["host", "all", "all", "all", "scram-sha-256"]]
    with psycopg.connect(db_service.state().socket_url()) as owner:
        query = "select rolpassword from pg_authid where rolname = 'assay_reader'"
        stored = owner.execute(query).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")


def test_stop_stops_it_and_status_then_says_so():
    with own_home("assay-dbstop-") as home:
        try:
            port = _free_port()
            started = _assay(home, "db", "start", "--port", str(port))
            assert started.returncode == 0, started.stderr
            pid = _postmaster_pid(home / "pgdata")
            assert pid is not None
            # a listener cannot be added under a running server: it says what to do instead
            refused = _assay(home, "db", "start", "--port", str(_free_port()))
            assert refused.returncode == 1
            assert "`assay db stop`" in refused.stderr
            stopped = _assay(home, "db", "stop")
            assert stopped.returncode == 0, stopped.stderr
            assert f"stopped the embedded PostgreSQL (PID {pid})" in stopped.stdout
            assert _postmaster_pid(home / "pgdata") is None
            assert not (home / "db-hold.json").exists()
            status = _assay(home, "db", "status")
            assert status.returncode == 3
            assert "  not running\n" in status.stdout
            again = _assay(home, "db", "stop")
            assert again.returncode == 0
            assert "was not running" in again.stdout
            # any assay process starts it again (socket only) on the same port, so the URLs that
            # long-lived processes hold still lead to it
            joined = subprocess.run(
                [sys.executable, "-c", JOIN_AND_LEAVE + "; print(PostgresResource().url())"],
                env=_env(home),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert joined.returncode == 0, joined.stderr
            assert f"port={port}" in joined.stdout
            assert _postmaster_pid(home / "pgdata") is None  # it left, nobody holds it: stopped
        finally:
            _assay(home, "db", "stop", "--force")


def test_a_host_needs_a_port():
    with own_home("assay-dbhost-") as home:
        refused = _assay(home, "db", "start", "--host", "0.0.0.0")
        assert refused.returncode == 2
        assert "--host needs --port" in refused.stderr
        assert not (home / "pgdata").exists()


def test_an_external_server_is_not_started_or_stopped_and_status_checks_it():
    with own_home("assay-dbext-") as home:
        external = {"ASSAY_DATABASE_URL": f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/x"}
        for action in ("start", "stop"):
            result = _assay(home, "db", action, **external)
            assert result.returncode == 0, result.stderr
            assert f"ASSAY_DATABASE_URL is set: nothing to {action}" in result.stdout
        status = _assay(home, "db", "status", **external)
        assert status.returncode == 3
        assert "NOT reachable" in status.stdout
        assert "secret" not in status.stdout
        assert not (home / "pgdata").exists()
