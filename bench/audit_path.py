"""The access audit's cost per request, in-process, without HTTP or a load generator.

    python bench/audit_path.py [--home DIR] [--requests 10000] [--rounds 6] [--control]

1. The audit's own path alone: what a request runs for its audit row (`AccessLog.admit` in
   `authenticate`, `note` in the router, `AccessLog.finish` in GuardMiddleware) on the scope of a
   real cached mart page request, timed over many calls: microseconds per request.
2. End to end: two apps built in this process from the same settings but `audit` (on / off), driven
   through their ASGI interface (GuardMiddleware, the mart routes, the response cache: everything but
   the socket and the HTTP parser), one request at a time, in blocks of `--requests` requests,
   alternating on and off (ABBA: on first in odd rounds, off first in even ones) so that load changes
   hit both. Per round and as the median, for a cached mart page and a cached point lookup: this
   process's CPU time per request (robust to other processes on the machine, unlike wall time) with
   the audit on and off, and the difference. `--control` builds both apps with the audit off: the
   difference it prints is the bench's own bias and noise at that load.
3. The write path: `flush` of one second's worth of rows (`--batch`, made by real requests), as this
   process's CPU per row (what the event loop spends on it: timestamps, decoding, serialising,
   sending) and wall time per row (with Postgres's insert). The audit-on app flushes only when told
   (flush_seconds = 3600), so the figures of 1 and 2 hold no write.

Needs a home where the pipeline has run (`bench/api.py` makes one, default /tmp/assay-bench-api).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)

PAGE = "/v1/marts/monthly_summary/rows", b"limit=100"


def _scope(path: str, query: bytes, token: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"accept-encoding", b"identity"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Sink:
    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _drive(app, requests: list[tuple[str, bytes]], n: int, token: str) -> tuple[float, dict]:
    """This process's CPU microseconds per request over `n` requests cycling through `requests`,
    and the last request's scope as the app left it."""
    sink = _Sink()
    scopes = [_scope(path, query, token) for path, query in requests]
    count = len(scopes)
    scope: dict = {}
    started = time.process_time_ns()
    for i in range(n):
        scope = dict(scopes[i % count])
        await app(scope, _receive, sink)
    elapsed = time.process_time_ns() - started
    if sink.status != 200:
        raise SystemExit(f"the last request answered {sink.status}")
    return elapsed / n / 1000, scope


def _path_alone(audit, scope: dict, key_id: str, n: int) -> float:
    """Microseconds per request of the audit's own calls on `scope` (a served request's)."""
    from assay.api.audit import AUDIT_ROW, note

    scope = {k: v for k, v in scope.items() if k != AUDIT_ROW}
    runs = []
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(n):
            audit.admit(scope, key_id)
            note(scope, rows=100)
            audit.finish(scope[AUDIT_ROW], 200)
        runs.append((time.perf_counter_ns() - started) / n / 1000)
        audit._queue.clear()
    return min(runs)


async def _main(args) -> None:
    from assay.api.app import create_app
    from assay.api.keys import create_key, revoke_key
    from assay.core.database import PostgresResource
    from assay.core.settings import get_settings

    postgres = PostgresResource()
    settings = get_settings().api.model_copy(
        update={"preload_search_model": False, "audit_flush_seconds": 3600, "access_log": False}
    )
    key, token = create_key(postgres, "bench audit path", scopes=["marts"], rate_limit_per_minute=10**9)
    with postgres.connect(autocommit=True) as conn:
        ranks = [r[0] for r in conn.execute("select spend_rank from gold.vendor_spend order by 1")]
    cases = {
        "mart page": [PAGE],
        "point lookup": [("/v1/marts/vendor_spend/lookup", f"spend_rank={r}".encode()) for r in ranks],
    }
    on = create_app(settings.model_copy(update={"audit": not args.control}), postgres)
    off = create_app(settings.model_copy(update={"audit": False}), postgres)
    audit = on.state.assay.audit or off.state.assay.audit  # --control: a log that nothing fills
    if audit is None:
        from assay.api.audit import AccessLog

        audit = AccessLog(postgres.reader_url(), 3600)
    try:
        async with on.router.lifespan_context(on), off.router.lifespan_context(off):
            for requests in cases.values():  # warm: caches filled, middleware stacks built
                for app in (on, off):
                    await _drive(app, requests, 2 * len(requests), token)
            _, served = await _drive(on, cases["mart page"], 1, token)
            audit._queue.clear()
            alone = _path_alone(audit, served, key.id, 100_000)
            print(f"the audit's own path (admit, note, finish): {alone:.2f} us per request")
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
            load = os.getloadavg()[0]
            print(
                f"{args.requests:,} requests per block, {args.rounds} rounds, CPU time per request;"
                f" load {load:.2f}" + (" (control: both apps without the audit)" if args.control else "")
            )
            for round_no in range(args.rounds):
                for name, requests in cases.items():
                    order = (on, off) if round_no % 2 == 0 else (off, on)  # ABBA
                    timed = {}
                    for app in order:
                        timed[app is on], _ = await _drive(app, requests, args.requests, token)
                    audit._queue.clear()  # the write path is timed below, apart
                    figures[name].append((timed[True], timed[False]))
                    print(
                        f"  round {round_no + 1} {name:<13} on {timed[True]:6.1f} us"
                        f"  off {timed[False]:6.1f} us  audit {timed[True] - timed[False]:+5.1f} us",
                        flush=True,
                    )
            print(f"median over rounds (load {os.getloadavg()[0]:.2f}):")
            for name, pairs in figures.items():
                on_us = statistics.median(p[0] for p in pairs)
                off_us = statistics.median(p[1] for p in pairs)
                diffs = sorted(p[0] - p[1] for p in pairs)
                print(
                    f"  {name:<13} on {on_us:6.1f} us  off {off_us:6.1f} us"
                    f"  audit {statistics.median(diffs):+5.1f} us per request"
                    f" (rounds {diffs[0]:+.1f} .. {diffs[-1]:+.1f})"
                )
            if args.control:
                return
            cpu, wall = [], []
            for _ in range(3):
                await _drive(on, cases["point lookup"], args.batch, token)
                queued = len(audit._queue)
                cpu_start, wall_start = time.process_time_ns(), time.perf_counter_ns()
                written = await audit.flush()
                cpu.append((time.process_time_ns() - cpu_start) / queued / 1000)
                wall.append((time.perf_counter_ns() - wall_start) / queued / 1000)
                if written != queued:
                    raise SystemExit(f"flush wrote {written} of {queued} rows")
            print(
                f"flush of {args.batch:,} rows: {statistics.median(cpu):.2f} us of this process's CPU per row"
                f" (event loop), {statistics.median(wall):.2f} us wall per row (with Postgres's insert)"
            )
    finally:
        revoke_key(postgres, key.id)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=os.path.join(tempfile.gettempdir(), "assay-bench-api"))
    parser.add_argument("--requests", type=int, default=10_000, help="requests per block")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=5_000, help="rows per timed flush")
    parser.add_argument(
        "--control", action="store_true", help="both apps without the audit: the bench's own bias and noise"
    )
    args = parser.parse_args()
    os.environ["ASSAY_HOME"] = args.home
    import uvloop

    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
