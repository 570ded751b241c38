"""Read API latency and throughput against a bare FastAPI endpoint, same machine, same run.

    python bench/api.py [--size default] [--connections 50] [--seconds 5] [--rounds 3] [--workers 1]

Three uvicorn servers (uvloop, httptools, no access log, the same worker count) run side by side:
a bare FastAPI app, the read API, and the read API with its response cache off. A keep-alive HTTP/1.1
load generator on raw asyncio protocols (the client shares the CPU, so it must cost little) opens
`--connections` connections per endpoint; each sends its next request as soon as the previous answer
is complete (closed loop), for `--seconds` after a one-second warm-up. Endpoints, in this order:
- "bare": `GET /bare` returning a small JSON object (no database, no auth, no middleware): the
  baseline of the targets;
- "bare, page bytes": `GET /bare/page` on the bare app, returning the mart page's exact bytes: what
  moving a page of that size costs here without any of the API's work;
- "bare, same query": `GET /bare/query` on the bare app: the uncached page's own SQL (built by
  `assay.api.query`, limit bound) on a psycopg pool of the reader role, rows joined as the API joins
  them: the floor for any endpoint that reads Postgres per request, so that "page, no cache" against
  it shows what the API itself adds and against "bare" what the database round trip costs;
- "mart page": `GET /v1/marts/monthly_summary/rows?limit=100` (key check, rate limit, metrics; after
  the first request the page comes from the response cache, which holds until the mart changes);
- "point lookup": `GET /v1/marts/vendor_spend/lookup?spend_rank=<n>` cycling through every rank;
- "page, no cache" and "lookup, no cache": the same on the server without cache: every request reads
  Postgres (keyset page of 100 rows rendered as JSON by Postgres; primary-key lookup).
Reported per endpoint: requests/s, p50/p95/p99 latency and requests/s relative to bare, per round and
as the median over rounds. With a closed loop at saturation, latency = connections / throughput
(Little's law), so p95 measures the queue as much as the service time. `--rate` adds an open-loop phase
at a fixed total request rate, with latency counted from each request's scheduled send time.

`--search` adds hybrid `/v1/search` at `--connections` on the API server (micro-batching: the queries
of concurrent requests go to the model in one call, `api/batching.py`) and on a second API server
with batching off (`ASSAY_API_SEARCH_BATCH_MAX=1`: one model call per query, one at a time), and
prints the ratio of their requests/s (target >= 4x); also the batched server at one connection. Each
server loads the embedding model at start-up; a warm-up search waits for it before measuring.

Also printed: the uncached mart page's requests/s relative to bare (the "page, no cache" row), and
the size of one page of up to 1,000 rows (the largest mart's first page) as sent plain, gzipped and
brotli-compressed (br), as the API sends them to a client that accepts each.

The access audit (issue 15): a third API server runs with `ASSAY_API_AUDIT=false`; the "no audit" rows
measure the mart page and the point lookup there, and the p95 ratio audit on / off is printed per
round and over all rounds (target <= 1.10). `--audit-only` measures just those four (page and lookup,
audit on and off) with the on/off order swapped every round (ABBA), so more rounds fit in the time and
a load change hits both sides alike; the load average is printed at the start and the end.
`--control` keeps the audit on in the "no audit" server too: the ratio it prints is what the two
servers differ by without any difference in code (the bench's bias and noise at that load). To split
the audit's cost between the request's path and the writes, run with
`ASSAY_API_AUDIT_FLUSH_SECONDS=3600` in the environment (the servers inherit it): rows are still made
and queued, but not written during the run. `bench/audit_path.py` measures the audit's path in
microseconds per request, in-process.

Runs against its own ASSAY_HOME (default /tmp/assay-bench-api): generates the sample and runs the
pipeline there on first use.
"""

