"""Hostile-request regressions (issue 16): oversized heads, odd digits, unauthenticated floods, ...

The socket-level tests run a real uvicorn server on 127.0.0.1 with a tiny app and the API's own
protocol, so they need no database; the rest reuse the session's API server.
"""

import datetime as dt
import socket
import threading
import time
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from assay.api.protocol import GuardedHttpProtocol, HeadLimits


@pytest.fixture(scope="module")
def guarded_server():
    """uvicorn with `GuardedHttpProtocol` (default limits) in front of a one-route app; its port."""

    async def live(request):
        return PlainTextResponse("ok")

    yield from _serve(Starlette(routes=[Route("/health/live", live)]), GuardedHttpProtocol)


def _serve(app, protocol):
    """Run uvicorn with `protocol` in front of `app` on 127.0.0.1 in a thread; yields its port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", http=protocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def _send_huge_header(port: int, size: int, stop: threading.Event) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))

    def pump() -> None:
        try:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            block = b"a" * (1 << 20)
            for _ in range(size // len(block)):
                if stop.is_set():
                    return
                sock.sendall(block)
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: expected

    threading.Thread(target=pump, daemon=True).start()
    return sock


def test_a_50_mb_header_is_refused_fast_and_does_not_stall_others(guarded_server):
    port = guarded_server
    stop = threading.Event()
    started = time.monotonic()
    big = _send_huge_header(port, 50 << 20, stop)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as other:
            slowest = 0.0
            for _ in range(20):
                t = time.monotonic()
                assert other.get("/health/live").status_code == 200
                slowest = max(slowest, time.monotonic() - t)
        answer = _read_all(big, timeout=10)
        refused_after = time.monotonic() - started
    finally:
        stop.set()
        big.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"content-type: application/problem+json" in head and b"x-content-type-options: nosniff" in head
    assert b'"status":431' in body
    # generous bounds: the point is seconds (unguarded: ~4 s of stall per request), not milliseconds
    assert refused_after < 5, refused_after
    assert slowest < 2, slowest


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /health/live?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health/live HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431),
        (b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
    ids=["long-url", "many-headers", "big-header"],
)
def test_oversized_heads_are_problem_json(guarded_server, request_head, status):
    with socket.create_connection(("127.0.0.1", guarded_server)) as sock:
        sock.sendall(request_head)
        answer = _read_all(sock, timeout=5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    assert b"content-type: application/problem+json" in head
    assert f'"status":{status}'.encode() in body


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",  # NUL in a header
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",  # bare CR
        b"GET /health/live?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",  # raw byte in the target
        b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 without negotiation
    ],
    ids=["nul-header", "bare-cr", "raw-byte-target", "two-content-lengths", "h2-preface"],
)
def test_requests_the_parser_cannot_read_are_problem_json_400(guarded_server, request_head):
    # uvicorn answered these with text/plain "Invalid HTTP request received." and no security headers
    with socket.create_connection(("127.0.0.1", guarded_server)) as sock:
        sock.sendall(request_head)
        answer = _read_all(sock, timeout=5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/problem+json" in head and b"x-content-type-options: nosniff" in head
    assert b'"status":400' in body and b"not a valid HTTP/1.1 request" in body


def test_heads_within_the_limits_and_keep_alive_still_work(guarded_server):
    with socket.create_connection(("127.0.0.1", guarded_server)) as sock:
        one = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * 8000 + b"\r\n\r\n"
        sock.sendall(one * 3)  # pipelined on one connection
        sock.settimeout(5)
        seen = b""
        while seen.count(b"HTTP/1.1 200") < 3:
            chunk = sock.recv(65536)
            assert chunk, seen
            seen += chunk


class _QuickTimeoutProtocol(GuardedHttpProtocol):
    limits = HeadLimits(8192, 16384, 100, read_timeout_s=1.0)


@pytest.fixture(scope="module")
def timed_server():
    """uvicorn with a 1 s request read timeout in front of routes that read a body or answer slowly."""
    import asyncio

    async def echo(request):
        return PlainTextResponse(str(len(await request.body())))

    async def slow(request):
        await asyncio.sleep(2)  # longer than the read timeout: the app's own time is not capped
        return PlainTextResponse("slow")

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/slow", slow)])
    yield from _serve(app, _QuickTimeoutProtocol)


def _trickle(sock: socket.socket, data: bytes, pause: float) -> None:
    try:
        for byte in data:
            sock.send(bytes([byte]))
            time.sleep(pause)
    except OSError:
        pass  # the server closed the connection: expected


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connected, sends nothing
        b"GET /slow HTTP/1.1\r\nHost: x\r\n",  # half a head, then nothing
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",  # body never sent
        b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000,  # slowloris: a byte at a time
    ],
    ids=["nothing", "half-head", "body-never-sent", "slowloris"],
)
def test_a_request_that_does_not_arrive_in_time_is_408_and_lets_go(timed_server, sent):
    """uvicorn closes idle keep-alive connections only between requests: a connection that sent half
    a head, a body it announced, or nothing at all was held for ever (20,000 took every descriptor)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", timed_server)) as sock:
        if sent.endswith(b"a" * 1000):
            threading.Thread(target=_trickle, args=(sock, sent, 0.05), daemon=True).start()
        else:
            sock.sendall(sent)
        answer = _read_all(sock, timeout=10)  # until the server closes
    took = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"content-type: application/problem+json" in head and b'"status":408' in body
    assert took < 6, took  # 1 s, the lingering close (2 s) and slack; not 10 s of read timeout


