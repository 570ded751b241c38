"""Where dbt calls run (assets/dbt_runner.py): the window reaches each call's own environment, never
the process's, so steps on several threads each start dbt with their own window."""

import os
import subprocess
import sys
import threading

from dagster_dbt.core import dbt_cli_invocation

from assay.assets import dbt_runner

PRINT_WINDOW = "import os; print(os.environ.get('ASSAY_MIN_DATE'), os.environ.get('ASSAY_MAX_DATE'))"


def test_each_thread_starts_dbt_with_its_own_window():
    days = [f"2025-01-{n:02d}" for n in range(1, 9)]
    barrier = threading.Barrier(len(days))
    seen: dict[str, str] = {}

    def start(day: str) -> None:
        with dbt_runner.dbt_call({"ASSAY_MIN_DATE": day, "ASSAY_MAX_DATE": day}, in_process=False):
            barrier.wait()  # every thread inside its call before any starts its process
            # what dagster-dbt does: Popen with a copy of os.environ plus its own settings
            process = dbt_cli_invocation.subprocess.Popen(
                [sys.executable, "-c", PRINT_WINDOW], env=dict(os.environ), stdout=subprocess.PIPE
            )
            seen[day] = process.communicate()[0].decode().strip()

    threads = [threading.Thread(target=start, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {day: f"{day} {day}" for day in days}
    assert "ASSAY_MIN_DATE" not in os.environ and "ASSAY_MAX_DATE" not in os.environ


def test_outside_a_call_dagster_dbt_gets_the_real_popen():
    with dbt_runner.dbt_call({"ASSAY_MIN_DATE": "2025-01-01"}, in_process=True):
        pass
    process = dbt_cli_invocation.subprocess.Popen(
        [sys.executable, "-c", PRINT_WINDOW], env=dict(os.environ), stdout=subprocess.PIPE
    )
    assert isinstance(process, subprocess.Popen)
    assert process.communicate()[0].decode().strip() == "None None"
