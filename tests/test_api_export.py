"""`/v1/marts/{mart}/export` over real HTTP: whole marts as CSV, ndjson or Parquet, filtered, within
the key's marts.

Expected rows come from direct SQL as the owner, never from the API's own query code.
"""

import asyncio
import csv
import datetime as dt
import io
import json
from decimal import Decimal

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
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


@pytest.mark.parametrize("mart", ["category_trends", "monthly_summary", "vendor_spend"])
def test_parquet_export_is_the_whole_mart_with_its_types(http, conn, api_keys, mart):
    response = http.get(f"/v1/marts/{mart}/export", params={"format": "parquet"}, headers=_admin(api_keys))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"] == f'attachment; filename="{mart}.parquet"'
    table = pq.read_table(io.BytesIO(response.content))
    cursor = conn.execute(f"select * from gold.{mart}")  # noqa: S608 - fixed names
    expected = cursor.fetchall()
    assert table.column_names == [d.name for d in cursor.description]
    # the same rows, each value of its own type (exact decimals, dates), in any order
    got = [tuple(row.values()) for row in table.to_pylist()]
    assert sorted(got, key=repr) == sorted(expected, key=repr) and len(got) > 0
    for name, column in zip(table.column_names, cursor.description, strict=True):
        if column.type_code == 1700:  # numeric
            assert pa.types.is_decimal(table.schema.field(name).type) or pa.types.is_floating(
                table.schema.field(name).type
            )


def test_parquet_export_applies_filters_sort_and_select(http, conn, api_keys):
    params = {
        "format": "parquet",
        "month__gte": "2025-03-01",
        "sort": "-total_amount_eur",
        "select": "month,category,total_amount_eur",
    }
    response = http.get("/v1/marts/monthly_summary/export", params=params, headers=_admin(api_keys))
    assert response.status_code == 200, response.text
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == ["month", "category", "total_amount_eur"]
    assert table.schema.field("month").type == pa.date32()
    expected = conn.execute(
        "select month, category, total_amount_eur from gold.monthly_summary where month >= '2025-03-01'"
        " order by total_amount_eur desc"
    ).fetchall()
    rows = [tuple(r.values()) for r in table.to_pylist()]
    assert [r[2] for r in rows] == [e[2] for e in expected] and len(rows) > 0
    assert sorted(rows, key=repr) == sorted(expected, key=repr)


def test_parquet_stream_writes_one_row_group_per_batch():
    """Many batches (as a large mart gives): a valid file, every row once, one row group each."""
    from assay.api.catalog import Column
    from assay.api.parquet import parquet_stream

    columns = [
        Column("n", "bigint", False, "", "integer"),
        Column("amount", "numeric", True, "", "number", scale=(14, 2)),
        Column("day", "date", True, "", "date"),
        Column("label", "text", True, "", "string"),
    ]
    batches = [
        [
            (i, Decimal(i) / 100, dt.date(2025, 1, 1) + dt.timedelta(days=i % 300), None if i % 7 else "x")
            for i in range(start, start + 1000)
        ]
        for start in range(0, 5000, 1000)
    ]

    async def rows():
        for batch in [[], *batches]:
            yield batch

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in parquet_stream(rows(), columns)])

    data = asyncio.run(collect())
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == 5
    assert [tuple(r.values()) for r in parquet.read().to_pylist()] == [r for b in batches for r in b]


def test_export_keeps_to_the_keys_marts_and_rejects_page_parameters(http, api_keys):
    vendors = {"Authorization": f"Bearer {api_keys['vendors']}"}
    assert http.get("/v1/marts/vendor_spend/export", headers=vendors).status_code == 200
    denied = http.get("/v1/marts/monthly_summary/export", headers=vendors)
    assert denied.status_code == 403 and "not allowed to read mart" in denied.json()["detail"]
    assert http.get("/v1/marts/vendor_spend/export").status_code == 401
    for params, fragment in (
        ({"format": "xml"}, "format: expected one of csv, ndjson, parquet"),
        ({"limit": "5"}, "limit: an export streams every matching row"),
        ({"select": "nope"}, "select: unknown column 'nope'"),
        ({"month": "2025-13-01"}, "expected a date"),
    ):
        response = http.get("/v1/marts/monthly_summary/export", params=params, headers=_admin(api_keys))
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"]
    assert http.get("/v1/marts/nope/export", headers=_admin(api_keys)).status_code == 404