def test_the_read_timeout_does_not_cut_slow_answers_or_kept_alive_requests(timed_server):
    with socket.create_connection(("127.0.0.1", timed_server)) as sock:
        sock.settimeout(10)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.6)  # kept alive, within uvicorn's keep-alive timeout (5 s)
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")  # answered after 2 s
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"slow"), answer


# 2. odd digits, and security headers on every error ------------------------------------------------
def _probe_page(params):
    from test_api_units import MART

    from assay.api.query import filter_params, parse_page_request

    return parse_page_request(MART, params, filter_params(MART), default_limit=5, max_limit=50, max_in=10)


@pytest.mark.parametrize("text", ["²", "①", "٣", "３", "1" * 5000, "-1", "+5", " 5", "5 ", ""])
def test_limit_accepts_ascii_digits_only_and_says_400(text):
    from assay.api.errors import ApiError

    with pytest.raises(ApiError) as error:
        _probe_page([("limit", text)])
    assert error.value.status == 400
    assert _probe_page([("limit", "7")]).limit == 7


@pytest.mark.parametrize(("column", "text"), [("x", "٣"), ("x", "²"), ("n", "٣.5"), ("d", "٢٠٢٥-٠١-٠٦")])
def test_values_in_other_scripts_digits_are_400(column, text):
    from test_api_units import MART

    from assay.api.errors import ApiError
    from assay.api.query import parse_value

    with pytest.raises(ApiError) as error:
        parse_value(MART.by_name[column], text, column)
    assert error.value.status == 400


def _tiny_app(max_body_bytes: int = 100):
    from fastapi import FastAPI, Request

    from assay.api.errors import install_error_handlers
    from assay.api.middleware import GuardMiddleware

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("no")

    @app.get("/ok")
    async def ok() -> dict:
        return {}

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"n": len(await request.body())}

    app.add_middleware(GuardMiddleware, max_query_bytes=4096, max_body_bytes=max_body_bytes)
    return app


