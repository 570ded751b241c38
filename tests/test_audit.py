"""`assay audit` and the refused requests in the access audit, on a real embedded server and the real
API app: 401, 403 and 429 answers are recorded, a flood without a key is counted in memory and written
as one row per group and flush (not one per request), a 403 after the key was checked marks that
request's own row, and `assay audit` answers who read what, when, filtered by key, time and route."""

import datetime as dt

import pytest
from click.testing import CliRunner
from homes import own_home

pytestmark = pytest.mark.integration

FLOOD = 50


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
        (reader.id, "/v1/marts", None, None, 1),
        (searcher.id, "/v1/marts", 403, None, 1),  # its own row, marked
        (slow.id, "/v1/marts", None, None, 1),
        (slow.id, "/v1/marts", 429, "testclient", 1),
    ]
    assert sorted(rows, key=repr) == sorted(expected, key=repr)

    runner = CliRunner()
    mine = runner.invoke(main, ["audit", "--key", slow.id, "--since", "1h"])
    assert mine.exit_code == 0, mine.output
    lines = mine.output.splitlines()
    assert lines[0].startswith("time (UTC)") and len(lines) == 3
    assert all(slow.id in line and "slow" in line and "/v1/marts" in line for line in lines[1:])
    assert "429" in lines[1] and " ok " in lines[2]  # newest first
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
            (reader.id, "mart reader", "GET", "/v1/marts", None, None),
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
