"""`assay audit` and the refused requests in the access audit, on a real embedded server and the real
API app: 401, 403 and 429 answers are recorded, a flood without a key is counted in memory and written
as one row per group and flush (not one per request), a 403 after the key was checked is recorded in
that request's own row, and `assay audit` answers who read what, when, filtered by key, time and route.
Over the session's pipeline output: each admitted request's row holds its query string, the rows it
was served, its status (also 400, 404) and what it asked (search, question, answer)."""

import datetime as dt

import pytest
from click.testing import CliRunner
from homes import own_home

pytestmark = pytest.mark.integration

FLOOD = 50


def test_each_read_records_its_filters_row_count_status_and_question(
    pipeline_run, postgres, api_settings, api_keys
):
    """First in this module: it reads the session's home (the others below make their own)."""
    from fastapi.testclient import TestClient

    from assay.api.app import create_app
    from assay.api.keys import list_keys
    from assay.orchestration.cli import main

    ids = {k.name: k.id for k in list_keys(postgres)}
    vendors, admin = ids["test vendors"], ids["test admin"]
    settings = api_settings.model_copy(update={"preload_search_model": False, "audit_flush_seconds": 3600})
    with postgres.connect(autocommit=True) as conn:
        before = conn.execute("select now()").fetchone()[0]
        (top,) = conn.execute("select count(*) from gold.vendor_spend where spend_rank <= 4").fetchone()
    secret = api_keys["vendors"]
    with TestClient(create_app(settings, postgres)) as client:
        as_vendors = {"X-API-Key": api_keys["vendors"]}
        page = client.get("/v1/marts/vendor_spend/rows?spend_rank__lte=4&limit=3", headers=as_vendors)
        assert page.status_code == 200 and len(page.json()["rows"]) == min(3, top)
        assert (
            client.get("/v1/marts/vendor_spend/lookup?spend_rank=999999", headers=as_vendors).status_code
            == 404
        )
        assert (
            client.get(f"/v1/marts/vendor_spend/rows?colour=red&key={secret}", headers=as_vendors).status_code
            == 400
        )
        for kind in ("csv", "parquet"):  # COPY's count; the batches' count
            exported = client.get(
                f"/v1/marts/vendor_spend/export?format={kind}&spend_rank__lte=4", headers=as_vendors
            )
            assert exported.status_code == 200, exported.text
        as_admin = {"X-API-Key": api_keys["admin"]}
        found = client.get(
            "/v1/search", params={"q": "taxi ride", "method": "fulltext", "k": 5}, headers=as_admin
        )
        assert found.status_code == 200, found.text
        question = "How many transactions were there in 2025?"
        asked = client.post("/v1/ask", json={"question": question}, headers=as_admin)
        assert asked.status_code == 200, asked.text
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select key_id, route, status, filters, row_count, subject from audit.api_access"
            " where accessed_at >= %s and key_id = any(%s) order by access_id",
            [before, [vendors, admin]],
        ).fetchall()
    hits = len(found.json()["hits"])
    assert rows == [
        (vendors, "/v1/marts/vendor_spend/rows", 200, "spend_rank__lte=4&limit=3", min(3, top), None),
        (vendors, "/v1/marts/vendor_spend/lookup", 404, "spend_rank=999999", None, None),
        (vendors, "/v1/marts/vendor_spend/rows", 400, f"colour=red&key=assay_{vendors}_***", None, None),
        (vendors, "/v1/marts/{mart}/export", 200, "format=csv&spend_rank__lte=4", top, None),
        (vendors, "/v1/marts/{mart}/export", 200, "format=parquet&spend_rank__lte=4", top, None),
        (admin, "/v1/search", 200, "q=taxi ride&method=fulltext&k=5", hits, "taxi ride"),
        (admin, "/v1/ask", 200, None, len(asked.json()["rows"]), question),
    ]
    assert secret[len(f"assay_{vendors}_") :] not in repr(rows)  # never the key's secret
    shown = CliRunner().invoke(main, ["audit", "--key", admin, "--since", before.isoformat()])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "rows" in lines[0] and "asked" in lines[0]
    assert question in lines[1] and " 200 " in lines[1] and "taxi ride" in lines[2]


