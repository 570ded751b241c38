"""Bronze ingestion on hand-made files: parsing rules, idempotency and all-or-nothing loads."""

import codecs
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from assay.landing import bronze


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_jsonl_keeps_every_line_with_errors_as_data(tmp_path):
    path = _write(
        tmp_path / "t" / "a.jsonl",
        b'{"id": "T1"}\n{"id": "T2",\n\n\xff\xfe latin\n{"id": "nul\x00"}\r\n{"id": "T3"}',
    )
    frame = bronze.stage_frame(path)
    assert frame["line_number"].to_list() == [1, 2, 4, 5, 6]  # the blank line 3 holds no record
    errors = dict(zip(frame["line_number"], frame["parse_error"], strict=True))
    assert errors[1] is None and errors[2] is None and errors[6] is None  # JSON validity is Postgres' call
    assert "utf-8" in errors[4] and "NUL" in errors[5]
    assert frame.filter(pl.col("line_number") == 6)["payload"].item() == '{"id": "T3"}'


def test_csv_splits_quoted_fields_and_flags_wrong_field_counts(tmp_path):
    path = _write(
        tmp_path / "v" / "v.csv",
        b'\xef\xbb\xbfvendor_id,vendor_name,country\nV1,"Acme, Inc.",DE\n'
        b'V2,Foo,DE,extra\nV3,Bar\r\nV4,"Quote ""x""",FR\n',
    )
    frame = bronze.stage_frame(path)
    rows = {r["line_number"]: r for r in frame.iter_rows(named=True)}
    assert json.loads(rows[2]["payload"]) == {"vendor_id": "V1", "vendor_name": "Acme, Inc.", "country": "DE"}
    assert rows[3]["parse_error"] == "expected 3 fields, found 4" and rows[3]["payload"] is None
    assert rows[4]["parse_error"] == "expected 3 fields, found 2"
    assert json.loads(rows[5]["payload"])["vendor_name"] == 'Quote "x"'
    assert rows[3]["raw_text"] == "V2,Foo,DE,extra"


def _payloads(frame: pl.DataFrame) -> list[dict | str]:
    """Each staged row's record, or its error when it has none."""
    return [json.loads(p) if p else e for p, e in zip(frame["payload"], frame["parse_error"], strict=True)]


VENDOR_CSV = 'vendor_id,vendor_name,country\r\nV1,"M\u00fcller ""GmbH""",DE\r\n'
V1 = {"vendor_id": "V1", "vendor_name": 'M\u00fcller "GmbH"', "country": "DE"}


@pytest.mark.parametrize(
    "name, data",
    [
        ("excel-unicode.csv", VENDOR_CSV.encode("utf-16")),  # UTF-16 with its byte order mark
        ("utf-16-be.csv", codecs.BOM_UTF16_BE + VENDOR_CSV.encode("utf-16-be")),
        ("compressed.csv", gzip.compress(VENDOR_CSV.encode())),  # gzip under a .csv name
        ("mac.csv", VENDOR_CSV.replace("\r\n", "\r").encode()),  # old Mac line ends: CR only
        ("semicolons.csv", VENDOR_CSV.replace(",", ";").encode("utf-8-sig")),  # Excel, decimal-comma locale
        ("tabs.csv", VENDOR_CSV.replace(",", "\t").encode()),
        ("leading-blank.csv", ("\r\n" + VENDOR_CSV).encode()),  # the header is the first non-blank line
        (
            "spaced-header.csv",
            VENDOR_CSV.replace(",", " , ", 2).encode(),
        ),  # ` vendor_name ` names vendor_name
    ],
)
def test_csv_files_from_other_systems_read_as_their_records(tmp_path, name, data):
    frame = bronze.stage_frame(_write(tmp_path / "v" / name, data))
    assert _payloads(frame) == [V1]


