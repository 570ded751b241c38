"""Process mining on the large sample: the polars DFG step against a bare polars group-by pass over
the same event log in the same run, then the end-to-end time of the process assets.

    python bench/process_mining.py [--size large] [--repeat 5] [--skip-assets]
    python bench/process_mining.py --many-variants 5000 [--budget 60] [--variant-timeout 10]

The event log is built straight from the generator's event CSV files with the `csv` source of
`gold/process_event_log` (the same reader and normaliser the asset uses), not through bronze and
silver: loading ~4.6M events through the JSONB bronze layer would measure ingestion, not mining.

Timed steps, each the median of `--repeat` interleaved rounds on the normalised log in memory:
- baseline A: `group_by("activity").agg(len, min/max timestamp)`: one low-cardinality pass over
  the same frame the DFG reads, whose `activity` the readers parse as a `Categorical`;
- baseline A on text: the same pass over a copy of the log with `activity` cast to text once
  before the rounds (the type it had before the readers made codes; the cast lays the strings out
  afresh, in row order, which a sorted log read as text does not have), for comparison;
- baseline B: `group_by("case_id").agg(len, min/max timestamp)`: one pass with a group per case;
- DFG step: `process_stats.directly_follows` (edges with frequency, mean, median, p95, min, max,
  plus start and end counts), the same function the asset runs;
- the DFG's key and group-by with frequency and mean only (what the exact median and p95 add);
- variants step: `process_stats.variants` (for reference, no target).
Then, unless `--skip-assets`: `materialize([gold/process_event_log + cases, process_mining])`
against the benchmark's own embedded Postgres, with the event log configured as that CSV source,
and the time of each of the two steps. Runs against its own ASSAY_HOME (default
/tmp/assay-bench-process) so it never touches your data.

`--many-variants N` instead mines (in memory, no database) a synthetic log of N distinct noisy
variants of the approval process (Zipf-like case counts, traces of 5-40 events) against the shipped
reference model with an alignment budget, and reports the alignment step's wall time against the
budget (target <= 1.2x), the variants aligned and the coverage (share of cases whose variant fits
or was aligned).
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _interleaved(steps: dict, repeat: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds per step; rounds run every step once in turn, so load on a shared machine
    hits all steps alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in steps.items():
            started = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}, results


def _count_and_mean(events):
    """The DFG's key (activity codes) and group-by with only frequency and mean: shows what the
    exact median and p95 cost on top (they need each edge's values gathered; count and mean do not)."""
    import polars as pl

    from assay.mining.stats import activity_codes

    events, n, code = activity_codes(events)
    ts = pl.col("event_ts")
    return (
        events.lazy()
        .select("event_index", key=code.shift(1) * n + code, us=(ts - ts.shift(1)).dt.total_microseconds())
        .filter(pl.col("event_index") > 0)
        .group_by("key")
        .agg(pl.len(), pl.col("us").mean())
        .collect()
    )


def many_variants(n: int, budget_s: float, variant_timeout_s: float, seed: int = 42) -> None:
    import datetime as dt
    import random

    import polars as pl

    from assay.landing.sample import ACTIVITIES
    from assay.mining import mine as mining
    from assay.mining.log import normalise

    rng = random.Random(seed)
    seen, traces = set(), []
    while len(traces) < n:
        trace = tuple(rng.choice(ACTIVITIES) for _ in range(rng.randint(5, 40)))
        if trace not in seen:
            seen.add(trace)
            traces.append(trace)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    rows = {"case_id": [], "activity": [], "event_ts": []}
    case = 0
    for rank, trace in enumerate(traces, start=1):
        for _ in range(max(1, 200 // rank)):  # Zipf-like: the first variants hold most cases
            case += 1
            for i, activity in enumerate(trace):
                rows["case_id"].append(f"c{case}")
                rows["activity"].append(activity)
                rows["event_ts"].append(start + dt.timedelta(hours=i))
    raw = pl.DataFrame(rows, schema_overrides={"event_ts": pl.Datetime("us", "UTC")})
    events = normalise(raw.with_columns(resource=pl.lit(None, pl.String)).with_row_index("source_order"))
    cases = events.group_by("case_id").agg(
        department=pl.lit(None, pl.String), category=pl.lit(None, pl.String), duration_hours=pl.lit(1.0)
    )
    print(f"many-variant log: {events.height:,} events, {case:,} cases, {n:,} variants")
    config = mining.ProcessMiningConfig(
        max_aligned_variants=n,
        alignment_budget_s=budget_s,
        alignment_variant_timeout_s=variant_timeout_s,
        process_maps=False,
    )
    started = time.perf_counter()
    result = mining.mine(events, cases, config, progress=lambda line: print(f"  {line}", flush=True))
    total = time.perf_counter() - started
    ratio = result.alignment_seconds / budget_s
    print(
        f"alignments: {result.alignment_seconds:.1f}s for a budget of {budget_s:g}s "
        f"(ratio {ratio:.2f}, target <= 1.2: {'ok' if ratio <= 1.2 else 'OVER'}); "
        f"{result.variants_not_aligned:,} variants not aligned; coverage {result.alignment_coverage:.1%}"
    )
    print(f"whole mine() in memory: {total:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large", help="sample size: small, default, large or a number")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each in-memory step")
    parser.add_argument("--skip-assets", action="store_true", help="only the in-memory comparison")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-process"))
    parser.add_argument("--many-variants", type=int, default=0, help="the many-variant alignment case")
    parser.add_argument("--budget", type=float, default=60.0, help="alignment budget (s), many-variant case")
    parser.add_argument("--variant-timeout", type=float, default=10.0, help="per-variant timeout (s)")
    args = parser.parse_args()
    if args.many_variants:
        many_variants(args.many_variants, args.budget, args.variant_timeout)
        return
    os.environ["ASSAY_HOME"] = args.home

    import polars as pl

    from assay.landing.sample import generate
    from assay.mining import stats as process_stats
    from assay.mining.log import EventLogConfig, load_event_log

    home = Path(args.home)
    size = int(args.size) if args.size.isdigit() else args.size
    marker = home / f".sample-{size}"
    if not marker.exists():
        print(f"generating the {size} sample in {home / 'landing'} ...", flush=True)
        started = time.perf_counter()
        generate(home / "landing", home / "ground_truth", size=size, seed=42)
        marker.touch()
        print(f"  {time.perf_counter() - started:.1f}s", flush=True)
    config = EventLogConfig(source="csv", path=str(home / "landing" / "events"))
    started = time.perf_counter()
    events, cases, _ = load_event_log(None, config)
    load_s = time.perf_counter() - started
    print(
        f"event log: {events.height:,} events, {cases.height:,} cases, read and normalised in {load_s:.2f}s"
    )
    print(f"polars {pl.__version__}, {os.cpu_count()} cores, median of {args.repeat} runs each")
    print(f"activity column as read: {events.schema['activity']}")

    span = [pl.len(), pl.col("event_ts").min().alias("first"), pl.col("event_ts").max().alias("last")]
    text = events.with_columns(pl.col("activity").cast(pl.String))
    seconds, results = _interleaved(
        {
            "baseline A": lambda: events.group_by("activity").agg(span),
            "baseline A text": lambda: text.group_by("activity").agg(span),
            "baseline B": lambda: events.group_by("case_id").agg(span),
            "DFG": lambda: process_stats.directly_follows(events),
            "DFG count+mean": lambda: _count_and_mean(events),
            "variants": lambda: process_stats.variants(events),
        },
        args.repeat,
    )
    print(f"baseline A  group_by(activity) pass:  {seconds['baseline A']:7.3f}s")
    print(f"  the same on a text copy of activity: {seconds['baseline A text']:7.3f}s")
    print(f"baseline B  group_by(case_id) pass:   {seconds['baseline B']:7.3f}s")
    print(f"DFG step (frequency + performance):   {seconds['DFG']:7.3f}s  ({results['DFG'].height} edges)")
    print(f"  its key and group-by with count + mean only (no median/p95): {seconds['DFG count+mean']:7.3f}s")
    n_variants = results["variants"][0].height
    print(f"variants step:                        {seconds['variants']:7.3f}s  ({n_variants} variants)")
    print(f"ratio DFG / baseline A: {seconds['DFG'] / seconds['baseline A']:.2f}   (target <= 2)")
    print(f"ratio DFG / baseline A on text: {seconds['DFG'] / seconds['baseline A text']:.2f}")
    print(f"ratio DFG / baseline B: {seconds['DFG'] / seconds['baseline B']:.2f}")

    if args.skip_assets:
        return
    from dagster import materialize

    from assay.assets.process import process_assets
    from assay.core.database import PostgresResource

    run_config = {
        "ops": {
            "process_event_log": {"config": {"source": "csv", "path": str(home / "landing" / "events")}},
            "process_mining": {"config": {}},
        }
    }
    started = time.perf_counter()
    result = materialize(process_assets, resources={"postgres": PostgresResource()}, run_config=run_config)
    total = time.perf_counter() - started
    steps = {
        e.step_key: e.event_specific_data.duration_ms / 1000
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS"
    }
    print("end-to-end process assets (materialize, embedded Postgres):")
    for step, seconds in steps.items():
        print(f"  {step:<20} {seconds:7.1f}s")
    print(f"  total                {total:7.1f}s (including Dagster start-up)")


if __name__ == "__main__":
    main()
