"""Bronze load throughput against a plain COPY of the same files, same server, same run.

    python bench/bronze_load.py [--size large] [--repeat 3]

Baselines, each file streamed with a bare COPY in its own transaction:
- "plain jsonb": into a one-column JSONB table with `ON_ERROR ignore` (PostgreSQL 17+), which
  parses every payload like bronze does but silently drops malformed lines: the ratio the target
  (>= 0.8) refers to;
- "plain jsonb, async commit": the same with `synchronous_commit = off` in each transaction, as
  bronze commits (a crash may lose the last files whole, and the ledger loads them again): what
  the commit mode alone is worth;
- "plain text": into a one-column text table, no parsing at all: the floor of what COPY costs.
Measured: `assay.landing.bronze.load_files` (polars, COPY, JSONB, line numbers, bad lines kept
with their error, ledger, asynchronous commits) into a fresh `bronze.transactions`. Rows/s are per
landing line. Runs against its own ASSAY_HOME (default /tmp/assay-bench) so it never touches your data.
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

    from assay.core.database import PostgresResource
    from assay.landing import bronze
    from assay.landing.sample import generate

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
        text, jsonb, jsonb_async, ours = [], [], [], []
        for i in range(args.repeat):
            text.append(_plain_copy(conn, files, "text", ""))
            jsonb.append(_plain_copy(conn, files, "jsonb", ", on_error ignore"))
            jsonb_async.append(_plain_copy(conn, files, "jsonb", ", on_error ignore", asynchronous=True))
            ours.append(_bronze_load(conn, files, landing, bronze))
            print(
                f"  round {i + 1}: plain text {text[-1][1]:.2f}s, plain jsonb {jsonb[-1][1]:.2f}s,"
                f" plain jsonb async {jsonb_async[-1][1]:.2f}s, bronze {ours[-1][1]:.2f}s"
                f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    rows = ours[0][0]
    if rows != text[0][0]:
        sys.exit(f"row counts differ: bronze {rows} vs plain text {text[0][0]}")
    text_s, jsonb_s, async_s, ours_s = (
        statistics.median(s for _, s in runs) for runs in (text, jsonb, jsonb_async, ours)
    )
    print(f"landing lines: {rows:,} (plain jsonb kept {jsonb[0][0]:,}: it drops malformed lines)")
    print(f"plain COPY, text table:   {rows / text_s:>12,.0f} rows/s ({text_s:.2f}s)")
    print(f"plain COPY, jsonb table:  {rows / jsonb_s:>12,.0f} rows/s ({jsonb_s:.2f}s)")
    print(f"  the same, async commit: {rows / async_s:>12,.0f} rows/s ({async_s:.2f}s)")
    print(f"bronze load (assay):      {rows / ours_s:>12,.0f} rows/s ({ours_s:.2f}s)")
    print(f"ratio bronze / plain jsonb COPY: {jsonb_s / ours_s:.2f} (target >= 0.8)")
    print(f"ratio bronze / plain jsonb COPY with async commit: {async_s / ours_s:.2f}")
    print(f"ratio bronze / plain text COPY:  {text_s / ours_s:.2f}")


def _plain_copy(conn, files, column_type: str, options: str, asynchronous: bool = False) -> tuple[int, float]:
    conn.execute("drop table if exists bench.plain")
    conn.execute(f"create table bench.plain (line {column_type})")
    started = time.perf_counter()
    for path in files:
        with conn.transaction():
            if asynchronous:
                conn.execute("set local synchronous_commit = off")
            _copy_file(conn, path, options)
    seconds = time.perf_counter() - started
    return conn.execute("select count(*) from bench.plain").fetchone()[0], seconds


def _copy_file(conn, path, options: str) -> None:
    with conn.cursor().copy(
        # one field per line, taken literally: no delimiter or quote can occur in the data
        f"copy bench.plain from stdin (format csv, delimiter e'\\x02', quote e'\\x01'{options})"
    ) as copy:
        copy.write(path.read_bytes())


def _bronze_load(conn, files, landing, bronze) -> tuple[int, float]:
    conn.execute("truncate bronze.transactions")  # the table itself is the migrations' (core/migrations/)
    conn.execute("delete from bronze.load_batches where source = 'transactions'")
    started = time.perf_counter()
    loads = bronze.load_files(conn, "transactions", files, landing)
    seconds = time.perf_counter() - started
    return sum(f.rows for f in loads), seconds


if __name__ == "__main__":
    main()