@pytest.mark.parametrize(
    "name, data",
    [
        ("compressed.jsonl", gzip.compress(b'{"id": "T1"}\n{"id": "T2"}\n')),
        ("utf-16.jsonl", '{"id": "T1"}\r\n{"id": "T2"}\r\n'.encode("utf-16")),
        ("bom.jsonl", '{"id": "T1"}\n{"id": "T2"}\n'.encode("utf-8-sig")),  # not an invalid first line
    ],
)
def test_jsonl_files_from_other_systems_read_as_their_records(tmp_path, name, data):
    frame = bronze.stage_frame(_write(tmp_path / "t" / name, data))
    assert frame["parse_error"].to_list() == [None, None]
    assert [json.loads(p) for p in frame["payload"]] == [{"id": "T1"}, {"id": "T2"}]


def test_a_csv_header_that_would_lose_values_makes_every_line_an_error_that_says_so(tmp_path):
    twice = bronze.stage_frame(_write(tmp_path / "v" / "twice.csv", b"id,name,name\nV1,A,B\nV2,C,D\n"))
    assert twice["payload"].to_list() == [None, None]  # not {"id": "V1", "name": "B"}: A would be lost
    assert (
        twice["parse_error"].to_list()
        == ["the header names column 'name' twice; rename one and land the file again"] * 2
    )
    assert twice["raw_text"].to_list() == ["V1,A,B", "V2,C,D"]


def test_a_stray_carriage_return_in_a_quoted_csv_line_is_that_lines_error(tmp_path):
    frame = bronze.stage_frame(_write(tmp_path / "v" / "cr.csv", b'id,name,note\nV1,a\rb,"q"\nV2,ok,x\n'))
    assert frame["parse_error"][0].startswith("not CSV: ") and frame["payload"][0] is None
    assert json.loads(frame["payload"][1]) == {"id": "V2", "name": "ok", "note": "x"}


def test_a_csv_line_error_names_its_cause_and_the_fix(tmp_path):
    data = (
        b"id,name,c,,\n"  # Excel's trailing separators: unnamed columns, not a column named twice
        b'V1,5" screen,DE,,\n'  # a lone quote inside a field is a character
        b'V2,"two\nlines",DE,,\n'  # a quoted field spanning lines: one record per line here
        b"V3,M\xfcller,DE,,\n"  # Latin-1
    )
    frame = bronze.stage_frame(_write(tmp_path / "v" / "causes.csv", data))
    assert _payloads(frame)[0] == {"id": "V1", "name": '5" screen', "c": "DE", "": ""}
    spanning = "a quoted field runs past the end of the line (a CSV record is one line here): export"
    assert _payloads(frame)[1].startswith(spanning) and _payloads(frame)[2].startswith(spanning)
    assert _payloads(frame)[3].startswith("not valid UTF-8 (") and _payloads(frame)[3].endswith(
        ": save the file as UTF-8"
    )


def test_parquet_rows_become_json_objects(tmp_path):
    path = tmp_path / "p" / "x.parquet"
    path.parent.mkdir()
    pl.DataFrame({"id": ["A", "B"], "amount": [1.5, None]}).write_parquet(path)
    frame = bronze.stage_frame(path)
    assert [json.loads(p) for p in frame["payload"]] == [
        {"id": "A", "amount": 1.5},
        {"id": "B", "amount": None},
    ]


def test_a_parquet_file_that_does_not_read_is_one_row_that_says_so(tmp_path):
    whole = tmp_path / "p" / "x.parquet"
    whole.parent.mkdir()
    pl.DataFrame({"id": ["A", "B"]}).write_parquet(whole)
    for name, data in (("cut.parquet", whole.read_bytes()[:40]), ("csv.parquet", b"id\nA\n")):
        frame = bronze.stage_frame(_write(tmp_path / "p" / name, data))  # it raised: the run failed
        assert frame["line_number"].to_list() == [1] and frame["payload"].to_list() == [None]
        assert frame["parse_error"][0].startswith("not a readable Parquet file (")
        assert frame["parse_error"][0].endswith("): land it again whole, or as CSV or JSON Lines")