import argparse
import asyncio
import json
import os
import signal
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
    from starlette.responses import Response

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict:
        return {"status": "ok", "service": "bare"}

    # the bytes of the mart page, served as they are: what moving a page costs without the API
    page = Path(os.environ["BENCH_PAGE_FILE"]).read_bytes() if os.environ.get("BENCH_PAGE_FILE") else b"{}"

    @app.get("/bare/page")
    async def bare_page() -> Response:
        return Response(page, media_type="application/json")

    # the uncached page's own SQL on a plain pool: what a per-request Postgres read costs without the API
    query = os.environ.get("BENCH_PAGE_SQL")
    if query:
        import contextlib
        import json

        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            os.environ["BENCH_READER_URL"], min_size=10, max_size=10, kwargs={"autocommit": True}, open=False
        )
        params = json.loads(os.environ["BENCH_PAGE_PARAMS"])
        limit = params[-1] - 1

        @contextlib.asynccontextmanager
        async def lifespan(_app):
            await pool.open()
            yield
            await pool.close()

        app.router.lifespan_context = lifespan

        @app.get("/bare/query")
        async def bare_query() -> Response:
            async with pool.connection() as conn:
                rows = await (await conn.execute(query, params)).fetchall()
            body = '{"rows":[%s]}' % ",".join(r[0] for r in rows[:limit])  # noqa: UP031 - JSON already
            return Response(body.encode(), media_type="application/json")

    return app


def _page_sql(postgres) -> tuple[str, list]:
    """The SQL and values the API runs for MART_PAGE when it is not cached (the same builder)."""
    from urllib.parse import parse_qsl, urlsplit

    from assay.api.catalog import load_catalog, load_mart_specs
    from assay.api.query import build_page_query, filter_params, parse_page_request
    from assay.core.settings import get_settings

    settings = get_settings().api
    with postgres.connect(autocommit=True) as conn:
        mart = load_catalog(conn, load_mart_specs()).marts["monthly_summary"]
        page = parse_page_request(
            mart,
            parse_qsl(urlsplit(MART_PAGE).query),
            filter_params(mart),
            default_limit=settings.page_size_default,
            max_limit=settings.page_size_max,
            max_in=settings.max_in_values,
            accept="application/json",
        )
        query, params = build_page_query(mart, page)
        return query.as_string(conn), params


def api_app():
    from assay.api.app import create_app

    return create_app()


