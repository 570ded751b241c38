"""Read API latency and throughput against a bare FastAPI endpoint, same machine, same run.

    python bench/api.py [--size default] [--connections 50] [--seconds 5] [--rounds 2] [--workers 1]

Three servers' endpoints are loaded in turn, each round in the same order, by a keep-alive HTTP/1.1
load generator written on raw asyncio streams (so that the client, which shares the CPU, costs as little
as possible): `--connections` connections, each sending its next request when the previous answer has
arrived (closed loop), for `--seconds` after a one-second warm-up.
- "bare": a FastAPI app with one `GET /bare` returning a small JSON object (no database, no auth);
- "mart page": `GET /v1/marts/monthly_summary/rows?limit=100` on the real API (key check, rate
  limit, metrics, a keyset page of 100 rows rendered by Postgres);
- "point lookup": `GET /v1/marts/vendor_spend/lookup?spend_rank=<n>` cycling through every rank.
Both servers run under uvicorn (uvloop, httptools) with the same worker count and no access log.
Reported per endpoint: requests/s, p50/p95/p99 latency, and the ratio of requests/s to the bare one.
With a closed loop, latency = connections / throughput (Little's law): at saturation p95 measures the
queue as much as the service time. `--rate` adds an open-loop phase at a fixed total request rate,
where latency is counted from each request's scheduled send time (no coordinated omission).

Runs against its own ASSAY_HOME (default /tmp/assay-bench-api): generates the sample and runs the
pipeline there on first use.
"""

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as `python bench/api.py`, this folder would come first on sys.path and this very file would
# shadow the `api` package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)
MART_PAGE = "/v1/marts/monthly_summary/rows?limit=100"


def bare_app():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict:
        return {"status": "ok", "service": "bare"}

    return app


def api_app():
    from api.app import create_app

    return create_app()


def _serve(kind: str, port: int, workers: int) -> None:
    import uvicorn

    os.environ["ASSAY_API_ACCESS_LOG"] = "false"
    os.environ["ASSAY_API_WORKERS"] = str(workers)
    target = "bench.api:bare_app" if kind == "bare" else "bench.api:api_app"
    uvicorn.run(
        target,
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _exchange(reader, writer, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"no content-length in {head[:200]!r}")
    end = lower.find(b"\r\n", at + 2)
    await reader.readexactly(int(lower[at + 17 : end]))
    return status


async def _closed_loop(
    port: int, requests: list[bytes], connections: int, seconds: float, name: str
) -> Result:
    latencies: list[float] = []
    errors = 0
    record = False

    async def worker(offset: int) -> int:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done, i = 0, offset
        try:
            while not stop.is_set():
                started = time.perf_counter()
                status = await _exchange(reader, writer, requests[i % len(requests)])
                i += 1
                if record:
                    latencies.append(time.perf_counter() - started)
                    done += 1
                    if status != 200:
                        errors += 1
        finally:
            writer.close()
        return done

    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker(k * 7)) for k in range(connections)]
    await asyncio.sleep(1.0)  # warm-up: connections open, pools fill, statements get prepared
    record = True
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    record = False
    elapsed = time.perf_counter() - began
    stop.set()
    done = sum(await asyncio.gather(*tasks))
    return Result(name, done, errors, elapsed, latencies)


async def _open_loop(
    port: int, requests: list[bytes], connections: int, seconds: float, rate: float, name: str
):
    """Each connection sends on a fixed schedule (rate / connections per second); latency from schedule."""
    latencies: list[float] = []
    errors = 0
    interval = connections / rate

    async def worker(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.perf_counter() + k * interval / connections
        n = 0
        try:
            while True:
                due = start + n * interval
                if due - start > seconds:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                status = await _exchange(reader, writer, requests[(k + n) % len(requests)])
                latencies.append(time.perf_counter() - due)
                errors += status != 200
                n += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(connections)))
    return Result(name, len(latencies), errors, time.perf_counter() - began, latencies)


def _request(path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Accept: application/json\r\n\r\n".encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(kind: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--workers", str(workers)], env=env
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start") from None
            time.sleep(0.2)