def _source_table(conn, source: str) -> None:
    """A bronze table for a test source, laid out like the migrated source tables."""
    conn.execute(f"create table if not exists bronze.{source} (like bronze.transactions including all)")


def test_load_is_idempotent_and_postgres_judges_json(tmp_path, postgres):
    landing = tmp_path / "landing"
    path = _write(landing / "unit_jsonl" / "a.jsonl", b'{"id": 1}\n{"id": \n[1, 2]\n{"s": "\\u0000"}\n')
    with postgres.connect(autocommit=True) as conn:
        _source_table(conn, "unit_jsonl")
        first = bronze.load_file(conn, "unit_jsonl", path, landing)
        second = bronze.load_file(conn, "unit_jsonl", path, landing)
        rows = conn.execute(
            "select line_number, record, raw_text, parse_error from bronze.unit_jsonl order by line_number"
        ).fetchall()
    assert (first.rows, first.parse_errors, first.skipped) == (4, 3, False)
    assert (second.rows, second.skipped) == (0, True)
    assert rows[0][1] == {"id": 1} and rows[0][2] is None
    assert rows[1][3].startswith("invalid JSON") and rows[1][2] == '{"id": '
    assert rows[2][3].startswith("not a JSON object but an array: land one JSON object per line")
    assert "Unicode escape" in rows[3][3]


def test_a_copy_under_another_name_is_not_loaded_and_the_run_says_so(tmp_path, postgres):
    landing = tmp_path / "landing"
    content = b'{"id": 1}\n{"id": 2}\n'
    paths = [_write(landing / "unit_copy" / name, content) for name in ("a.jsonl", "copy of a.jsonl")]
    with postgres.connect(autocommit=True) as conn:
        _source_table(conn, "unit_copy")
        first, copy = bronze.load_files(conn, "unit_copy", paths, landing)
        again = bronze.load_files(conn, "unit_copy", paths, landing)
        rows = conn.execute("select count(*) from bronze.unit_copy").fetchone()[0]
    assert (first.rows, first.note) == (2, "") and rows == 2  # nothing doubled
    assert copy.skipped and copy.note == (
        "unit_copy/copy of a.jsonl: not loaded: the same content as unit_copy/a.jsonl, loaded before;"
        " remove the copy"
    )
    assert [f.note for f in again] == ["", copy.note]  # said again while the copy is there


def test_a_copy_says_when_its_content_is_out_of_silver_and_empty_copies_say_nothing(tmp_path, postgres):
    landing = tmp_path / "landing"
    original = _write(landing / "unit_copy2" / "a.jsonl", b'{"id": 1}\n')
    empty = [_write(landing / "unit_copy2" / f"day-{n}.jsonl", b"") for n in (1, 2)]  # quiet days
    with postgres.connect(autocommit=True) as conn:
        _source_table(conn, "unit_copy2")
        loads = bronze.load_files(conn, "unit_copy2", [original, *empty], landing)
        assert [f.note for f in loads] == ["", "", ""]  # an empty file like another is no copy to remove
        _write(original, b'{"id": 1, "fixed": true}\n')  # a new version: the first is superseded
        bronze.load_file(conn, "unit_copy2", original, landing)
        copy = _write(landing / "unit_copy2" / "old a.jsonl", b'{"id": 1}\n')  # the first version's bytes
        note = bronze.load_file(conn, "unit_copy2", copy, landing).note
    assert note == (
        "unit_copy2/old a.jsonl: not loaded: the same content as unit_copy2/a.jsonl, loaded before and"
        " superseded since, so these rows are not in silver; a content loads once: change the file to load"
        " it, or remove it"
    )


