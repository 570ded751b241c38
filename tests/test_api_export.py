"""`/v1/marts/{mart}/export` over real HTTP: whole marts as CSV or ndjson, filtered, within the key's marts.

Expected rows come from direct SQL as the owner, never from the API's own query code.
"""

import csv
import io
import json
from decimal import Decimal

import httpx
import pytest


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server, timeout=30) as client:
        yield client


def _admin(api_keys) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_keys['admin']}"}


@pytest.mark.parametrize("mart", ["category_trends", "monthly_summary", "vendor_spend"])
def test_csv_export_is_the_whole_mart_beyond_the_page_cap(http, conn, api_keys, api_settings, mart):
    response = http.get(f"/v1/marts/{mart}/export", params={"format": "csv"}, headers=_admin(api_keys))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{mart}.csv"'
    table = list(csv.reader(io.StringIO(response.text)))
    columns = [
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns"
            " where table_schema = 'gold' and table_name = %s"
            " order by ordinal_position",
            [mart],
        )
    ]
    (count,) = conn.execute(f"select count(*) from gold.{mart}").fetchone()  # noqa: S608 - fixed names
    assert table[0] == columns and len(table) - 1 == count
    if mart == "category_trends":
        assert count > api_settings.page_size_max  # the export is not capped at a page


def test_ndjson_export_applies_filters_sort_and_select(http, conn, api_keys):
    params = {
        "format": "ndjson",
        "month__gte": "2025-03-01",
        "sort": "-total_amount_eur",
        "select": "month,category,total_amount_eur",
    }
    response = http.get("/v1/marts/monthly_summary/export", params=params, headers=_admin(api_keys))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    rows = [json.loads(line, parse_float=Decimal) for line in response.text.splitlines()]
    expected = conn.execute(
        "select month::text, category, total_amount_eur from gold.monthly_summary where month >= '2025-03-01'"
        " order by total_amount_eur desc"
    ).fetchall()
    assert len(rows) == len(expected) > 0 and all(
        list(r) == ["month", "category", "total_amount_eur"] for r in rows
    )
    assert [r["total_amount_eur"] for r in rows] == [e[2] for e in expected]
    assert sorted((r["month"], r["category"]) for r in rows) == sorted((e[0], e[1]) for e in expected)


def test_export_keeps_to_the_keys_marts_and_rejects_page_parameters(http, api_keys):
    vendors = {"Authorization": f"Bearer {api_keys['vendors']}"}
    assert http.get("/v1/marts/vendor_spend/export", headers=vendors).status_code == 200
    denied = http.get("/v1/marts/monthly_summary/export", headers=vendors)
    assert denied.status_code == 403 and "not allowed to read mart" in denied.json()["detail"]
    assert http.get("/v1/marts/vendor_spend/export").status_code == 401
    for params, fragment in (
        ({"format": "xml"}, "format: expected csv or ndjson"),
        ({"limit": "5"}, "limit: an export streams every matching row"),
        ({"select": "nope"}, "select: unknown column 'nope'"),
        ({"month": "2025-13-01"}, "expected a date"),
    ):
        response = http.get("/v1/marts/monthly_summary/export", params=params, headers=_admin(api_keys))
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"]
    assert http.get("/v1/marts/nope/export", headers=_admin(api_keys)).status_code == 404