def test_a_500_carries_the_security_headers():
    from starlette.testclient import TestClient

    with TestClient(_tiny_app(), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_chunked_bodies_are_capped_even_where_nothing_reads_them():
    from starlette.testclient import TestClient

    def chunks(n: int):
        for _ in range(n):
            yield b"x" * 50

    with TestClient(_tiny_app(max_body_bytes=100)) as client:
        big = client.request("GET", "/ok", content=chunks(10))  # no content-length: chunked
        assert big.status_code == 413, big.text
        assert big.headers["content-type"] == "application/problem+json"
        assert big.headers.get_list("x-content-type-options") == ["nosniff"]  # once, not twice
        assert client.post("/echo", content=chunks(2)).json() == {"n": 100}
        assert client.post("/echo", content=chunks(3)).status_code == 413
        assert client.request("GET", "/ok", headers={"content-length": "1" * 5000}).status_code == 413


# 3. unauthenticated requests are rate limited per address; negative lookups are cached -----------
class _CountingDb:
    def __init__(self) -> None:
        self.lookups = 0

    async def fetch(self, query, params=None, **kwargs):
        self.lookups += 1
        return []


def _request(app, address: str, token: str):
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/marts",
        "headers": [(b"x-api-key", token.encode())],
        "client": (address, 1234),
        "app": app,
    }
    return Request(scope)


def test_random_keys_from_one_address_hit_429_after_a_burst_and_cost_no_lookup_then():
    import asyncio
    import secrets
    from types import SimpleNamespace

    from assay.api.errors import ApiError
    from assay.api.keys import KeyStore
    from assay.api.ratelimit import RateLimiter
    from assay.api.state import authenticate

    db = _CountingDb()
    state = SimpleNamespace(
        keys=KeyStore(db, cache_seconds=5, negative_seconds=2),
        limiter=RateLimiter(1000, 1000),
        strangers=RateLimiter(60, 20),
    )
    app = SimpleNamespace(state=SimpleNamespace(assay=state))

    async def attempt(address: str, token: str) -> int:
        try:
            await authenticate(_request(app, address, token))
        except ApiError as exc:
            return exc.status
        return 200

    async def main():
        random_keys = [f"assay_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" for _ in range(300)]
        statuses = [await attempt("203.0.113.9", key) for key in random_keys]
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
        assert db.lookups == 20  # refused before any lookup once over the budget
        # another address is not affected; a bad key seen before is answered from the negative cache
        assert await attempt("203.0.113.10", random_keys[0]) == 401
        assert await attempt("203.0.113.11", random_keys[0]) == 401
        assert db.lookups == 20

    asyncio.run(main())


def test_the_negative_key_cache_is_bounded_and_spares_valid_keys():
    import asyncio

    from assay.api.errors import ApiError
    from assay.api.keys import KeyStore

    store = KeyStore(_CountingDb(), cache_seconds=5, negative_seconds=2)
    store.MAX_CACHED = 50

    async def main():
        for i in range(200):
            with pytest.raises(ApiError):
                await store.authenticate(f"assay_{i:012x}_" + "A" * 43)
        assert len(store._rejected) == 50

    asyncio.run(main())


# 6. a table nobody has built: 409, the command that builds it, no Retry-After ---------------------
@pytest.mark.parametrize(
    ("table", "command"),
    [("agents.answers", "assay run --agents"), ("gold.process_dfg", "assay run`")],
)
def test_a_missing_table_says_which_command_builds_it(table, command):
    import psycopg

    from assay.api.db import _refused

    refused = _refused(psycopg.errors.UndefinedTable("gone"), table, 5000)
    assert refused is not None and refused.status == 409
    assert command in refused.detail and "Retry-After" not in refused.headers