@pytest.fixture(scope="module")
def home():
    with own_home("assay-audit-") as home:
        yield home


def test_refusals_are_counted_and_assay_audit_shows_who_read_what(home):
    from fastapi.testclient import TestClient

    from assay.api.app import create_app
    from assay.api.keys import create_key
    from assay.core.database import PostgresResource
    from assay.core.settings import ApiSettings
    from assay.orchestration.cli import main

    postgres = PostgresResource()
    reader, reader_token = create_key(postgres, "reader", scopes=["marts"])
    searcher, searcher_token = create_key(postgres, "searcher", scopes=["search"])
    slow, slow_token = create_key(postgres, "slow", scopes=["marts"], rate_limit_per_minute=1)
    settings = ApiSettings(
        access_log=False,
        preload_search_model=False,
        audit_flush_seconds=3600,  # only the final flush writes: one row per group, exactly
        unauthenticated_per_minute=20,
        unauthenticated_burst=20,
    )
    with postgres.connect(autocommit=True) as conn:
        before = conn.execute("select now()").fetchone()[0]
    with TestClient(create_app(settings, postgres)) as client:
        assert client.get("/v1/marts", headers={"X-API-Key": reader_token}).status_code == 200
        assert client.get("/v1/marts", headers={"X-API-Key": searcher_token}).status_code == 403
        assert client.get("/v1/marts", headers={"X-API-Key": slow_token}).status_code == 200
        assert client.get("/v1/marts", headers={"X-API-Key": slow_token}).status_code == 429
        # then a flood without a key (after which this address is refused whatever key it sends)
        statuses = [client.get("/v1/marts").status_code for _ in range(FLOOD)]
    # the bucket refills one token every 3 s: a slow machine may let one more through as 401
    assert statuses.count(401) in (20, 21) and statuses.count(429) == FLOOD - statuses.count(401)

    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select key_id, route, status, client, requests from audit.api_access"
            " where accessed_at >= %s order by key_id nulls first, status nulls first",
            [before],
        ).fetchall()
    expected = [
        (None, "/v1/marts", 401, "testclient", statuses.count(401)),  # the flood: two rows, not 50
        (None, "/v1/marts", 429, "testclient", statuses.count(429)),
        (reader.id, "/v1/marts", 200, None, 1),
        (searcher.id, "/v1/marts", 403, None, 1),  # its own row
        (slow.id, "/v1/marts", 200, None, 1),
        (slow.id, "/v1/marts", 429, "testclient", 1),
    ]
    assert sorted(rows, key=repr) == sorted(expected, key=repr)

    runner = CliRunner()
    mine = runner.invoke(main, ["audit", "--key", slow.id, "--since", "1h"])
    assert mine.exit_code == 0, mine.output
    lines = mine.output.splitlines()
    assert lines[0].startswith("time (UTC)") and len(lines) == 3
    assert all(slow.id in line and "slow" in line and "/v1/marts" in line for line in lines[1:])
    assert "429" in lines[1] and " 200 " in lines[2]  # newest first
    refused = runner.invoke(main, ["audit", "--refused", "--route", "/v1/m"])
    assert refused.exit_code == 0, refused.output
    assert len(refused.output.splitlines()) == 1 + 4
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    none = runner.invoke(main, ["audit", "--since", later])
    assert none.exit_code == 0 and "No audit rows match" in none.output
    bad = runner.invoke(main, ["audit", "--since", "yesterday"])
    assert bad.exit_code == 2 and "neither a date/time" in bad.output


