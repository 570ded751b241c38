"""Bronze load throughput against a plain COPY of the same files, same server, same run.

    python bench/bronze_load.py [--size large] [--repeat 3]

Baseline: each transactions file streamed with COPY into a one-column text table (no parsing,
no hashing, no JSONB). Measured: `assets.bronze.load_file` (polars staging, COPY, JSONB validation,
content hash, ledger) into a fresh `bronze.transactions`. Prints rows/s for both and the ratio.
Runs against its own ASSAY_HOME (default /tmp/assay-bench) so it never touches your data.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large", help="sample size: small, default, large or a number")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed repetitions of each side (median reported)"
    )
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench"))
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home

    from assets import bronze
    from assets.sample import generate
    from orchestration.database import PostgresResource

    home = Path(args.home)
    landing = home / "landing"
    size = int(args.size) if args.size.isdigit() else args.size
    marker = home / f".sample-{size}"
    if not marker.exists():
        print(f"generating the {size} sample in {landing} ...", flush=True)
        generate(landing, home / "ground_truth", size=size, seed=42)
        marker.touch()
    files = bronze.landing_files(landing, "transactions")
    total_bytes = sum(f.stat().st_size for f in files)
    print(f"{len(files)} transaction files, {total_bytes / 1e6:.0f} MB", flush=True)

    postgres = PostgresResource()
    with postgres.connect(autocommit=True) as conn:
        conn.execute("create schema if not exists bench")
        plain, ours = [], []
        for i in range(args.repeat):
            plain.append(_plain_copy(conn, files))
            ours.append(_bronze_load(conn, files, landing, bronze))
            print(f"  round {i + 1}: plain COPY {plain[-1][1]:.2f}s, bronze {ours[-1][1]:.2f}s", flush=True)
    rows = ours[0][0]
    if rows != plain[0][0]:
        sys.exit(f"row counts differ: bronze {rows} vs plain {plain[0][0]}")
    plain_s = statistics.median(s for _, s in plain)
    ours_s = statistics.median(s for _, s in ours)
    print(f"rows: {rows:,}")
    print(f"plain COPY into a text table: {rows / plain_s:>12,.0f} rows/s ({plain_s:.2f}s)")
    print(f"bronze load (assay):          {rows / ours_s:>12,.0f} rows/s ({ours_s:.2f}s)")
    print(f"ratio bronze / plain: {plain_s / ours_s:.2f} (target >= 0.8)")


def _plain_copy(conn, files) -> tuple[int, float]:
    conn.execute("drop table if exists bench.plain")
    conn.execute("create table bench.plain (line text)")
    started = time.perf_counter()
    for path in files:
        with (
            conn.transaction(),
            conn.cursor().copy(
                # one field per line, taken literally: no delimiter or quote can occur in the data
                "copy bench.plain from stdin (format csv, delimiter e'\\x02', quote e'\\x01')"
            ) as copy,
        ):
            copy.write(path.read_bytes())
    seconds = time.perf_counter() - started
    return conn.execute("select count(*) from bench.plain").fetchone()[0], seconds


def _bronze_load(conn, files, landing, bronze) -> tuple[int, float]:
    conn.execute("drop table if exists bronze.transactions")
    conn.execute("delete from bronze.load_batches where source = 'transactions'")
    bronze.ensure_tables(conn, "transactions")
    started = time.perf_counter()
    loads = [bronze.load_file(conn, "transactions", path, landing) for path in files]
    seconds = time.perf_counter() - started
    return sum(f.rows for f in loads), seconds


if __name__ == "__main__":
    main()
