"""The read API's locks: keys and scopes, rate limits, size caps, CORS, read-only access, error bodies."""

import base64
import hashlib
import json
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

ROWS = "/v1/marts/vendor_spend/rows"
# one path per endpoint outside the marts, with the scope it needs
SCOPED = {
    "/v1/answers": "answers",
    "/v1/answers/categorise": "answers",
    "/v1/answers/categorise/some-key": "answers",
    "/v1/search?q=flight": "search",
    "/v1/process/variants": "process",
    "/v1/process/dfg": "process",
    "/v1/process/bottlenecks": "process",
    "/v1/process/conformance": "process",
    "/v1/process/conformance/cases": "process",
    "/v1/quality/scores": "quality",
    "/v1/quality/checks": "quality",
    "/v1/audit": "audit",
}


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server, timeout=10) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_problem(response: httpx.Response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and fragment in body["detail"]
    for leak in ("Traceback", "psycopg", "select ", "SELECT", 'File "'):
        assert leak not in response.text


def test_requests_without_a_valid_key_are_401(http, api_keys):
    missing = http.get(ROWS)
    _assert_problem(missing, 401, "missing API key")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_problem(http.get(ROWS, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401, "Bearer")
    _assert_problem(http.get(ROWS, headers=_bearer("not-a-key")), 401, "malformed")
    forged = "assay_0123456789ab_" + "A" * 43
    _assert_problem(http.get(ROWS, headers=_bearer(forged)), 401, "invalid or revoked")
    admin = api_keys["admin"]
    wrong_secret = admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB")
    _assert_problem(http.get(ROWS, headers=_bearer(wrong_secret)), 401, "invalid or revoked")
    _assert_problem(http.get(ROWS, headers=_bearer(api_keys["revoked"])), 401, "invalid or revoked")
    assert http.get(ROWS, headers={"X-API-Key": admin}).status_code == 200
    # the health checks and the docs are open
    assert http.get("/health/live").status_code == 200
    assert http.get("/openapi.json").status_code == 200


def test_scopes_limit_endpoints_and_marts_with_403(http, api_keys):
    headers = _bearer(api_keys["vendors"])
    assert http.get(ROWS, headers=headers).status_code == 200
    assert http.get("/v1/marts/vendor_spend/lookup?spend_rank=1", headers=headers).status_code == 200
    listed = http.get("/v1/marts", headers=headers).json()["marts"]
    assert [m["name"] for m in listed] == ["vendor_spend"]
    for path in (
        "/v1/marts/monthly_summary/rows",
        "/v1/marts/monthly_summary",
        "/v1/marts/category_trends/lookup?week_start=2025-01-06&category=travel",
    ):
        _assert_problem(http.get(path, headers=headers), 403, "not allowed to read mart")
    _assert_problem(http.get("/metrics", headers=headers), 403, "'metrics'")
    _assert_problem(http.get("/metrics"), 401)


def test_every_endpoint_needs_a_key_with_its_scope(http, postgres, api_keys, agent_answers):
    from assay.api.keys import SCOPES, create_key

    assert set(SCOPED.values()) | {"marts", "metrics", "ask"} == set(
        SCOPES
    )  # POST /v1/ask: tests/test_ask.py
    keys = {scope: create_key(postgres, f"only {scope}", scopes=[scope])[1] for scope in set(SCOPED.values())}
    for path, scope in SCOPED.items():
        _assert_problem(http.get(path), 401, "missing API key")
        _assert_problem(http.get(path, headers=_bearer(api_keys["revoked"])), 401, "invalid or revoked")
        _assert_problem(http.get(path, headers=_bearer(api_keys["vendors"])), 403, f"{scope!r}")
        for other, token in keys.items():
            response = http.get(path, headers=_bearer(token))
            if other == scope:
                assert response.status_code in (200, 404), (path, response.text)  # 404: no such key
            else:
                _assert_problem(response, 403, f"not allowed to use the {scope!r} endpoints")


def test_keys_are_stored_hashed_and_the_reader_cannot_write_them(conn, postgres, api_keys):
    token = api_keys["vendors"]
    key_id = token.split("_")[1]
    row = conn.execute("select * from api.keys where id = %s", [key_id]).fetchone()
    secret = token.split("_", 2)[2]  # the secret itself may hold "_"
    assert token not in str(row) and secret not in str(row)
    (stored,) = conn.execute("select secret_sha256 from api.keys where id = %s", [key_id]).fetchone()
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()
    # the role's own grants, as a client like psql meets them: no read-only session settings
    with psycopg.connect(postgres.reader_url(), autocommit=True) as reader:
        assert reader.execute("select count(*) from api.keys").fetchone()[0] >= 3
        for statement in (
            "update api.keys set revoked_at = null",
            "insert into api.keys (id, name, secret_sha256, scopes, marts) values ('x', 'x', '', '{}', '{}')",
            "delete from api.keys",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)


def test_cli_creates_lists_and_revokes_keys(http):
    from assay.orchestration.cli import main

    runner = CliRunner()
    created = runner.invoke(main, ["api-key", "create", "cli test", "--mart", "vendor_spend"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    _, key_id, secret = token.split("_", 2)  # the secret is url-safe base64: it may hold "_" too
    assert http.get(ROWS, headers=_bearer(token)).status_code == 200
    listed = runner.invoke(main, ["api-key", "list"])
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert "cli test" in line and "vendor_spend" in line and "active" in line
    assert secret not in listed.stdout
    revoked = runner.invoke(main, ["api-key", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in next(
        ln for ln in runner.invoke(main, ["api-key", "list"]).stdout.splitlines() if key_id in ln
    )
    time.sleep(0.3)  # the test server trusts a checked key for 0.2 s
    _assert_problem(http.get(ROWS, headers=_bearer(token)), 401, "revoked")
    assert runner.invoke(main, ["api-key", "revoke", key_id]).exit_code == 1
    unknown_mart = runner.invoke(main, ["api-key", "create", "x", "--mart", "silver_transactions"])
    assert unknown_mart.exit_code == 2 and "unknown mart" in unknown_mart.output
    unknown_scope = runner.invoke(main, ["api-key", "create", "x", "--scope", "admin"])
    assert unknown_scope.exit_code == 2 and "unknown scope" in unknown_scope.output


def test_rate_limit_per_key_is_429_with_retry_after(http, postgres, api_keys):
    from assay.api.keys import create_key

    _, slow = create_key(postgres, "two per minute", rate_limit_per_minute=2)
    assert [http.get(ROWS, headers=_bearer(slow)).status_code for _ in range(2)] == [200, 200]
    limited = http.get(ROWS, headers=_bearer(slow))
    _assert_problem(limited, 429, "rate limit")
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    # other keys are not affected
    assert http.get(ROWS, headers=_bearer(api_keys["admin"])).status_code == 200


def test_request_size_caps(http, api_keys):
    headers = _bearer(api_keys["admin"])
    _assert_problem(http.get(ROWS, params={"vendor_name": "x" * 5000}, headers=headers), 414, "4096")
    _assert_problem(http.post(ROWS, content=b"x" * 70_000, headers=headers), 413)
    _assert_problem(http.get(ROWS, params={"limit": 51}, headers=headers), 400, "limit")
    many = [("vendor_id__in", str(i)) for i in range(11)]
    _assert_problem(http.get(ROWS, params=many, headers=headers), 400, "at most 10")


def test_cors_is_off_unless_configured(http, api_keys, api_settings, postgres):
    from starlette.testclient import TestClient

    from assay.api.app import create_app

    origin = {"Origin": "https://evil.example"}
    plain = http.get(ROWS, headers={**origin, **_bearer(api_keys["admin"])})
    assert "access-control-allow-origin" not in plain.headers
    preflight = http.options(ROWS, headers={**origin, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers

    settings = api_settings.model_copy(update={"cors_origins": ["https://app.example"]})
    with TestClient(create_app(settings, postgres)) as client:
        allowed = client.get(ROWS, headers={"Origin": "https://app.example", **_bearer(api_keys["admin"])})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "X-Next-Cursor" in allowed.headers["access-control-expose-headers"]
        other = client.get(ROWS, headers={**origin, **_bearer(api_keys["admin"])})
        assert "access-control-allow-origin" not in other.headers


def _fingerprint(conn) -> dict:
    """Everything a write would change: relations, row contents of gold and api, write counters."""
    relations = conn.execute(
        "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') order by 1, 2"
    ).fetchall()
    contents = {}
    for schema, table in conn.execute(
        "select schemaname, relname from pg_stat_user_tables"
        " where schemaname in ('gold', 'api', 'agents', 'quality', 'platinum')"
    ).fetchall():
        digest = "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} t"
        if (schema, table) == ("api", "keys"):
            # the one write a request makes on purpose: the access audit stamps the key's last use
            digest = digest.replace("t::text", "(to_jsonb(t) - 'last_used_at')::text")
        contents[f"{schema}.{table}"] = conn.execute(
            sql.SQL(digest).format(sql.Identifier(schema, table))
        ).fetchone()
    counters = conn.execute(
        "select sum(n_tup_ins + n_tup_del + case when (schemaname, relname) = ('api', 'keys') then 0"
        " else n_tup_upd end) from pg_stat_user_tables"
        " where schemaname in ('gold', 'api', 'agents', 'quality', 'platinum')"
    ).fetchone()
    roles = conn.execute("select rolname, rolsuper, rolcanlogin from pg_roles order by 1").fetchall()
    return {"relations": relations, "contents": contents, "counters": counters, "roles": roles}


INJECTIONS = [
    "x'; drop table gold.vendor_spend; --",
    "1; delete from api.keys",
    "') or 1=1 --",
    "1 union select secret_sha256 from api.keys",
    "$$; create table gold.pwned(); $$",
    "\\'; insert into gold.vendor_spend default values; --",
]


def test_no_input_can_write(http, conn, api_keys, agent_answers):
    headers = _bearer(api_keys["admin"])
    before = _fingerprint(conn)
    statuses = []

    def send(method: str, path: str, **kwargs) -> None:
        response = http.request(method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)
        statuses.append(response.status_code)
        assert response.status_code < 500, (path, kwargs, response.text)

    for value in INJECTIONS:
        for param in (
            "vendor_name",
            "vendor_id__in",
            "vendor_name__gte",
            "spend_rank",
            "total_amount_eur__lt",
        ):
            send("GET", ROWS, params={param: value})
        send("GET", ROWS, params={"sort": value})
        send("GET", ROWS, params={value: "1"})
        send("GET", ROWS, params={"limit": value})
        send("GET", ROWS, params={"format": value})
        cursor = base64.urlsafe_b64encode(json.dumps({"s": "spend_rank", "v": [value]}).encode()).decode()
        send("GET", ROWS, params={"cursor": cursor})
        send("GET", ROWS, params={"cursor": value})
        send("GET", f"/v1/marts/{value}")
        send("GET", f"/v1/marts/{value}/rows")
        send("GET", "/v1/marts/vendor_spend/lookup", params={"spend_rank": value})
        send(
            "GET",
            "/v1/marts/monthly_summary/lookup",
            params={"month": "2025-01-01", "category": value, "department": value},
        )
        send("GET", ROWS, headers={"X-API-Key": value})
        # the other endpoint groups: every path segment, filter and cursor
        cursor = base64.urlsafe_b64encode(json.dumps([value]).encode()).decode()
        send("GET", f"/v1/answers/{value}")
        send("GET", f"/v1/answers/categorise/{value}")
        send("GET", f"/v1/answers/{value}/{value}")
        send("GET", "/v1/answers/categorise", params={"cursor": cursor})
        send("GET", "/v1/answers/categorise", params={"cursor": value, "limit": value})
        send("GET", "/v1/search", params={"q": value})
        for param in ("category", "department", "vendor_id", "doc_type", "method", "k", "date_from"):
            send("GET", "/v1/search", params={"q": "flight", param: value})
        send("GET", "/v1/search", params={"q": value, "method": "fulltext", value: value})
        send("GET", "/v1/process/variants", params={"cursor": cursor})
        pair = base64.urlsafe_b64encode(json.dumps([1, value]).encode()).decode()
        send("GET", "/v1/process/variants", params={"cursor": pair})
        send("GET", "/v1/process/dfg", params={"edge_kind": value})
        send("GET", "/v1/process/bottlenecks", params={"kind": value})
        for param in ("variant_id", "is_fit", "cursor"):
            send("GET", "/v1/process/conformance/cases", params={param: value})
        send("GET", "/v1/process/conformance/cases", params={"cursor": cursor})
        for param in ("table", "layer", "history"):
            send("GET", "/v1/quality/scores", params={param: value})
        for param in ("asset_key", "check_name", "passed"):
            send("GET", "/v1/quality/checks", params={param: value})
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        send(method, ROWS, json={"vendor_name": INJECTIONS[0]})
        send(method, "/v1/marts/vendor_spend/lookup?spend_rank=1")
        send(method, "/v1/answers/categorise", json={"answer": INJECTIONS[0]})
        send(method, "/v1/search?q=x")
    # string filters were bound values: a legitimate name with SQL characters simply matches nothing
    assert http.get(ROWS, params={"vendor_name": INJECTIONS[0]}, headers=headers).json()["rows"] == []
    found = http.get("/v1/quality/checks", params={"asset_key": INJECTIONS[0]}, headers=headers).json()
    assert found["checks"] == []
    assert set(statuses) <= {200, 400, 401, 404, 405}
    assert statuses.count(405) == 16
    assert _fingerprint(conn) == before


def test_api_sessions_are_read_only_even_for_a_statement_it_would_never_send(postgres, api_settings):
    """Defence in depth under the allowlist: the API's role and session settings refuse writes."""
    from assay.api.db import session_options

    with psycopg.connect(postgres.reader_url(), autocommit=True, options=session_options(api_settings)) as c:
        assert c.execute("show default_transaction_read_only").fetchone() == ("on",)
        (timeout,) = c.execute(
            "select setting::int from pg_settings where name = 'statement_timeout'"
        ).fetchone()
        assert timeout == api_settings.statement_timeout_ms
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("create temp table scratch (x int)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("delete from gold.vendor_spend")
        with c.transaction():  # even with a read-write transaction, the role has no write grants
            c.execute("set transaction read write")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("delete from gold.vendor_spend")


def test_unexpected_errors_answer_500_without_details(api_settings, postgres, api_keys):
    from starlette.testclient import TestClient

    from assay.api.app import create_app

    app = create_app(api_settings, postgres)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("select secret_sha256 from api.keys -- internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    _assert_problem(response, 500, "internal error (reference")
    assert "secret" not in response.text and "RuntimeError" not in response.text


def test_assay_serve_with_two_workers(api_keys, pipeline_run, tmp_path, assay_home):
    """`assay serve` as users start it: uvicorn workers share rate limits and one metrics exposition;
    a search in a worker that has not loaded the embedding model yet."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parent.parent  # this checkout's code, whatever the cwd is now
    env = {**os.environ, "ASSAY_API_ACCESS_LOG": "false", "PYTHONPATH": str(repo)}
    log = (tmp_path / "serve.log").open("w")
    command = [
        sys.executable,
        "-m",
        "assay.orchestration.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    server = subprocess.Popen(command, env=env, cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        headers = _bearer(api_keys["admin"])
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            assert client.get("/health/ready").json()["database"] == "ok"
            for _ in range(6):  # new connections: spread over both workers
                assert httpx.get(f"{base}{ROWS}?limit=1", headers=headers).status_code == 200
            # a fresh worker's first search loads the embedding model (outside the search's transaction)
            search = client.get("/v1/search", params={"q": "flight to London", "k": 3}, timeout=180)
            assert search.status_code == 200, search.text
            assert len(search.json()["hits"]) == 3
            metrics = client.get("/metrics").text
        line = next(m for m in metrics.splitlines() if m.startswith("assay_api_requests_total") and ROWS in m)
        assert float(line.rsplit(" ", 1)[1]) == 6  # summed over the workers
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    # it left the embedded server's list of users (or the server would never stop)
    users = json.loads((assay_home / "pgdata" / ".handle_pids.json").read_text())
    assert server.pid not in users and os.getpid() in users


def test_search_sees_only_the_documents_of_the_keys_marts(http, postgres, conn):
    """A transaction document discloses what all four marts aggregate, a vendor document what
    vendor_spend names; the restriction is in the search's SQL, so `k` still fills with visible hits.
    A key without vendor_monthly (per vendor, month and department) sees no transaction document."""
    from assay.api.keys import create_key

    tokens = {
        marts[0]: create_key(postgres, f"search {marts[0]}", scopes=["search"], marts=marts)[1]
        for marts in (
            ["*"],
            ["vendor_spend"],
            ["monthly_summary", "category_trends"],
            ["category_trends", "monthly_summary", "vendor_spend"],
        )
    }
    vendor_id, name = conn.execute(
        "select vendor_id, title from platinum.documents where doc_type = 'vendor' order by doc_id limit 1"
    ).fetchone()
    vendor_docs = conn.execute(
        "select count(*) from platinum.documents where doc_type = 'vendor'"
    ).fetchone()[0]
    k = min(8, vendor_docs)

    def hits(token: str, **params) -> list[dict]:
        response = http.get("/v1/search", params={"q": name, "k": k, **params}, headers=_bearer(token))
        assert response.status_code == 200, response.text
        return response.json()["hits"]

    for method in ("vector", "fulltext", "hybrid"):
        everything = hits(tokens["*"], method=method)
        assert "transaction" in {h["doc_type"] for h in everything}, method  # the query finds transactions
        restricted = hits(tokens["vendor_spend"], method=method)
        assert restricted and {h["doc_type"] for h in restricted} == {"vendor"}, method
        if method == "vector":
            assert len(restricted) == k  # filtered before the top k, not after
    assert f"vendor:{vendor_id}" in [h["doc_id"] for h in hits(tokens["vendor_spend"], method="fulltext")]
    assert hits(tokens["vendor_spend"], doc_type="transaction") == []
    assert {h["doc_type"] for h in hits(tokens["category_trends"], method="fulltext")} == {"vendor"}
    _assert_problem(
        http.get("/v1/search", params={"q": name}, headers=_bearer(tokens["monthly_summary"])),
        403,
        "may read no search documents",
    )


def test_a_read_leaves_an_audit_row_and_the_reader_can_write_nothing_else(
    pipeline_run, postgres, api_settings, api_keys
):
    import psycopg
    from fastapi.testclient import TestClient

    from assay.api.app import create_app
    from assay.api.keys import list_keys

    key_id = next(k.id for k in list_keys(postgres) if k.name == "test vendors")
    app = create_app(api_settings.model_copy(update={"preload_search_model": False}), postgres)
    with postgres.connect(autocommit=True) as conn:
        before = conn.execute("select now()").fetchone()[0]
    with TestClient(app, headers={"X-API-Key": api_keys["vendors"]}) as c:
        assert c.get("/v1/marts/vendor_spend/rows", params={"limit": 1}).status_code == 200
    # leaving the TestClient ends the lifespan, which writes what is queued
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select key_id, method, route, mart from audit.api_access where accessed_at >= %s", [before]
        ).fetchall()
    mine = {(method, route, mart) for key, method, route, mart in rows if key == key_id}
    assert ("GET", "/v1/marts/vendor_spend/rows", "vendor_spend") in mine
    used = {k.id: k.last_used_at for k in list_keys(postgres)}[key_id]
    assert used is not None and used >= before
    from assay.orchestration.cli import main

    listed = CliRunner().invoke(main, ["api-key", "list"]).stdout.splitlines()
    assert "last used" in listed[0]
    assert f"{used:%Y-%m-%d %H:%M}" in next(line for line in listed if line.startswith(key_id))
    # the reader's only door is the function: no direct write to the audit table or anywhere else
    with postgres.connect(autocommit=True, reader=True) as reader:
        reader.execute("set session characteristics as transaction read write")
        for statement in (
            "insert into audit.api_access (accessed_at, key_id, method, route)"
            " values (now(), 'x', 'GET', '/')",
            "delete from audit.api_access",
            "update api.keys set last_used_at = null",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)