def test_get_v1_audit_answers_who_read_what_for_an_audit_key_only(home):
    import psycopg
    from fastapi.testclient import TestClient

    from assay.api.app import create_app
    from assay.api.keys import create_key
    from assay.core.database import PostgresResource
    from assay.core.settings import ApiSettings

    postgres = PostgresResource()
    reader, reader_token = create_key(postgres, "mart reader", scopes=["marts"])
    auditor, auditor_token = create_key(postgres, "auditor", scopes=["audit"])
    _, admin_token = create_key(postgres, "everything", scopes=["*"])
    settings = ApiSettings(access_log=False, preload_search_model=False, audit_flush_seconds=3600)
    with postgres.connect(autocommit=True) as conn:
        before = conn.execute("select now()").fetchone()[0]
    with TestClient(create_app(settings, postgres)) as client:  # leaving it writes the queued rows
        assert client.get("/v1/marts", headers={"X-API-Key": reader_token}).status_code == 200
        assert client.get("/v1/audit", headers={"X-API-Key": reader_token}).status_code == 403

    def problem(response, status):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"

    with TestClient(create_app(settings, postgres)) as client:
        problem(client.get("/v1/audit"), 401)
        problem(client.get("/v1/audit", params={"limit": 0}), 401)  # the key before the parameters
        problem(client.get("/v1/audit", headers={"X-API-Key": admin_token}), 403)  # `*` is not enough
        problem(client.get("/v1/audit", params={"limit": 0}, headers={"X-API-Key": admin_token}), 403)
        as_auditor = {"X-API-Key": auditor_token}
        problem(client.get("/v1/audit", params={"limit": 0}, headers=as_auditor), 400)
        problem(client.get("/v1/audit", params={"since": "yesterday"}, headers=as_auditor), 400)
        problem(client.get("/v1/audit", params={"colour": "red"}, headers=as_auditor), 400)

        def accesses(**params):
            response = client.get(
                "/v1/audit", params={"since": before.isoformat(), **params}, headers=as_auditor
            )
            assert response.status_code == 200, response.text
            return response.json()

        mine = accesses(key_id=reader.id)
        rows = [
            (a["key_id"], a["key_name"], a["method"], a["route"], a["mart"], a["status"])
            for a in mine["accesses"]
        ]
        assert rows == [
            (reader.id, "mart reader", "GET", "/v1/audit", None, 403),  # newest first
            (reader.id, "mart reader", "GET", "/v1/marts", None, 200),
        ]
        assert not mine["truncated"]
        assert [a["route"] for a in accesses(key_id=reader.id, route="/v1/m")["accesses"]] == ["/v1/marts"]
        refused = accesses(refused="true")["accesses"]
        assert {(a["key_id"], a["status"]) for a in refused} == {(reader.id, 403)}
        one = accesses(key_id=reader.id, limit=1)
        assert len(one["accesses"]) == 1 and one["truncated"]
        assert accesses(key_id=auditor.id)["accesses"] == []  # this client's rows are not written yet
        assert accesses(key_id="' or 1=1 --")["accesses"] == []  # a bound value, not SQL
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
        assert accesses(since=later)["accesses"] == []  # no offset: UTC

    # the reader reads the audit table, and still writes it only through audit.record_access
    with psycopg.connect(postgres.reader_url(), autocommit=True) as conn:
        assert conn.execute("select count(*) from audit.api_access").fetchone()[0] >= 2
        for statement in (
            "insert into audit.api_access (accessed_at, key_id, method, route)"
            " values (now(), 'x', 'GET', '/')",
            "update audit.api_access set status = null",
            "delete from audit.api_access",
            "truncate audit.api_access",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_refusal_counters_are_bounded():
    from assay.api.audit import OVERFLOW, AccessLog

    log = AccessLog("postgresql:///unused", max_denial_groups=3)
    for n in range(1000):
        log.deny(None, f"10.0.{n // 256}.{n % 256}", "GET", "/v1/marts", None, 401)
    rows = log._take_denials()
    assert len(rows) == 4  # three groups, then everything else together
    assert sum(r["requests"] for r in rows) == 1000
    assert [r for r in rows if r["client"] == OVERFLOW][0]["requests"] == 997


def test_rows_queued_during_a_flush_are_neither_lost_nor_written_twice(postgres):
    import asyncio

    from assay.api.audit import AccessLog
    from assay.api.keys import create_key

    key, _ = create_key(postgres, "flush race", scopes=["marts"])
    log = AccessLog(postgres.reader_url(), max_queue=4)

    def request(n: int) -> None:
        log.finish(AccessLog.admitted(key.id, "GET", f"/v1/marts/race{n}", None, b""), 200)

    async def race() -> tuple[int, int]:
        for n in range(3):
            request(n)
        flushing = asyncio.create_task(log.flush())
        await asyncio.sleep(0)  # the flush has taken its batch and waits on the server
        for n in range(3, 6):  # with the batch still in a full queue, these pushed it out
            request(n)
        first = await flushing
        second = await log.flush()
        await log.close()
        return first, second

    assert asyncio.run(race()) == (3, 3) and log.dropped == 0
    with postgres.connect(autocommit=True) as conn:
        routes = conn.execute(
            "select route from audit.api_access where key_id = %s order by route", [key.id]
        ).fetchall()
    assert [r for (r,) in routes] == [f"/v1/marts/race{n}" for n in range(6)]


def test_identical_requests_within_a_flush_are_one_row_with_their_count(postgres):
    """A client repeating a request costs one row a flush: identical requests (key, route, query
    string, status, row count) are one row with `requests` = how many, at the first one's time;
    anything that differs keeps its own row, and every request is counted once."""
    import asyncio

    from assay.api.audit import AccessLog
    from assay.api.keys import create_key

    key, _ = create_key(postgres, "repeating", scopes=["marts"])
    other, _ = create_key(postgres, "other key", scopes=["marts"])
    log = AccessLog(postgres.reader_url(), 3600)
    sent = [  # (key, query string, status, rows), in order
        *[(key.id, b"limit=100", 200, 100)] * 500,
        (key.id, b"limit=100", 304, None),
        (key.id, b"limit=10", 200, 10),
        (other.id, b"limit=100", 200, 100),
        *[(key.id, b"limit=100", 200, 100)] * 499,
        (key.id, b"limit=100", 200, 99),  # the mart changed: another row count
    ]
    times = {}
    for key_id, query, status, rows in sent:
        row = AccessLog.admitted(key_id, "GET", "/v1/marts/monthly_summary/rows", "monthly_summary", query)
        times.setdefault((key_id, query, status, rows), row["at"])
        if rows is not None:
            row["rows"] = rows
        log.finish(row, status)
    assert asyncio.run(log.flush()) == 5
    asyncio.run(log.close())
    with postgres.connect(autocommit=True) as conn:
        written = conn.execute(
            "select key_id, filters, status, row_count, requests, extract(epoch from accessed_at)::float8"
            " from audit.api_access where key_id = any(%s) order by access_id",
            [[key.id, other.id]],
        ).fetchall()
    assert [r[:5] for r in written] == [
        (key.id, "limit=100", 200, 100, 999),
        (key.id, "limit=100", 304, None, 1),
        (key.id, "limit=10", 200, 10, 1),
        (other.id, "limit=100", 200, 100, 1),
        (key.id, "limit=100", 200, 99, 1),
    ]
    assert sum(r[4] for r in written) == len(sent)
    assert all(abs(r[5] - times[(r[0], r[1].encode(), r[2], r[3])]) < 2e-6 for r in written)  # the first's


def test_a_row_holds_raw_values_until_the_flush_which_writes_the_request_s_own_time(postgres):
    """The request's path only stores raw values (time.time(), the query string's bytes, the scope's
    route and mart); the flush formats them, and the row keeps the time of the request, not of the
    flush, to the microsecond."""
    import asyncio
    import gc
    import time
    from types import SimpleNamespace

    from assay.api.audit import AUDIT_ROW, AccessLog, note
    from assay.api.keys import create_key

    key, _ = create_key(postgres, "raw rows", scopes=["marts"])
    log = AccessLog(postgres.reader_url(), 3600)
    served = {  # a mart's own literal route (as Starlette leaves it in the scope)
        "method": "GET",
        "path": "/v1/marts/vendor_spend/rows",
        "query_string": b"spend_rank__lte=4&name=caf%C3%A9",
        "route": SimpleNamespace(path="/v1/marts/vendor_spend/rows"),
        "path_params": {},
    }
    exported = {  # a route with the mart as a parameter
        "method": "GET",
        "path": "/v1/marts/vendor_spend/export",
        "query_string": b"",
        "route": SimpleNamespace(path="/v1/marts/{mart}/export"),
        "path_params": {"mart": "vendor_spend"},
    }
    before = time.time()
    for scope in (served, exported):
        log.admit(scope, key.id)
        note(scope, rows=3)
        log.finish(scope[AUDIT_ROW], 200)
    first = served[AUDIT_ROW]
    assert before <= first["at"] <= time.time() and first["q"] == served["query_string"]
    assert not gc.is_tracked(first)  # plain values: queued rows add nothing to the collector's work
    times = [first["at"], exported[AUDIT_ROW]["at"]]
    time.sleep(0.2)
    assert asyncio.run(log.flush()) == 2
    asyncio.run(log.close())
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select extract(epoch from accessed_at)::float8, route, mart, filters, row_count, status"
            " from audit.api_access where key_id = %s order by access_id",
            [key.id],
        ).fetchall()
    assert [r[1:] for r in rows] == [
        ("/v1/marts/vendor_spend/rows", "vendor_spend", "spend_rank__lte=4&name=café", 3, 200),
        ("/v1/marts/{mart}/export", "vendor_spend", None, 3, 200),
    ]
    assert all(abs(r[0] - at) < 2e-6 for r, at in zip(rows, times, strict=True))  # not the flush's time


