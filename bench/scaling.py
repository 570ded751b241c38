"""How cost grows: one full pipeline run per sample size, time and peak memory per layer.

    python bench/scaling.py [--sizes small,default,large] [--embed-large]

For each size, in a fresh home of its own (`<root>/<size>`, emptied first; its own embedded
PostgreSQL) and in a process of its own: generate the sample (seed 42; not timed with the run),
then run the `pipeline` job once through `run_pipeline`, the path `assay run` takes. Then read:

- time per layer: the run's STEP_START and STEP_SUCCESS events in the home's Dagster instance, each
  step's seconds added to its layer (bronze, silver, gold marts, process mining, platinum documents,
  embeddings, quality gates; a step's layer comes from its key, see `layer_of`);
- peak memory per layer: the run records none, so a thread samples every 0.2 s the RSS of the run's
  process plus its child processes (dbt), without the PostgreSQL server (its shared buffers would be
  counted once per backend), and each step gets the highest sample taken while it ran;
- rows per layer from the database (the tables each layer writes; the gates and process mining
  are per row they read: silver transactions + events, gold.process_event_log).

The large sample (about 1M documents) would spend most of an hour in the embedding step on a CPU, and
no setting embeds a sample of the documents, so without --embed-large its run leaves out
`platinum/embeddings` and its checks, and the table gives the embedding time of the default sample's
run per document times the large sample's documents, marked as extrapolated.
The load average before and after each run is printed beside its figures.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# the repository, not this folder, first on the path: bench/agents.py would hide the agents package
sys.path[0] = str(Path(__file__).resolve().parent.parent)

LAYERS = (
    "bronze",
    "silver",
    "gold marts",
    "process mining",
    "platinum documents",
    "embeddings",
    "quality gates",
    "other",
)
# tables whose rows a layer's time is divided by (fixed names: never input)
ROWS_OF = {
    "bronze": ("bronze.transactions", "bronze.events", "bronze.vendors", "bronze.employees"),
    "silver": (
        "silver.transactions",
        "silver.events",
        "silver.vendors",
        "silver.employees",
        "silver.rejects",
    ),
    "gold marts": (
        "gold.monthly_summary",
        "gold.category_trends",
        "gold.vendor_spend",
        "gold.vendor_monthly",
    ),
    "process mining": ("gold.process_event_log",),
    "platinum documents": ("platinum.documents",),
    "embeddings": ("platinum.embeddings",),
    "quality gates": ("silver.transactions", "silver.events"),
}
EMBEDDINGS = ("platinum", "embeddings")


def layer_of(step_key: str) -> str:
    """The layer of a step of the pipeline job, from its key."""
    if step_key.startswith("bronze"):
        return "bronze"
    if step_key.startswith("dbt_silver"):
        return "silver"
    if step_key == "dbt_gold":
        return "gold marts"
    if step_key == "dbt_platinum":
        return "platinum documents"
    if step_key.startswith("process_"):
        return "process mining"
    if "embeddings" in step_key:
        return "embeddings"
    if "quality_" in step_key:
        return "quality gates"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="small,default,large", help="comma-separated sample sizes")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "assay-bench-scaling"))
    parser.add_argument("--embed-large", action="store_true", help="embed every document of 'large' too")
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of the sizes' last runs under --root"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: run one size, write its figures
    parser.add_argument("--skip-embeddings", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _measure(args.one, Path(args.root), args.skip_embeddings)
        return

    root = Path(args.root)
    if args.table_only:
        _print_table({s: json.loads((root / s / "scaling.json").read_text()) for s in args.sizes.split(",")})
        return
    # one model cache for every size: the ONNX export of the embedding model is paid by the first
    # size that embeds (a first run's one-off cost), not by each
    os.environ.setdefault("ASSAY_MODEL_CACHE", str(root / "models"))
    results = {}
    for size in args.sizes.split(","):
        home = root / size
        shutil.rmtree(home, ignore_errors=True)  # a fresh home: nothing loaded, nothing embedded
        command = [sys.executable, __file__, "--one", size, "--root", str(home)]
        if size == "large" and not args.embed_large:
            command.append("--skip-embeddings")
        print(f"{size}: load average {os.getloadavg()[0]:.2f} before", flush=True)
        subprocess.run(command, check=True)
        results[size] = json.loads((home / "scaling.json").read_text())
    _print_table(results)


def _measure(size: str, home: Path, skip_embeddings: bool) -> None:
    os.environ["ASSAY_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assay.core.settings import get_settings
    from assay.landing.sample import generate
    from assay.orchestration.definitions import defs
    from assay.orchestration.pipeline import dagster_instance, run_pipeline, table_counts
    from bench.sample_home import step_spans

    settings = get_settings()
    started = time.perf_counter()
    generate(settings.landing_dir, settings.truth_dir, size=int(size) if size.isdigit() else size, seed=42)
    generate_s = time.perf_counter() - started
    selection = None
    if skip_embeddings:
        from dagster import AssetKey

        graph = defs.resolve_job_def("pipeline").asset_layer.asset_graph
        selection = [key for key in graph.materializable_asset_keys if key != AssetKey(list(EMBEDDINGS))]
    load_before = os.getloadavg()
    sampler = _RssSampler()
    sampler.start()
    outcome = run_pipeline(lambda line: None, asset_selection=selection)
    sampler.stop()
    load_after = os.getloadavg()
    if not outcome.success:
        raise SystemExit(f"{size}: the run failed: {outcome.failures}")

    from assay.core.database import PostgresResource

    counts = table_counts(PostgresResource())
    steps = step_spans(dagster_instance(), outcome.run_id)
    layers: dict[str, dict] = {}
    for key, (begun, ended) in steps.items():
        entry = layers.setdefault(layer_of(key), {"seconds": 0.0, "peak_rss": 0, "steps": []})
        entry["seconds"] += ended - begun
        entry["peak_rss"] = max(entry["peak_rss"], sampler.peak(begun, ended))
        entry["steps"].append(key)
    figures = {
        "size": size,
        "generate_s": generate_s,
        "run_s": outcome.seconds,
        "layers": layers,
        "rows": {layer: sum(counts.get(t) or 0 for t in tables) for layer, tables in ROWS_OF.items()},
        "bronze_rows": sum(counts.get(t) or 0 for t in ROWS_OF["bronze"]),
        "documents": counts.get("platinum.documents") or 0,
        "embeddings_skipped": skip_embeddings,
        "peak_rss": sampler.peak(0, float("inf")),
        "load_before": load_before,
        "load_after": load_after,
    }
    (home / "scaling.json").write_text(json.dumps(figures, indent=1))
    print(
        f"{size}: run {outcome.seconds:.1f}s (sample written in {generate_s:.1f}s), load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after",
        flush=True,
    )


class _RssSampler(threading.Thread):
    """RSS of this process and its children (dbt), without PostgreSQL's, every `interval` seconds."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            rss = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    if not child.name().startswith("postgres"):
                        rss += child.memory_info().rss
                except psutil.Error:  # ended since it was listed
                    pass
            self.samples.append((time.time(), rss))
            if self._halt.wait(self.interval):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, begun: float, ended: float) -> int:
        """The highest sample from `begun` to `ended` (or the last one before: a step shorter than
        the interval)."""
        inside = [rss for t, rss in self.samples if begun <= t <= ended]
        before = [rss for t, rss in self.samples if t < begun][-1:]
        return max(inside or before or [0])