def _serve(kind: str, port: int, workers: int) -> None:
    import uvicorn

    os.environ["ASSAY_API_ACCESS_LOG"] = "false"
    os.environ["ASSAY_API_WORKERS"] = str(workers)
    if kind == "api-nocache":
        os.environ["ASSAY_API_CACHE_MB"] = "0"
    if kind == "api-noaudit" and os.environ.get("BENCH_AUDIT_CONTROL") != "1":
        os.environ["ASSAY_API_AUDIT"] = "false"
    if kind == "api-nobatch":
        os.environ["ASSAY_API_SEARCH_BATCH_MAX"] = "1"
    elif kind != "bare":
        # the model only where searches are measured: loading it takes CPU from the first round
        search = os.environ.get("BENCH_SEARCH") == "1" and kind != "api-nocache"
        os.environ["ASSAY_API_PRELOAD_SEARCH_MODEL"] = "true" if search else "false"
    # exit handlers must run on SIGTERM (see api/serve.py): the embedded server counts its users
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    target = "bench.api:bare_app" if kind == "bare" else "bench.api:api_app"
    from assay.api.protocol import GuardedHttpProtocol  # what `assay serve` runs (httptools + caps)

    uvicorn.run(
        target,
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools" if kind == "bare" else GuardedHttpProtocol,
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


class _Client(asyncio.Protocol):
    """One keep-alive connection of the closed loop: sends the next request as an answer completes.

    A protocol rather than streams: the load generator shares the CPU with the server, and reading a
    25 kB page through StreamReader costs the client more than the server spends serving it cached.
    """

    def __init__(self, requests: list[bytes], offset: int, run: dict) -> None:
        self.requests, self.i, self.run = requests, offset, run
        self.buffer = bytearray()
        self.need = -1  # bytes of the current response (headers + body); -1 until headers are in

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.started = time.perf_counter()
        self.transport.write(self.requests[self.i % len(self.requests)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n", 0, 8192)
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower() + b"\r\n"
            at = head.find(b"\r\ncontent-length:")
            self.status = int(head[9:12])
            self.need = end + 4 + int(head[at + 17 : head.find(b"\r\n", at + 2)])
        if len(self.buffer) < self.need:
            return
        del self.buffer[: self.need]
        self.need = -1
        run = self.run
        if run["record"]:
            run["latencies"].append(time.perf_counter() - self.started)
            run["errors"] += self.status != 200
        if not run["stop"]:
            self._send()
        else:
            self.transport.close()


async def _closed_loop(
    port: int, requests: list[bytes], connections: int, seconds: float, name: str
) -> Result:
    loop = asyncio.get_running_loop()
    run = {"record": False, "stop": False, "latencies": [], "errors": 0}
    clients = [
        await loop.create_connection(lambda k=k: _Client(requests, k * 7, run), "127.0.0.1", port)
        for k in range(connections)
    ]
    await asyncio.sleep(1.0)  # warm-up: connections open, pools fill, statements get prepared
    run["record"] = True
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    run["record"] = False
    elapsed = time.perf_counter() - began
    run["stop"] = True
    await asyncio.sleep(0.2)
    for transport, _ in clients:
        transport.close()
    return Result(name, len(run["latencies"]), run["errors"], elapsed, run["latencies"])


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


def _fetch(port: int, path: str, token: str, timeout: float = 5.0) -> bytes:
    import httpx

    url = f"http://127.0.0.1:{port}{path}"
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    response.raise_for_status()
    return response.content


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(kind: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--workers", str(workers)]
        + ["--home", os.environ["ASSAY_HOME"]],  # the bench's home: its database, where the pipeline ran
        env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the {kind} server did not start") from None
            time.sleep(0.2)


SEARCH_QUERIES = (
    "flight to London",
    "hotel invoice Berlin",
    "laptop purchase",
    "consulting services",
    "office supplies order",
    "taxi from the airport",
    "software licence renewal",
    "team dinner",
)


def _bench_search(port: int, unbatched_port: int, token: str, args) -> None:
    from urllib.parse import quote

    import uvloop

    requests = [_request(f"/v1/search?q={quote(q)}&method=hybrid&k=10", token) for q in SEARCH_QUERIES]
    for server in (port, unbatched_port):
        _fetch(server, "/v1/search?q=warm+up&k=1", token, timeout=600)  # waits for the model to load
    rps = {}
    cases = (("batched", port, args.connections), ("one at a time", unbatched_port, args.connections))
    for name, server, connections in (*cases, ("batched", port, 1)):
        runs = []
        label = f"search {name[:7]} x{connections}"
        for _ in range(args.rounds):
            runs.append(uvloop.run(_closed_loop(server, requests, connections, args.seconds, label)))
            print(_show(runs[-1], None), flush=True)
        rps[name, connections] = statistics.median(r.rps for r in runs)
    batched, single = rps["batched", args.connections], rps["one at a time", args.connections]
    print(
        f"hybrid search at {args.connections} connections: {batched:,.1f} req/s micro-batched, {single:,.1f} "
        f"req/s with one model call per query: {batched / single:.1f}x (target >= 4x); "
        f"batched at 1 connection {rps['batched', 1]:,.1f} req/s"
    )


def _search_bound(postgres) -> None:
    """What micro-batching can win at most, measured in this process with the server's model: a
    request's work is one query encoding plus the hybrid search's SQL; batching shrinks only the
    first. Amdahl's bound: (encode one + SQL) / (encode one of a batch of 50 distinct + SQL)."""
    from assay.api.batching import PrecomputedEncoder
    from assay.core.models import EmbeddingModelResource
    from assay.search.searcher import Filters, Searcher

    resource = EmbeddingModelResource()
    encoder = resource.encoder_for(resource.model_name())
    texts = [f"{q} {i}" for i in range(7) for q in SEARCH_QUERIES][:50]
    encoder.encode_queries(texts)  # warm

    def timed(work, repeat: int) -> float:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            work()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    one = statistics.median(timed(lambda t=t: encoder.encode_queries([t]), 3) for t in texts) * 1000
    batched = timed(lambda: encoder.encode_queries(texts), 5) / len(texts) * 1000
    vectors = dict(zip(texts, encoder.encode_queries(texts), strict=True))
    with postgres.connect(autocommit=True) as conn:
        searcher = Searcher(conn, lambda name: PrecomputedEncoder(encoder, vectors))
        searcher.search(texts[0], "hybrid", 10, Filters())
        search = timed(lambda: [searcher.search(t, "hybrid", 10, Filters()) for t in texts], 3)
    search = search / len(texts) * 1000
    print(
        f"per query: encoding alone {one:.2f} ms, in a batch of {len(texts)} {batched:.2f} ms; hybrid "
        f"search SQL with the vector given {search:.2f} ms: micro-batching can give at most "
        f"{(one + search) / (batched + search):.2f}x (Amdahl, before HTTP and JSON)"
    )


def _page_sizes(port: int, token: str) -> None:
    """Bytes on the wire of one page of up to 1,000 rows of the largest mart: plain, gzip, br."""
    import httpx

    from assay.core.database import PostgresResource

    with PostgresResource().connect(autocommit=True) as conn:
        counts = {
            mart: conn.execute(f"select count(*) from gold.{mart}").fetchone()[0]  # noqa: S608 - fixed names
            for mart in ("category_trends", "monthly_summary", "vendor_spend")
        }
    mart = max(counts, key=counts.get)
    url = f"http://127.0.0.1:{port}/v1/marts/{mart}/rows?limit=1000"
    sizes = {}
    for encoding in ("identity", "gzip", "br"):
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": encoding}
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            response.raise_for_status()
            assert response.headers.get("content-encoding", "identity") == encoding, response.headers
            sizes[encoding] = sum(len(chunk) for chunk in response.iter_raw())
    rows = min(1000, counts[mart])
    print(
        f"a {rows:,}-row page of {mart}: {sizes['identity'] / 1000:,.1f} kB plain, "
        f"{sizes['gzip'] / 1000:,.1f} kB gzip ({sizes['gzip'] / sizes['identity']:.1%}), "
        f"{sizes['br'] / 1000:,.1f} kB br ({sizes['br'] / sizes['identity']:.1%})"
    )


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
    parser.add_argument("--search", action="store_true", help="also hybrid search, 1 vs N connections")
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-api"))
    parser.add_argument(
        "--audit-only", action="store_true", help="only page and lookup with the audit on and off, ABBA"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="with --audit-only: the 'no audit' server keeps the audit on; the ratio is the bench's own bias",
    )
    kinds = ["bare", "api", "api-nocache", "api-nobatch", "api-noaudit"]
    parser.add_argument("--serve", choices=kinds, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    if args.serve:
        _serve(args.serve, args.port, args.workers)
        return

    import uvloop

    from assay.api.keys import create_key, revoke_key
    from assay.core.database import PostgresResource
    from bench.sample_home import prepare

    prepare(f".bench-api-{args.size}", args.size)
    postgres = PostgresResource()  # this process keeps the embedded server up for the servers
    scopes = ["marts", "search"] if args.search else ["marts"]
    os.environ["BENCH_SEARCH"] = "1" if args.search else "0"  # the servers preload the model or not
    os.environ["BENCH_AUDIT_CONTROL"] = "1" if args.control else "0"
    key, token = create_key(postgres, "bench", scopes=scopes, rate_limit_per_minute=1_000_000_000)
    with postgres.connect(autocommit=True) as conn:
        ranks = [r[0] for r in conn.execute("select spend_rank from gold.vendor_spend order by 1")]
        (month_rows,) = conn.execute("select count(*) from gold.monthly_summary").fetchone()
    print(
        f"{args.connections} connections, {args.seconds:.0f}s per endpoint, {args.rounds} rounds, "
        f"{args.workers} worker(s) per server, {os.cpu_count()} CPUs; monthly_summary {month_rows:,} rows, "
        f"vendor_spend {len(ranks):,} rows; load average {_load()}",
        flush=True,
    )
    page = [_request(MART_PAGE, token)]
    lookups = [_request(f"/v1/marts/vendor_spend/lookup?spend_rank={r}", token) for r in ranks]
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    cases = {  # name -> (server, requests)
        "bare": ("bare", [_request("/bare", None)]),
        "bare, page bytes": ("bare", [_request("/bare/page", None)]),
        "bare, same query": ("bare", [_request("/bare/query", None)]),
        "mart page": ("api", page),
        "point lookup": ("api", lookups),
        "page, no cache": ("api-nocache", page),
        "lookup, no cache": ("api-nocache", lookups),
        "page, no audit": ("api-noaudit", page),
        "lookup, no audit": ("api-noaudit", lookups),
    }
    if args.audit_only:
        cases = {name: cases[name] for name in AUDIT_PAIRS[0] + AUDIT_PAIRS[1]}
    results: dict[str, list[Result]] = {name: [] for name in cases}
    try:
        kinds = ["api", "api-nocache", "api-noaudit", *(["api-nobatch"] if args.search else [])]
        for kind in ["api", "api-noaudit"] if args.audit_only else kinds:
            servers[kind] = _start(kind, args.workers)
        if not args.audit_only:
            page_file = Path(args.home) / "bench-page.json"
            page_file.write_bytes(_fetch(servers["api"][1], MART_PAGE, token))
            os.environ["BENCH_PAGE_FILE"] = str(page_file)
            page_sql, page_params = _page_sql(postgres)
            os.environ["BENCH_PAGE_SQL"] = page_sql
            os.environ["BENCH_PAGE_PARAMS"] = json.dumps(page_params)
            os.environ["BENCH_READER_URL"] = postgres.reader_url()
            servers["bare"] = _start("bare", args.workers)
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no} (load average {_load()}):", flush=True)
            names = list(cases)
            if args.audit_only and round_no % 2 == 0:  # ABBA: audit off first in even rounds
                names = [name for pair in AUDIT_PAIRS for name in reversed(pair)]
            for name in names:
                server, requests = cases[name]
                port = servers[server][1]
                result = uvloop.run(_closed_loop(port, requests, args.connections, args.seconds, name))
                results[name].append(result)
                bare = results["bare"][-1] if "bare" in results and name != "bare" else None
                print(_show(result, bare), flush=True)
            print("  audit on / off p95 this round: " + _audit_ratios(results, -1), flush=True)
        if args.rate:
            print(f"open loop at {args.rate:,.0f} req/s offered:", flush=True)
            for name, (server, requests) in cases.items():
                port = servers[server][1]
                result = uvloop.run(
                    _open_loop(port, requests, args.connections, args.seconds, args.rate, name)
                )
                print(_show(result, None), flush=True)
        if args.audit_only:
            _audit_summary(results, args.rounds)
            return
        _page_sizes(servers["api"][1], token)
        idle, _ = servers.pop("api-noaudit")
        idle.terminate()
        idle.wait(10)
        if args.search:
            idle, _ = servers.pop("api-nocache")  # its CPU share goes to the search servers
            idle.terminate()
            idle.wait(10)
            _bench_search(servers["api"][1], servers["api-nobatch"][1], token, args)
            _search_bound(postgres)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
        revoke_key(postgres, key.id)

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
    uncached = medians["page, no cache"][0]
    print(
        f"uncached mart page at {args.connections} connections: {uncached:,.0f} req/s, "
        f"{uncached / bare_rps:.3f} of the bare endpoint's {bare_rps:,.0f}; "
        f"{uncached / medians['bare, same query'][0]:.2f} of the bare app running the same query "
        f"({medians['bare, same query'][0]:,.0f} req/s: what the API adds to the database round trip)"
    )

    _audit_summary(results, args.rounds)


AUDIT_PAIRS = (("mart page", "page, no audit"), ("point lookup", "lookup, no audit"))


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _audit_ratios(results: dict[str, list[Result]], round_index: int) -> str:
    """p95 and requests/s, audit on / off, of one round."""
    parts = []
    for on, off in AUDIT_PAIRS:
        r_on, r_off = results[on][round_index], results[off][round_index]
        parts.append(f"{on} {r_on.pct(0.95) / r_off.pct(0.95):.2f}x (req/s {r_on.rps / r_off.rps - 1:+.0%})")
    return ", ".join(parts)


def _audit_summary(results: dict[str, list[Result]], rounds: int) -> None:
    """The audit's p95 ratio per round, their median and spread, and over all rounds' requests."""
    print(f"access audit (load average now {_load()}):")
    for on, off in AUDIT_PAIRS:
        ratios = [a.pct(0.95) / b.pct(0.95) for a, b in zip(results[on], results[off], strict=True)]
        merged = {}
        for name in (on, off):
            runs = results[name]
            merged[name] = Result(name, 0, 0, 1, [x for r in runs for x in r.latencies])
        p95_on, p95_off = merged[on].pct(0.95), merged[off].pct(0.95)
        rps = statistics.median(a.rps / b.rps for a, b in zip(results[on], results[off], strict=True))
        print(
            f"  {on}: p95 audit on / off per round {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}); "
            f"all {rounds} rounds' requests: {p95_on:.1f} vs {p95_off:.1f} ms, {p95_on / p95_off:.2f}x "
            f"(target <= 1.10); requests/s on / off median {rps:.2f}"
        )


if __name__ == "__main__":
    main()
