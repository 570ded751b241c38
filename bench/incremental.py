"""Daily incremental run against a full run, same server, same run of this script.

    python bench/incremental.py [--size large]

1. Full run: bronze and silver (the daily models of transactions and events, reference models,
   rejects, their dbt tests and quality gates) over every day of the sample, from empty schemas.
2. One new day lands: the sample's last day copied as 2026-01-01 (new ids, dates moved a day on).
3. Incremental run: that one day through what it touches: its bronze files, the daily silver
   models, rejects, their tests and gates (what the sensor and automation run; vendors and
   employees do not change; `assay run --from 2026-01-01` also rebuilds gold and platinum).
4. Fixed cost: the same for a day without files (2026-01-02): Dagster's run, the bronze steps, the
   quality gates on an empty window (no dbt: nothing to rebuild); what a day costs on top of it is
   the marginal cost.
Printed: seconds, the cost ratio (incremental / full), the data ratio (the new day's bronze rows /
all bronze rows) and their quotient (1.0 = cost exactly proportional to the data), and the same for
the marginal cost. Runs against its own ASSAY_HOME (default /tmp/assay-bench-incremental), on a
fresh database each time.
"""

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

# the repository, not this folder, first on the path: bench/agents.py would hide the agents package
sys.path[0] = str(Path(__file__).resolve().parent.parent)

NEW_DAY = dt.date(2026, 1, 1)
EMPTY_DAY = dt.date(2026, 1, 2)
LAST_SAMPLE_DAY = dt.date(2025, 12, 31)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large", help="sample size: small, default, large or a number")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-incremental"))
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assay.core.database import PostgresResource
    from assay.landing.sample import generate

    home = Path(args.home)
    landing = home / "landing"
    size = int(args.size) if args.size.isdigit() else args.size
    marker = home / f".sample-{size}"
    if not marker.exists():
        for stale in landing.glob("*/*"):
            stale.unlink()
        print(f"generating the {size} sample in {landing} ...", flush=True)
        generate(landing, home / "ground_truth", size=size, seed=42)
        marker.touch()
    for new_file in landing.glob(f"*/*-{NEW_DAY}.*"):
        new_file.unlink()  # from an earlier run of this script

    # a fresh database (the migrations make bronze, its ledger and views, and the quality store);
    # dropping schemas of a migrated database would leave the migrations' tables missing
    shutil.rmtree(home / "pgdata", ignore_errors=True)
    postgres = PostgresResource()
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} on {os.cpu_count()} cores", flush=True)

    full_s = _run(LAST_SAMPLE_DAY.replace(month=1, day=1), LAST_SAMPLE_DAY, False, show_steps=True)
    full_rows = _bronze_rows(postgres)
    print(f"full run:        {full_s:7.1f}s  ({full_rows:,} bronze rows)", flush=True)

    _land_new_day(landing)
    incremental_s = _run(NEW_DAY, NEW_DAY, True, show_steps=True)
    new_rows = _bronze_rows(postgres) - full_rows
    print(f"incremental run: {incremental_s:7.1f}s  ({new_rows:,} new bronze rows)", flush=True)
    empty_s = _run(EMPTY_DAY, EMPTY_DAY, True, show_steps=True)
    print(f"empty day run:   {empty_s:7.1f}s  (fixed cost of a run)", flush=True)

    data_ratio = new_rows / (full_rows + new_rows)
    cost_ratio = incremental_s / full_s
    marginal_ratio = max(incremental_s - empty_s, 0.0) / (full_s - empty_s)
    print(f"data ratio (new day's rows / all rows):     {data_ratio:.4f}")
    print(
        f"cost ratio (incremental / full):            {cost_ratio:.4f} = {cost_ratio / data_ratio:.1f}x data"
    )
    marginal_x = marginal_ratio / data_ratio
    print(f"marginal cost ratio (minus the fixed cost): {marginal_ratio:.4f} = {marginal_x:.1f}x data")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _run(first: dt.date, last: dt.date, daily_only: bool, show_steps: bool = False) -> float:
    from dagster import AssetKey, AssetSelection, DagsterInstance

    from assay.assets.partitions import partition_range_tags
    from assay.orchestration.definitions import defs

    # bronze and silver with their checks; gold and platinum read every day and are not incremental
    selection = AssetSelection.groups("bronze", "silver")
    if (
        daily_only
    ):  # what a new day touches: its bronze files, the daily models, rejects (as the sensor runs it)
        daily = [AssetKey(["bronze", "transactions"]), AssetKey(["bronze", "events"])]
        selection = selection & AssetSelection.assets(*daily).downstream()
    selection = selection.resolve(defs.resolve_asset_graph())
    started = time.perf_counter()
    with (
        DagsterInstance.ephemeral() as instance,
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),  # dbt's log
    ):
        result = defs.resolve_job_def("pipeline").execute_in_process(
            instance=instance,
            asset_selection=list(selection),
            raise_on_error=False,
            tags=partition_range_tags(first, last),
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
        seconds = time.perf_counter() - started
        steps = _step_seconds(instance, result.run_id)
    if show_steps:
        print("  slowest steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in steps[:6]), flush=True)
    if not result.success:
        raise SystemExit(f"the run over {first} .. {last} failed")
    return seconds


def _step_seconds(instance, run_id: str) -> list[tuple[str, float]]:
    """Seconds per step of a run, slowest first (from the stored step start and end events)."""
    from bench.sample_home import step_spans

    spent = {key: end - start for key, (start, end) in step_spans(instance, run_id).items()}
    return sorted(spent.items(), key=lambda item: -item[1])


def _bronze_rows(postgres) -> int:
    with postgres.connect(autocommit=True) as conn:
        return conn.execute(
            "select (select count(*) from bronze.transactions) + (select count(*) from bronze.events)"
        ).fetchone()[0]


def _land_new_day(landing: Path) -> None:
    """The sample's last day again as a new day: new transaction ids (N...), dates a day later."""
    old, new = LAST_SAMPLE_DAY.isoformat(), NEW_DAY.isoformat()
    lines = (landing / "transactions" / f"transactions-{old}.jsonl").read_text()
    lines = lines.replace('"id":"T', '"id":"N').replace(f'"date":"{old}"', f'"date":"{new}"')
    (landing / "transactions" / f"transactions-{new}.jsonl").write_text(lines)
    events = pl.read_csv(landing / "events" / f"events-{old}.csv", infer_schema=False)
    timestamp = pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%SZ") + pl.duration(days=1)
    events.with_columns(
        pl.col("case_id").str.replace("^T", "N"), timestamp.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).write_csv(landing / "events" / f"events-{new}.csv", line_terminator="\n")


if __name__ == "__main__":
    main()