def test_a_failed_load_leaves_nothing_behind(tmp_path, postgres, monkeypatch):
    landing = tmp_path / "landing"
    path = _write(landing / "unit_atomic" / "a.jsonl", b'{"id": 1}\n{"id": 2}\nnot json\n')
    original = bronze._insert_staged

    def crash(*args, **kwargs):
        raise RuntimeError("crash after the good lines were copied")

    monkeypatch.setattr(bronze, "_insert_staged", crash)
    with postgres.connect(autocommit=True) as conn:
        _source_table(conn, "unit_atomic")
        with pytest.raises(RuntimeError, match="crash"):
            bronze.load_file(conn, "unit_atomic", path, landing)
        assert conn.execute("select count(*) from bronze.unit_atomic").fetchone()[0] == 0
        assert (
            conn.execute("select count(*) from bronze.load_batches where source = 'unit_atomic'").fetchone()[
                0
            ]
            == 0
        )
        monkeypatch.setattr(bronze, "_insert_staged", original)
        retried = bronze.load_file(conn, "unit_atomic", path, landing)
    assert (retried.rows, retried.parse_errors, retried.skipped) == (3, 1, False)


def test_payloads_postgres_refuses_fall_back_to_its_judgement(tmp_path, postgres):
    """polars accepts a \\u0000 escape, JSONB does not: the whole file goes the staged way."""
    landing = tmp_path / "landing"
    path = _write(
        landing / "unit_nul" / "a.jsonl", b'{"id": 1}\n{"s": "a\\u0000b"}\n{"id": 3}\n{"shaped": }\n'
    )
    with postgres.connect(autocommit=True) as conn:
        _source_table(conn, "unit_nul")
        loaded = bronze.load_file(conn, "unit_nul", path, landing)
        rows = conn.execute(
            "select line_number, record is not null, parse_error from bronze.unit_nul order by line_number"
        ).fetchall()
    assert (loaded.rows, loaded.parse_errors) == (4, 2)
    assert [r[:2] for r in rows] == [(1, True), (2, False), (3, True), (4, False)]
    assert "Unicode escape" in rows[1][2]
    assert rows[3][2].startswith("invalid JSON")


def test_a_rejected_lines_parse_error_is_in_silver_rejects_and_unwrapped_files_reach_silver(monkeypatch):
    """End to end on a home of its own: a gzip-compressed transactions file reaches silver, and
    silver.rejects.detail says why each unparsed line failed (the header, the JSON array), so a user
    sees cause and fix without reading bronze."""
    from homes import own_home, run_bronze_silver, write_reference

    from assay.core.database import PostgresResource

    with own_home("assay-files-") as home:
        monkeypatch.setenv("ASSAY_DQ_SILVER_MIN_SCORE", "0.5")
        write_reference(home)
        tx = {"employee_id": "E00001", "vendor_id": "V0001", "amount": 12.5, "currency": "EUR"}
        tx |= {"date": "2025-06-16", "category": "travel"}
        lines = "".join(json.dumps(tx | {"id": f"T{n}"}) + "\n" for n in (1, 2))
        _write(home / "landing/transactions/transactions-2025-06-16.jsonl", gzip.compress(lines.encode()))
        array = json.dumps([tx | {"id": "T3"}, tx | {"id": "T4"}]).encode()
        _write(home / "landing/transactions/transactions-2025-06-17.jsonl", array)
        _write(home / "landing/vendors/twice.csv", b"vendor_id,vendor_name,vendor_name,country\nV2,A,B,DE\n")
        run_bronze_silver()
        with PostgresResource().connect() as conn:
            accepted = conn.execute("select transaction_id from silver.transactions order by 1").fetchall()
            rejects = conn.execute(
                "select source_file, line_number, reason, detail from silver.rejects order by 1"
            ).fetchall()
    assert accepted == [("T1",), ("T2",)]
    assert rejects == [
        (
            "transactions/transactions-2025-06-17.jsonl",
            1,
            "parse_error",
            "not a JSON object but an array: land one JSON object per line (JSON Lines)",
        ),
        (
            "vendors/twice.csv",
            2,
            "parse_error",
            "the header names column 'vendor_name' twice; rename one and land the file again",
        ),
    ]