# 8. one computation per cached page however many ask; the cache survives a busy pool -------------
def test_concurrent_misses_for_one_page_compute_it_once():
    import asyncio

    from assay.api.cache import Cached, ResponseCache

    cache = ResponseCache(1 << 20, 1.0)
    calls = 0

    async def compute() -> Cached:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return Cached((1,), b"page", "application/json", None)

    async def failing() -> Cached:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("one failure, shared")

    async def main():
        entries = await asyncio.gather(*(cache.single_flight("k", compute) for _ in range(50)))
        assert calls == 1 and {e.body for e in entries} == {b"page"} and cache.shared == 49
        results = await asyncio.gather(
            *(cache.single_flight("f", failing) for _ in range(10)), return_exceptions=True
        )
        assert calls == 2 and all(isinstance(r, RuntimeError) for r in results)
        # the computing request cancelled: the others compute it themselves, not fail
        leader = asyncio.create_task(cache.single_flight("c", compute))
        await asyncio.sleep(0)
        follower = asyncio.create_task(cache.single_flight("c", compute))
        await asyncio.sleep(0.01)
        leader.cancel()
        assert (await follower).body == b"page"
        assert not cache._inflight

    asyncio.run(main())


def test_a_busy_pool_does_not_turn_the_cache_off_but_a_dead_database_does():
    import asyncio

    from assay.api.cache import ResponseCache
    from assay.api.db import PoolBusy, unavailable

    cache = ResponseCache(1 << 20, 0.001)
    cache.versions = {"m": (1,)}

    class Db:
        def __init__(self, error):
            self.error = error
            self.calls = 0

        async def fetch(self, *args, **kwargs):
            self.calls += 1
            raise self.error

    async def run(db, polls: int):
        task = asyncio.create_task(cache.poll(db, "gold", {"t": "m"}))
        while db.calls < polls:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(run(Db(PoolBusy()), ResponseCache.BUSY_POLLS))
    assert cache.versions == {"m": (1,)}
    asyncio.run(run(Db(unavailable()), 1))
    assert cache.versions == {}


def test_pool_timeouts_are_logged_and_counted(caplog):
    from psycopg_pool import PoolTimeout

    from assay.api import db

    db._pool_timeouts.last = -float("inf")
    before = db.POOL_TIMEOUTS._value.get()
    with caplog.at_level("WARNING", logger="assay.api"):
        refused = db._refused(PoolTimeout("busy"), None, 5000)
    assert refused is not None and refused.status == 503 and "Retry-After" in refused.headers
    assert db.POOL_TIMEOUTS._value.get() == before + 1
    assert "no database connection came free" in caplog.text


# against the session's API server ------------------------------------------------------------------
ROWS = "/v1/marts/vendor_spend/rows"


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server, timeout=10) as client:
        yield client


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    return response.json()


def test_odd_digits_in_limit_are_400_with_the_security_headers(http, api_keys):
    headers = {"X-API-Key": api_keys["admin"]}
    for text in ("²", "①", "٣"):
        assert "limit" in _problem(http.get(ROWS, params={"limit": text}, headers=headers), 400)["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/search?q=",
        "/v1/search?k=0&q=x",
        "/v1/quality/scores?history=0",
        "/v1/quality/checks?bogus=1",
        "/v1/process/variants?limit=abc",
        "/v1/process/dfg?edge_kind=nope",
        "/v1/process/conformance/cases?is_fit=maybe",
        "/v1/answers/categorise?limit=0",
        "/v1/answers/" + "x" * 200,
        "/v1/audit?limit=0",
        ROWS + "?limit=0",
        "/v1/marts/vendor_spend/lookup?spend_rank=x",
    ],
)
def test_key_and_scope_are_checked_before_parameters(http, api_keys, path):
    _problem(http.get(path), 401)
    _problem(http.get(path, headers={"X-API-Key": "assay_0123456789ab_" + "A" * 43}), 401)
    if not path.startswith("/v1/marts"):
        # the vendors key has the marts scope only
        assert (
            "not allowed"
            in _problem(http.get(path, headers={"X-API-Key": api_keys["vendors"]}), 403)["detail"]
        )


def test_trailing_slash_is_not_redirected_to_the_host_header(http, api_keys):
    for path in ("/v1/marts/", ROWS + "/", "/health/live/"):
        response = http.get(path, headers={"Host": "evil.example", "X-API-Key": api_keys["admin"]})
        assert response.status_code == 404 and "location" not in response.headers
        assert "evil.example" not in response.text


