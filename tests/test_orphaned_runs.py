"""A run whose `assay run` process was killed is marked failed at the next start, not left STARTED."""

import os
import signal
import subprocess
import sys

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from assay.orchestration.pipeline import fail_orphaned_runs

pytestmark = pytest.mark.integration  # a subprocess with a Dagster run, killed

# A tiny job run in-process the way `assay run` runs the pipeline (same tags); its op waits forever.
RUN = """
import sys, time
from dagster import DagsterInstance, job, op
from assay.orchestration.pipeline import process_tags

@op
def wait():
    print("started", flush=True)
    time.sleep(600)

@job
def stuck():
    wait()

stuck.execute_in_process(instance=DagsterInstance.from_config(sys.argv[1]), tags=process_tags())
"""


def test_a_killed_run_is_marked_failed_at_the_next_start(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    worker = subprocess.Popen(
        [sys.executable, "-c", RUN, str(home)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert worker.stdout.readline().strip() == "started"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    instance = DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert run.status == DagsterRunStatus.STARTED  # what a kill leaves behind

    assert fail_orphaned_runs(instance) == [run.run_id]
    run = instance.get_run_by_id(run.run_id)
    assert run.status == DagsterRunStatus.FAILURE
    [failure] = [
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE
    ]
    assert f"pid {worker.pid}" in failure.message and "killed" in failure.message
    assert fail_orphaned_runs(instance) == []  # judged once
