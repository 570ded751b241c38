"""Column masks per API key: a masked column reads as null in every read path (pages in JSON and CSV,
`select=`, lookups, the three export formats), cannot be filtered or sorted on (403), never reaches
another key through the response cache, and hides the search documents and ask answers that carry it.

Expected values come from direct SQL as the owner, never from the API's own query code.
"""

import csv
import io
import json

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

MART = "vendor_spend"
ROWS = f"/v1/marts/{MART}/rows"


@pytest.fixture(scope="module")
def http(api_server):
    with httpx.Client(base_url=api_server, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(postgres, api_keys) -> dict[str, str]:
    from assay.api.keys import create_key

    return {
        "admin": api_keys["admin"],
        "masked": create_key(postgres, "masked vendors", scopes=["*"], masks=["vendor_spend.vendor_name"])[1],
        # a mask on a mart that transaction documents disclose, none on vendor_spend
        "monthly": create_key(
            postgres, "masked monthly", scopes=["search"], masks=["monthly_summary.total_amount_eur"]
        )[1],
    }


def _get(http, token: str, path: str, **params) -> httpx.Response:
    return http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def _names(conn) -> dict[int, str]:
    return dict(conn.execute("select spend_rank, vendor_name from gold.vendor_spend").fetchall())


def test_a_masked_column_reads_as_null_in_pages_lookups_and_select(http, conn, tokens):
    names = _names(conn)
    assert all(names.values())  # so a null below can only be the mask
    # the admin first: its page is cached, and must not reach the masked key (nor the reverse)
    for order in (("admin", "masked"), ("masked", "admin")):
        pages = {
            who: _get(
                http, tokens[who], ROWS, limit=5, sort="-spend_rank" if order[0] == "masked" else "spend_rank"
            )
            for who in order
        }
        for who, response in pages.items():
            assert response.status_code == 200, response.text
            rows = response.json()["rows"]
            assert len(rows) == 5
            expected = [None] * 5 if who == "masked" else [names[r["spend_rank"]] for r in rows]
            assert [r["vendor_name"] for r in rows] == expected, (order, who)
        assert pages["admin"].headers["etag"] != pages["masked"].headers["etag"]
        plain = pages["admin"].json()["rows"]
        hidden = pages["masked"].json()["rows"]
        assert [{**r, "vendor_name": None} for r in plain] == hidden  # the rest is untouched

    chosen = _get(http, tokens["masked"], ROWS, select="spend_rank,vendor_name", limit=3).json()["rows"]
    assert chosen == [{"spend_rank": r["spend_rank"], "vendor_name": None} for r in chosen]
    as_csv = list(csv.DictReader(io.StringIO(_get(http, tokens["masked"], ROWS, format="csv", limit=3).text)))
    assert len(as_csv) == 3 and {r["vendor_name"] for r in as_csv} == {""}
    for who, expected in (("admin", names[1]), ("masked", None)):
        found = _get(http, tokens[who], f"/v1/marts/{MART}/lookup", spend_rank=1)
        assert found.status_code == 200, found.text
        assert found.json()["vendor_name"] == expected and found.json()["spend_rank"] == 1
    described = _get(http, tokens["masked"], f"/v1/marts/{MART}").json()["columns"]
    by_name = {c["name"]: c for c in described}
    assert by_name["vendor_name"]["masked"] and by_name["vendor_name"]["filters"] == []
    assert not by_name["vendor_name"]["sortable"] and not by_name["vendor_id"]["masked"]


def test_a_masked_column_is_null_in_every_export_format(http, conn, tokens):
    (count,) = conn.execute("select count(*) from gold.vendor_spend").fetchone()
    exported = _get(http, tokens["masked"], f"/v1/marts/{MART}/export", format="csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(table) == count and {r["vendor_name"] for r in table} == {""}
    assert {r["vendor_id"] for r in table} == {
        r[0] for r in conn.execute("select vendor_id from gold.vendor_spend")
    }
    lines = _get(http, tokens["masked"], f"/v1/marts/{MART}/export", format="ndjson").text.splitlines()
    assert len(lines) == count and {json.loads(line)["vendor_name"] for line in lines} == {None}
    parquet = _get(http, tokens["masked"], f"/v1/marts/{MART}/export", format="parquet")
    read = pq.read_table(io.BytesIO(parquet.content))
    assert read.num_rows == count and read.column("vendor_name").null_count == count
    admin = pq.read_table(
        io.BytesIO(_get(http, tokens["admin"], f"/v1/marts/{MART}/export", format="parquet").content)
    )
    assert admin.column("vendor_name").null_count == 0


@pytest.mark.parametrize(
    "params",
    [
        {"vendor_name": "x"},
        {"vendor_name__like": "A%"},
        {"vendor_name__gte": "M"},
        {"vendor_name__is": "null"},
        {"or": "(vendor_name.eq.x,spend_rank.eq.1)"},
        {"sort": "-vendor_name"},
    ],
)
def test_a_masked_column_cannot_be_filtered_or_sorted(http, tokens, params):
    for path in (ROWS, f"/v1/marts/{MART}/export"):
        refused = _get(http, tokens["masked"], path, **params)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "masks vendor_spend.vendor_name" in refused.json()["detail"]
        assert _get(http, tokens["admin"], path, **params).status_code == 200


def test_search_hides_the_document_types_whose_marts_a_key_masks(http, conn, tokens):
    # vendor_spend masked: both document types name vendors
    refused = _get(http, tokens["masked"], "/v1/search", q="flight", method="fulltext")
    assert refused.status_code == 403 and "unmasked" in refused.json()["detail"]
    # monthly_summary masked: transaction documents (which it aggregates) are hidden, vendor ones shown
    (title,) = conn.execute(
        "select title from platinum.documents where doc_type = 'vendor' limit 1"
    ).fetchone()
    hits = _get(http, tokens["monthly"], "/v1/search", q=title, method="fulltext", k=20).json()["hits"]
    assert hits and {h["doc_type"] for h in hits} == {"vendor"}
    everything = _get(http, tokens["admin"], "/v1/search", q="flight", method="fulltext", k=20).json()["hits"]
    assert "transaction" in {h["doc_type"] for h in everything}


def test_masks_are_checked_when_a_key_is_made(postgres, http):
    from assay.orchestration.cli import main

    runner = CliRunner()
    made = runner.invoke(main, ["api-key", "create", "cli masks", "--mask", "vendor_spend.vendor_name"])
    assert made.exit_code == 0, made.output
    assert "masks vendor_spend.vendor_name" in made.stderr
    token = made.stdout.strip().splitlines()[0]
    assert _get(http, token, ROWS, limit=1).json()["rows"][0]["vendor_name"] is None
    listed = runner.invoke(main, ["api-key", "list"]).stdout
    assert "masks vendor_spend.vendor_name" in next(
        line for line in listed.splitlines() if "cli masks" in line
    )
    for mask, reason in (
        ("vendor_spend.spend_rank", "part of vendor_spend's key"),
        ("vendor_spend.vendor_id", "part of vendor_spend's key"),  # a unique key too, though not the one used
        ("vendor_spend.nope", "has no column 'nope'"),
        ("vendor_name", "expected <mart>.<column>"),
        ("nowhere.x", "unknown mart 'nowhere'"),
    ):
        refused = runner.invoke(main, ["api-key", "create", "bad mask", "--mask", mask])
        assert refused.exit_code == 2 and reason in refused.output, (mask, refused.output)
    outside = runner.invoke(
        main,
        ["api-key", "create", "bad mask", "--mart", "monthly_summary", "--mask", "vendor_spend.vendor_name"],
    )
    assert outside.exit_code == 2 and "may not read mart 'vendor_spend'" in outside.output