def _print_table(results: dict[str, dict]) -> None:
    sizes = list(results)
    per_doc = None  # embedding seconds per document, from a size that embedded
    for size in sizes:
        r = results[size]
        if not r["embeddings_skipped"] and r["rows"]["embeddings"]:
            per_doc = r["layers"]["embeddings"]["seconds"] / r["rows"]["embeddings"]
    print()
    print("| layer | " + " | ".join(f"{s}: s / peak MiB / rows / µs per row" for s in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    for layer in LAYERS:
        cells = []
        for size in sizes:
            r = results[size]
            entry = r["layers"].get(layer)
            rows = r["rows"].get(layer, 0)
            if layer == "embeddings" and r["embeddings_skipped"]:
                guess = per_doc * r["documents"] if per_doc else None
                cells.append(f"not run; ~{guess:,.0f} s extrapolated" if guess else "not run")
                continue
            if entry is None:
                cells.append("-")
                continue
            per_row = f"{entry['seconds'] / rows * 1e6:,.1f}" if rows else "-"
            cells.append(f"{entry['seconds']:,.1f} / {entry['peak_rss'] / 2**20:,.0f} / {rows:,} / {per_row}")
        if any(c != "-" for c in cells):
            print(f"| {layer} | " + " | ".join(cells) + " |")
    print(
        "| whole run | "
        + " | ".join(
            f"{results[s]['run_s']:,.1f} / {results[s]['peak_rss'] / 2**20:,.0f} / "
            f"{results[s]['bronze_rows']:,} bronze rows / "
            f"{results[s]['run_s'] / results[s]['bronze_rows'] * 1e6:,.1f}"
            for s in sizes
        )
        + " |"
    )
    print(
        "| load average before, after | "
        + " | ".join(f"{results[s]['load_before'][0]:.2f}, {results[s]['load_after'][0]:.2f}" for s in sizes)
        + " |"
    )
    for size in sizes:
        other = results[size]["layers"].get("other")
        if other:
            print(f"{size}: steps counted as 'other': {', '.join(other['steps'])}")


if __name__ == "__main__":
    main()