def _prepare(size: str) -> None:
    from orchestration.database import PostgresResource
    from orchestration.settings import get_settings

    marker = get_settings().home_dir / f".bench-api-{size}"
    if marker.exists():
        return
    from assets.sample import generate
    from orchestration.pipeline import run_pipeline

    settings = get_settings()
    print(f"generating the {size} sample and running the pipeline in {settings.home_dir} ...", flush=True)
    generate(settings.landing_dir, settings.truth_dir, size=int(size) if size.isdigit() else size, seed=42)
    outcome = run_pipeline(lambda line: None)
    if not outcome.success:
        raise SystemExit(f"the pipeline failed: {outcome.failures}")
    PostgresResource().url()
    marker.touch()


def _show(result: Result, bare: Result | None) -> str:
    ratio = f"{result.rps / bare.rps:6.2f}" if bare else "     -"
    return (
        f"  {result.name:<14}{result.rps:>9,.0f} req/s  p50 {result.pct(0.5):6.1f} ms  "
        f"p95 {result.pct(0.95):6.1f} ms  p99 {result.pct(0.99):6.1f} ms  vs bare {ratio}"
        + (f"  ({result.errors} non-200)" if result.errors else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="default", help="sample size: small, default, large or a number")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per endpoint and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of each server")
    parser.add_argument("--rate", type=float, default=0, help="also run an open loop at this many req/s")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-api"))
    parser.add_argument("--serve", choices=["bare", "api"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    if args.serve:
        _serve(args.serve, args.port, args.workers)
        return

    import uvloop

    from api.keys import create_key
    from orchestration.database import PostgresResource

    _prepare(args.size)
    postgres = PostgresResource()  # this process keeps the embedded server up for the servers
    _, token = create_key(postgres, "bench", scopes=["marts"], rate_limit_per_minute=1_000_000_000)
    with postgres.connect(autocommit=True) as conn:
        ranks = [r[0] for r in conn.execute("select spend_rank from gold.vendor_spend order by 1")]
        (month_rows,) = conn.execute("select count(*) from gold.monthly_summary").fetchone()
    print(
        f"{args.connections} connections, {args.seconds:.0f}s per endpoint, {args.rounds} rounds, "
        f"{args.workers} worker(s) per server, {os.cpu_count()} CPUs; monthly_summary {month_rows:,} rows, "
        f"vendor_spend {len(ranks):,} rows",
        flush=True,
    )
    cases = {
        "bare": [_request("/bare", None)],
        "mart page": [_request(MART_PAGE, token)],
        "point lookup": [_request(f"/v1/marts/vendor_spend/lookup?spend_rank={r}", token) for r in ranks],
    }
    bare_server, bare_port = _start("bare", args.workers)
    api_server, api_port = _start("api", args.workers)
    ports = {"bare": bare_port, "mart page": api_port, "point lookup": api_port}
    results: dict[str, list[Result]] = {name: [] for name in cases}
    try:
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}:", flush=True)
            for name, requests in cases.items():
                result = uvloop.run(_closed_loop(ports[name], requests, args.connections, args.seconds, name))
                results[name].append(result)
                print(_show(result, results["bare"][-1] if name != "bare" else None), flush=True)
        if args.rate:
            print(f"open loop at {args.rate:,.0f} req/s offered:", flush=True)
            for name, requests in cases.items():
                result = uvloop.run(
                    _open_loop(ports[name], requests, args.connections, args.seconds, args.rate, name)
                )
                print(_show(result, None), flush=True)
    finally:
        for server in (bare_server, api_server):
            server.terminate()
            server.wait(10)

    print("median over rounds:")
    medians = {}
    for name, runs in results.items():
        merged = Result(name, sum(r.requests for r in runs), sum(r.errors for r in runs), 0, [])
        merged.seconds = sum(r.seconds for r in runs)
        merged.latencies = [x for r in runs for x in r.latencies]
        medians[name] = (statistics.median(r.rps for r in runs), merged)
    bare_rps = medians["bare"][0]
    for name, (rps, merged) in medians.items():
        ratio = f"{rps / bare_rps:.2f}" if name != "bare" else "-"
        print(
            f"  {name:<14}{rps:>9,.0f} req/s  p50 {merged.pct(0.5):6.1f} ms  p95 {merged.pct(0.95):6.1f} ms"
            f"  p99 {merged.pct(0.99):6.1f} ms  vs bare {ratio}"
        )
    page_rps, page = medians["mart page"]
    print(
        f"targets: mart page p95 {page.pct(0.95):.1f} ms (<= 15 ms), "
        f"requests/s {page_rps / bare_rps:.2f} of bare (>= 0.50)"
    )


if __name__ == "__main__":
    main()
