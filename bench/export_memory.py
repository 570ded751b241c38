"""The read API's bulk export: server memory against the size of the export, same server, same run.

    python bench/export_memory.py [--rows 200000 2000000] [--formats csv ndjson parquet]

`GET /v1/marts/monthly_summary/export` streams a whole mart (README, "Exporting a mart"). The gold
marts are small on every sample (about a thousand rows of monthly_summary), so this bench grows that
mart in its own home to each `--rows` size by inserting copies of its rows shifted by whole years
(set-based, one INSERT ... SELECT), then exports it in each format through one `assay serve` process
and reads the server's peak resident memory (VmHWM of the server's processes, not PostgreSQL's) after
each export. Sizes go up, so each peak covers every export before it.

Printed per size and format: rows, bytes received (uncompressed: the bench asks for identity),
seconds, rows/s, the server's peak RSS, its growth over the resident memory before the first export,
and that growth as a share of the bytes sent (a server that buffered the export would hold at least
the whole body). The ratio to report is the growth after every format at the largest size / the same
after the smallest: about 1 means memory does not grow with the export.

Runs against its own ASSAY_HOME (default /tmp/assay-bench-export): generates the small sample and
runs the pipeline there on first use. Each run first removes the copies an earlier run added, so the
sizes printed are the sizes exported; the next pipeline run there rebuilds the mart anyway.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":  # keep bench/ from shadowing packages
    sys.path[0] = str(REPO)
MART = "monthly_summary"


def _reset(postgres) -> None:
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"delete from gold.{MART} where month >= '3000-01-01'")


def _grow(postgres, rows: int) -> int:
    """Grow the mart to at least `rows` rows: copies of its original rows, each shifted by n years."""
    with postgres.connect(autocommit=True) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'gold' and table_name = %s order by ordinal_position",
                [MART],
            ).fetchall()
        ]
        (base,) = conn.execute(f"select count(*) from gold.{MART} where month < '3000-01-01'").fetchone()
        (have,) = conn.execute(f"select count(*) from gold.{MART}").fetchone()
        copies, done = -(-rows // base) - 1, have // base - 1
        if copies > done:
            shifted = ", ".join(
                "(month + make_interval(years => 1000 + n))::date" if c == "month" else c for c in columns
            )
            conn.execute(
                f"insert into gold.{MART} select {shifted} from gold.{MART}"
                " cross join generate_series(%s::integer, %s::integer) as n where month < '3000-01-01'",
                [done + 1, copies],
            )
            conn.execute(f"analyze gold.{MART}")
        (total,) = conn.execute(f"select count(*) from gold.{MART}").fetchone()
        return total


def _server_processes(pid: int) -> list[int]:
    """The server and its children (uvicorn workers), from /proc; not the embedded PostgreSQL."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            for child in (task / "children").read_text().split():
                if "postgres" not in Path(f"/proc/{child}/comm").read_text():
                    found.append(int(child))
                    frontier.append(int(child))
    return found


def _memory_kib(pid: int, field: str) -> int:
    total = 0
    for p in _server_processes(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "ndjson", "parquet"])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    os.environ.setdefault("ASSAY_HOME", "/tmp/assay-bench-export")
    # a whole export of millions of rows runs longer than the API's default statement_timeout
    os.environ.setdefault("ASSAY_API_STATEMENT_TIMEOUT_MS", "600000")
    # the search model would load in the background while the first export runs and count as its
    # memory (about 600 MiB with torch); an export never needs it
    os.environ["ASSAY_API_PRELOAD_SEARCH_MODEL"] = "false"
    from bench.sample_home import prepare

    prepare(".bench-export")
    import httpx

    from assay.api.keys import create_key, revoke_key
    from assay.core.database import PostgresResource

    postgres = PostgresResource()  # keeps the embedded server up while the API uses it
    postgres.url()
    key, token = create_key(postgres, "bench-export", scopes=["marts"], rate_limit_per_minute=1_000_000)
    assay = str(Path(sys.executable).parent / "assay")
    server = subprocess.Popen([assay, "serve", "--port", str(args.port)], env=os.environ.copy())
    base = f"http://127.0.0.1:{args.port}"
    # identity: the bytes counted are the body itself, not its gzip
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            for _ in range(120):
                try:
                    client.get(f"/v1/marts/{MART}/rows?limit=10").raise_for_status()
                    break
                except httpx.TransportError:
                    time.sleep(1)
            before = _memory_kib(server.pid, "VmRSS")
            print(f"load {_load()}; {os.cpu_count()} CPUs; server RSS before exports {before / 1024:.0f} MiB")
            print("rows       format   MiB sent   seconds   rows/s    peak RSS MiB  growth MiB  growth/sent")
            growth, totals = {}, {}
            _reset(postgres)
            for rows in sorted(args.rows):
                total = totals[rows] = _grow(postgres, rows)
                for fmt in args.formats:
                    started, sent = time.perf_counter(), 0
                    with client.stream("GET", f"/v1/marts/{MART}/export", params={"format": fmt}) as r:
                        r.raise_for_status()
                        for chunk in r.iter_raw():
                            sent += len(chunk)
                    seconds = time.perf_counter() - started
                    peak = _memory_kib(server.pid, "VmHWM")
                    grew = growth[rows, fmt] = (peak - before) / 1024
                    print(
                        f"{total:<10,} {fmt:<8} {sent / 2**20:>8.1f} {seconds:>9.1f} {total / seconds:>9,.0f}"
                        f" {peak / 1024:>13.0f} {grew:>11.0f} {grew / (sent / 2**20):>12.3f}"
                    )
            small, large = min(args.rows), max(args.rows)
            first, last = growth[small, args.formats[-1]], growth[large, args.formats[-1]]
            print(
                f"peak growth after every format at {totals[large]:,} rows / at {totals[small]:,} rows:"
                f" {last:.0f} / {first:.0f} MiB = {last / max(first, 1):.2f}x"
                f" for {totals[large] / totals[small]:.1f}x the rows (load {_load()})"
            )
        _reset(postgres)
    finally:
        server.terminate()
        server.wait(timeout=60)
        revoke_key(postgres, key.id)


if __name__ == "__main__":
    main()