def test_docs_and_redoc_load_only_local_assets(http):
    import re

    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")),
        ("/redoc", ("redoc.standalone.js",)),
    ):
        html = http.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert urls, html.text
        assert not [u for u in urls if "//" in u], urls  # no http(s):// nor protocol-relative URL
        for asset in assets:
            assert f"/docs/static/{asset}" in html.text
            served = http.get(f"/docs/static/{asset}")
            assert served.status_code == 200 and len(served.content) > 1000


def test_mart_pages_carry_an_etag_answer_304_and_come_gzipped(http, api_keys, conn):
    key = {"X-API-Key": api_keys["admin"]}
    # httpx decodes gzip (and br: see the next test)
    first = http.get(ROWS, headers={**key, "Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"].startswith("private, max-age=")
    assert first.headers.get_list("cache-control") == [first.headers["cache-control"]]  # not also no-store
    again = http.get(ROWS, headers={**key, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    plain = http.get(ROWS, headers={**key, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == first.json()
    assert plain.headers["etag"] == etag
    other = http.get(ROWS, params={"limit": 3}, headers={**key, "If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    # Last-Modified: when the pipeline last built the mart (its ANALYZE post-hook), to the second
    modified = parsedate_to_datetime(first.headers["last-modified"])
    (built,) = conn.execute(
        "select last_analyze from pg_stat_user_tables where schemaname = 'gold' and relname = %s",
        [ROWS.split("/")[3]],
    ).fetchone()
    assert modified == built.replace(microsecond=0)
    since = http.get(ROWS, headers={**key, "If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304 and since.headers["last-modified"] == first.headers["last-modified"]
    earlier = format_datetime(modified - dt.timedelta(seconds=1), usegmt=True)
    assert http.get(ROWS, headers={**key, "If-Modified-Since": earlier}).status_code == 200
    assert http.get(ROWS, headers={**key, "If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match decides when both are given
    both = {**key, "If-None-Match": '"other"', "If-Modified-Since": first.headers["last-modified"]}
    assert http.get(ROWS, headers=both).status_code == 200
    # the other endpoints: gzip by the middleware
    scores = http.get("/v1/quality/scores", headers={**key, "Accept-Encoding": "gzip"})
    assert scores.status_code == 200 and scores.headers["content-encoding"] == "gzip"


def test_an_if_modified_since_beyond_year_9999_is_ignored_not_a_500(http, api_keys):
    # parsedate_to_datetime raises OverflowError (not ValueError) on a year past a C int
    key = {"X-API-Key": api_keys["admin"]}
    for since in ("Mon, 01 Jan 99999999999 00:00:00 GMT", "Mon, 01 Jan 10000 00:00:00 GMT"):
        for path in (ROWS, "/v1/marts/vendor_spend/lookup?spend_rank=1"):
            response = http.get(path, headers={**key, "If-Modified-Since": since})
            assert response.status_code == 200, (since, path, response.text)


def test_a_nul_in_a_path_or_query_string_does_not_stop_the_access_audit(http, api_keys, conn):
    """Postgres text holds no NUL: one row with one (a 401 without a key on /v1/marts/a%00b, an
    admitted 400 with category=a%00b) made every flush of its batch fail, so the audit wrote nothing
    more until the server stopped. The NUL is written as U+FFFD and the rows around it are written."""
    key = {"X-API-Key": api_keys["admin"]}
    marker = f"nul-probe-{time.time_ns()}"
    assert http.get("/v1/marts/a%00b").status_code == 401  # counted refusal, mart "a\x00b"
    assert http.get(ROWS, params={"vendor_name": f"{marker}\x00"}, headers=key).status_code == 400
    assert http.get(ROWS, params={"vendor_name": marker}, headers=key).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        written = conn.execute(
            "select filters, status from audit.api_access where filters like %s order by access_id",
            [f"%{marker}%"],
        ).fetchall()
        refused = conn.execute(
            "select count(*) from audit.api_access where mart = %s and status = 401", ["a\ufffdb"]
        ).fetchone()[0]
        if len(written) == 2 and refused:
            break
        time.sleep(0.2)
    assert written == [(f"vendor_name={marker}\ufffd", 400), (f"vendor_name={marker}", 200)]
    assert refused


def test_br_is_preferred_when_accepted_and_decodes(http, api_keys):
    import brotli  # the api extra's; httpx decodes br with it

    key = {"X-API-Key": api_keys["admin"]}
    page = {"limit": 50}
    plain = http.get(ROWS, params=page, headers={**key, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 1000
    # a real client: httpx sends br itself and decodes it
    decoded = http.get(ROWS, params=page, headers=key)
    assert "br" in decoded.request.headers["accept-encoding"]
    assert decoded.headers["content-encoding"] == "br" and decoded.json() == plain.json()
    assert decoded.headers["etag"] == plain.headers["etag"] and "Accept-Encoding" in decoded.headers["vary"]
    with http.stream("GET", ROWS, params=page, headers={**key, "Accept-Encoding": "gzip, br"}) as raw:
        body = b"".join(raw.iter_raw())
    assert raw.headers["content-encoding"] == "br" and brotli.decompress(body) == plain.content
    gzipped = http.get(ROWS, params=page, headers={**key, "Accept-Encoding": "gzip"})
    assert len(body) < gzipped.num_bytes_downloaded < len(plain.content)
    # q-values: a refused br, or a preferred gzip, gets gzip
    for accept in ("br;q=0, gzip", "gzip;q=1, br;q=0.5"):
        chosen = http.get(ROWS, params=page, headers={**key, "Accept-Encoding": accept})
        assert chosen.headers["content-encoding"] == "gzip", accept
    # the middleware's routes: JSON endpoints and exports, streamed
    scores = http.get("/v1/quality/scores", headers={**key, "Accept-Encoding": "br"})
    assert scores.status_code == 200 and scores.headers["content-encoding"] == "br" and scores.json()
    export = "/v1/marts/category_trends/export"
    csv_plain = http.get(export, headers={**key, "Accept-Encoding": "identity"})
    csv_br = http.get(export, headers={**key, "Accept-Encoding": "br"})
    assert csv_br.headers["content-encoding"] == "br" and csv_br.text == csv_plain.text
    parquet = http.get(export, params={"format": "parquet"}, headers={**key, "Accept-Encoding": "br"})
    assert "content-encoding" not in parquet.headers  # zstd inside already


# filter operators: neq, nin, is, like / ilike, on bound values ------------------------------------
ROWS_PROBE = [(0, 1, "apple"), (1, 2, "Banana"), (2, None, "cherry"), (3, 2, None), (4, 3, "a_b%")]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("x__neq", "2")], [0, 4]),
        ([("x__nin", "1"), ("x__nin", "3")], [1, 3]),
        ([("x__is", "null")], [2]),
        ([("y__is", "notnull"), ("x__is", "notnull")], [0, 1, 4]),
        ([("y__like", "%an%")], [1]),
        ([("y__ilike", "b%")], [1]),
        ([("y__like", "a\\_b\\%")], [4]),  # wildcards escaped: literal _ and %
        ([("y__like", "'; drop table keyset_probe; --")], []),
    ],
)
def test_filter_operators_match_postgres(conn, params, expected):
    from test_api_units import MART

    from assay.api.query import build_page_query

    conn.execute(
        "create temp table if not exists keyset_probe"
        " (id integer primary key, x integer, y text, d date, n numeric, flag boolean)"
    )
    conn.execute("truncate keyset_probe")
    with conn.cursor() as cursor:
        cursor.executemany("insert into keyset_probe (id, x, y) values (%s, %s, %s)", ROWS_PROBE)
    query, values = build_page_query(MART, _probe_page(params))
    assert [row[-1] for row in conn.execute(query, values)] == expected


@pytest.mark.parametrize(
    "params",
    [[("x__is", "nothing")], [("x__like", "1")], [("d__ilike", "2025%")], [("x__neq", "a")], [("y__is", "")]],
)
def test_bad_operator_use_is_400(params):
    from assay.api.errors import ApiError

    with pytest.raises(ApiError) as error:
        _probe_page(params)
    assert error.value.status == 400


# 9. micro-batching: concurrent queries share one model call ----------------------------------------
def test_concurrent_queries_are_encoded_in_few_model_calls():
    import asyncio

    import numpy as np

    from assay.api.batching import PrecomputedEncoder, QueryBatcher

    sizes = []

    def encode(texts):
        sizes.append(len(texts))
        time.sleep(0.05)  # a model call: fixed cost
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)

    async def main():
        batcher = QueryBatcher(encode, max_batch=64)
        alone = await batcher.encode("one")
        assert alone.tolist() == [3.0, 1.0] and sizes == [1]  # nothing waits for a batch to fill
        texts = [f"query {'x' * i}" for i in range(50)]
        vectors = await asyncio.gather(*(batcher.encode(t) for t in texts))
        assert [v[0] for v in vectors] == [float(len(t)) for t in texts]  # each its own vector
        assert len(sizes) <= 3 and sum(sizes) == 51, sizes

        def broken(texts):
            raise RuntimeError("model failed")

        failing = QueryBatcher(broken)
        results = await asyncio.gather(*(failing.encode("q") for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert (await batcher.encode("again"))[0] == 5.0  # the batcher carries on after a failure

    asyncio.run(main())

    class Real:
        name = "real"

        def encode_queries(self, texts):
            return np.zeros((len(texts), 2), dtype=np.float32)

    stand_in = PrecomputedEncoder(Real(), {"q": np.ones(2, dtype=np.float32)})
    assert stand_in.encode_queries(["q"]).tolist() == [[1.0, 1.0]]
    assert stand_in.encode_queries(["q", "other"]).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert stand_in.name == "real"


# keys with an expiry ---------------------------------------------------------------------------------
def test_an_expired_key_is_refused_even_from_the_key_cache():
    import asyncio
    import hashlib

    from assay.api.errors import ApiError
    from assay.api.keys import KeyStore

    token = "assay_0123456789ab_" + "B" * 43
    expires = time.time() + 0.3

    class Db:
        async def fetch(self, query, params=None, **kwargs):
            digest = hashlib.sha256(token.encode()).digest()
            return [(digest, "soon", ["marts"], ["*"], None, False, expires, [])]

    async def main():
        store = KeyStore(Db(), cache_seconds=60)
        assert (await store.authenticate(token)).name == "soon"
        await asyncio.sleep(0.35)
        with pytest.raises(ApiError) as error:
            await store.authenticate(token)  # cached, and expired meanwhile
        assert error.value.status == 401 and "expired" in error.value.detail
        with pytest.raises(ApiError, match="expired"):
            await KeyStore(Db(), cache_seconds=60).authenticate(token)  # looked up afresh

    asyncio.run(main())


def test_keys_store_and_list_their_expiry(postgres):
    import datetime as dt

    from assay.api.keys import create_key, list_keys

    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    info, _ = create_key(postgres, "expiring", expires_at=when)
    listed = next(k for k in list_keys(postgres) if k.id == info.id)
    assert abs((listed.expires_at - when).total_seconds()) < 1
    with pytest.raises(ValueError, match="past"):
        create_key(postgres, "already over", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


def test_cli_creates_a_key_that_expires(postgres):
    from click.testing import CliRunner

    from assay.orchestration.cli import main

    created = CliRunner().invoke(main, ["api-key", "create", "cli expiring", "--expires-in-days", "7"])
    assert created.exit_code == 0, created.output
    assert "expires" in created.output
    listed = CliRunner().invoke(main, ["api-key", "list"])
    line = next(row for row in listed.output.splitlines() if "cli expiring" in row)
    assert "expires" in line