def test_an_unwritten_batch_goes_back_before_newer_rows_and_the_oldest_are_dropped():
    import asyncio

    from assay.api.audit import AccessLog

    log = AccessLog("postgresql://127.0.0.1:1/nowhere", max_queue=4)  # nothing listens: the write fails

    async def failing() -> int:
        for n in range(3):
            log.finish(AccessLog.admitted("k", "GET", f"/r{n}", None, b""), 200)
        flushing = asyncio.create_task(log.flush())
        await asyncio.sleep(0)
        for n in range(3, 6):
            log.finish(AccessLog.admitted("k", "GET", f"/r{n}", None, b""), 200)
        return await flushing

    assert asyncio.run(failing()) == 0
    assert [row["route"] for row in log._queue] == ["/r2", "/r3", "/r4", "/r5"] and log.dropped == 2


def test_with_the_audit_off_requests_are_served_and_nothing_is_written(home):
    from fastapi.testclient import TestClient

    from assay.api.app import create_app
    from assay.api.keys import create_key
    from assay.core.database import PostgresResource
    from assay.core.settings import ApiSettings

    postgres = PostgresResource()
    quiet, token = create_key(postgres, "quiet", scopes=["marts"])
    settings = ApiSettings(access_log=False, preload_search_model=False, audit=False)
    with TestClient(create_app(settings, postgres)) as client:
        assert client.get("/v1/marts", headers={"X-API-Key": token}).status_code == 200
        assert client.get("/v1/marts").status_code == 401
    with postgres.connect(autocommit=True) as conn:
        (rows,) = conn.execute(
            "select count(*) from audit.api_access where key_id = %s", [quiet.id]
        ).fetchone()
    assert rows == 0
