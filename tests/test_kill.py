"""`kill -9` of `assay run` at four points loses nothing, doubles nothing and wedges nothing.

One home, the small sample, and `assay run` as a real process (its own process group). It is killed
with SIGKILL while loading bronze, while dbt builds silver, while process mining runs and while the
embeddings are written; each next `assay run` starts where the last one died. Then a last run
completes, and its result must equal what the landing files say: every line in bronze once, every
bronze row in silver or rejects once, no half-loaded batch, and a further run that changes nothing.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from homes import own_home

from assay.landing.sample import generate

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

KILL_POINTS = (
    "running bronze__transactions",
    "running dbt_silver_daily",
    "running process_mining",
    "running platinum__embeddings",
)


def _assay(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ASSAY_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("ASSAY_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "assay.orchestration.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: SIGKILL takes dbt and its children too
    )


def _run_until(home: Path, marker: str, timeout: float = 2400) -> str:
    """Start `assay run`, SIGKILL its whole process group once `marker` is printed."""
    proc = _assay(home, "run")
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(1.0)  # inside the step, not at its first line
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen)
    proc.wait(timeout=60)
    return "".join(seen)


def _finish(home: Path) -> tuple[int, str]:
    proc = _assay(home, "run")
    out, _ = proc.communicate(timeout=1800)
    return proc.returncode, out


def _state(conn) -> dict:
    out = {}
    for table, key in (
        ("bronze.transactions", "bronze_id"),
        ("bronze.events", "bronze_id"),
        ("silver.transactions", "transaction_id"),
        ("silver.events", "bronze_id"),
        ("silver.rejects", "source, bronze_id"),
        ("gold.monthly_summary", "month, category, department"),
        ("platinum.embeddings", "doc_id"),
    ):
        out[table] = conn.execute(
            f"select count(*), md5(string_agg(t::text, '|' order by {key})) from {table} t"
        ).fetchone()
    return out


def test_four_kills_then_a_run_that_equals_the_landing_files():
    from assay.core.database import PostgresResource

    with own_home("assay-kill-") as home:
        summary = generate(home / "landing", home / "ground_truth", size="small", seed=3)
        for marker in KILL_POINTS:
            output = _run_until(home, marker)
            assert marker in output, output
        code, output = _finish(home)
        assert code == 0, output

        with PostgresResource().connect(autocommit=True) as conn:
            lines = {
                "transactions": summary.transactions,
                "events": summary.events,
                "vendors": summary.vendors,
                "employees": summary.employees,
            }
            for source, n in lines.items():
                bronze, silver, rejected = conn.execute(
                    f"select (select count(*) from bronze.{source}), (select count(*) from silver.{source}),"
                    " (select count(*) from silver.rejects where source = %s)",
                    [source],
                ).fetchone()
                assert bronze == n, source  # every landing line once: nothing lost, nothing doubled
                assert bronze == silver + rejected, source
            # no half-written batch: every ledger entry's rows are all there, and no row lacks one
            for source in lines:
                partial = conn.execute(
                    f"select count(*) from (select * from bronze.load_batches where source = %s) l"
                    f" full join (select batch_id, count(*) as n from bronze.{source} group by 1) b"
                    " using (batch_id)"
                    " where b.n is distinct from l.row_count and coalesce(l.row_count, -1) <> 0",
                    [source],
                ).fetchone()[0]
                assert partial == 0, source
            before = _state(conn)
        code, output = _finish(home)  # and once more: a rerun changes nothing
        assert code == 0, output
        with PostgresResource().connect(autocommit=True) as conn:
            assert _state(conn) == before
        # the killed runs were marked failed by the runs after them; the server's list of users
        # holds only live processes (this one)
        from dagster import DagsterInstance, DagsterRunStatus

        statuses = [r.status for r in DagsterInstance.from_config(str(home / "dagster")).get_runs()]
        assert statuses.count(DagsterRunStatus.FAILURE) == len(KILL_POINTS), statuses
        assert DagsterRunStatus.STARTED not in statuses
        assert (home / "pgdata" / ".handle_pids.json").read_text().strip() == f"[{os.getpid()}]"
