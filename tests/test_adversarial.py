"""Dirty data never wedges the pipeline: an adversarial corpus, generated here, through the real
pipeline.

Every class below is one landing line the sample generator never writes: values at, just inside and
just past the limits of silver's declared types (its dbt contracts), NaN and infinities, empty and
blank values, 10,000-character strings, control characters, ambiguous dates, timestamps with
offsets, unknown codes, lines that are not JSON. They land beside a clean small sample, in files of
their own, and one ordinary `pipeline` run takes them all. Each line must end either in silver (with
the value the rule says) or in `silver.rejects` with the expected reason, the run must succeed to
the last layer, and every bronze row must be accounted for exactly once.
"""

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from homes import own_home
from psycopg import sql

from assay.landing.sample import DefectRates, generate

pytestmark = pytest.mark.integration

DAY = "2025-06-16"  # a Monday inside the sample's year: the adversarial files' daily partition
LONG = "x" * 10_000
ESCAPES = "\x1b[31mred\x1b[0m \x07 bell"  # terminal escapes in data: stored as they are, shown escaped
UTC = dt.UTC
VENDOR, EMPLOYEE = "V0001", "E00001"  # the sample's first vendor and employee


@dataclass(frozen=True)
class Case:
    name: str
    line: str  # the landing line, as written
    expect: str  # "silver", or the reject reason
    silver: dict = field(default_factory=dict)  # for "silver": column -> expected value


def _tx(name: str, expect: str, silver: dict | None = None, raw: str | None = None, **fields) -> Case:
    record = {
        "id": f"ADV-{name}",
        "employee_id": EMPLOYEE,
        "vendor_id": VENDOR,
        "amount": 12.5,
        "currency": "EUR",
        "date": DAY,
        "description": "an adversarial line",
        "category": "travel",
    }
    record.update(fields)
    line = raw if raw is not None else json.dumps(record, ensure_ascii=False)
    return Case(f"transactions/{name}", line, expect, silver or {})


def _ev(name: str, expect: str, silver: dict | None = None, **fields) -> Case:
    record = {
        "case_id": f"ADV-{name}",
        "activity": "Submit",
        "timestamp": f"{DAY}T09:00:00Z",
        "resource": "E1",
    }
    record.update(fields)
    return Case(f"events/{name}", json.dumps(record, ensure_ascii=False), expect, silver or {})


def _vendor(name: str, expect: str, **fields) -> Case:
    record = {"vendor_id": f"VADV-{name}", "vendor_name": "Adversarial Ltd", "country": "DE"}
    record.update(fields)
    return Case(f"vendors/{name}", json.dumps(record, ensure_ascii=False), expect)


def _employee(name: str, expect: str, **fields) -> Case:
    record = {"employee_id": f"EADV-{name}", "employee_name": "A. Dversary", "department": "Sales"}
    record.update(fields)
    return Case(f"employees/{name}", json.dumps(record, ensure_ascii=False), expect)


CASES = [
    # -- amounts: numeric(14, 2) in silver --------------------------------------------------------
    _tx("amount_at_limit", "silver", {"amount": Decimal("999999999999.99")}, amount="999999999999.99"),
    _tx("amount_rounds_past_limit", "out_of_range:amount", amount="999999999999.995"),
    _tx("amount_1e12", "out_of_range:amount", amount=1e12),
    _tx("amount_json_9_9e307", "out_of_range:amount", raw=None, amount=9.9e307),
    _tx("amount_nan_string", "invalid_number:amount", amount="NaN"),
    _tx("amount_infinity_string", "invalid_number:amount", amount="Infinity"),
    _tx("amount_minus_infinity", "invalid_number:amount", amount="-Infinity"),
    _tx("amount_rounds_to_zero", "non_positive_amount", amount=0.004),
    _tx("amount_negative", "non_positive_amount", amount="-5"),
    _tx("amount_exponent_string", "silver", {"amount": Decimal("1000.00")}, amount="1e3"),
    _tx("amount_padded", "silver", {"amount": Decimal("12.50")}, amount="  12.50  "),
    _tx("amount_empty", "missing_field:amount", amount=""),
    _tx("amount_blank", "missing_field:amount", amount="   "),
    _tx("amount_decimal_comma", "invalid_type:amount", amount="12,50"),
    _tx("amount_boolean", "invalid_type:amount", amount=True),
    _tx("amount_object", "invalid_type:amount", amount={"value": 1}),
    # the amount fits, its EUR value (GBP at 1.17) does not
    _tx("amount_eur_past_limit", "out_of_range:amount_eur", amount="999999999999", currency="GBP"),
    # a cent in SEK is 0.00087 EUR: nothing once rounded to cents
    _tx("amount_eur_rounds_to_zero", "non_positive_amount", amount="0.01", currency="SEK"),
    # -- ids and text: varchar(n) in silver -----------------------------------------------------------
    _tx("id_10k", "too_long:id", id=LONG),
    _tx("id_at_limit", "silver", {"transaction_id": "I" * 128}, id="I" * 128),
    _tx("id_past_limit", "too_long:id", id="J" * 129),
    _tx("id_unicode", "silver", {"transaction_id": "ADV-Ü-✓-𝄞"}, id="ADV-Ü-✓-𝄞"),
    _tx("employee_id_10k", "too_long:employee_id", employee_id=LONG),
    _tx("description_at_limit", "silver", {"description": "d" * 2000}, description="d" * 2000),
    _tx("description_past_limit", "too_long:description", description="d" * 2001),
    # many distinct words: a full-text vector of over 1 MB if it ever reached platinum
    _tx("description_huge", "too_long:description", description=" ".join(f"w{i}" for i in range(120_000))),
    _tx(
        "description_escapes",
        "silver",
        {"description": "\x1b[31mred\x1b[0m \x07 bell"},
        description="\x1b[31mred\x1b[0m \x07 bell",
    ),
    _tx("category_past_limit", "too_long:category", category="c" * 65),
    _tx("category_padded_upper", "silver", {"category": "travel"}, category="  TRAVEL "),
    _tx("category_unknown", "unknown_category", category="teleportation"),
    _tx("currency_lower", "silver", {"currency": "EUR"}, currency="eur"),
    _tx("currency_too_long", "too_long:currency", currency="EURO"),
    _tx("currency_unknown", "unknown_currency", currency="XXX"),
    _tx("vendor_unknown", "orphan_vendor", vendor_id="V-NOBODY"),
    # -- dates: ISO 8601 only, offsets converted to UTC ------------------------------------------------
    _tx("date_us_format", "invalid_type:date", date="04/03/2025"),
    _tx("date_offset", "silver", {"transaction_date": dt.date(2025, 3, 8)}, date="2025-03-07T23:30:00-05:00"),
    _tx("date_zulu", "silver", {"transaction_date": dt.date(2025, 3, 7)}, date="2025-03-07T23:30:00Z"),
    _tx("date_impossible", "invalid_type:date", date="2025-02-30"),
    _tx("date_five_digit_year", "invalid_type:date", date="10000-01-01"),
    _tx("date_before_2000", "out_of_range:date", date="1999-12-31"),
    _tx("date_far_future", "future_date", date="2999-01-01"),
    _tx("date_words", "invalid_type:date", date="yesterday"),
    # -- lines ------------------------------------------------------------------------------------------
    _tx("not_json", "parse_error", raw="this is not json {"),
    _tx("json_array", "parse_error", raw='["id", "T1"]'),
    _tx("nul_escape", "parse_error", raw='{"id": "ADV-nul\\u0000", "amount": 1}'),
    _tx("duplicate_first", "silver", {"transaction_id": "ADV-dup"}, id="ADV-dup"),
    _tx("duplicate_second", "duplicate", id="ADV-dup", amount=99),
    # -- events: varchar(n) ids, timestamptz, the activities seed ------------------------------------
    _ev(
        "naive_timestamp",
        "silver",
        {"event_ts": dt.datetime(2025, 6, 16, 10, 0, tzinfo=dt.UTC)},
        timestamp=f"{DAY} 10:00",
    ),
    _ev(
        "offset_timestamp",
        "silver",
        {"event_ts": dt.datetime(2025, 6, 16, 15, 0, tzinfo=dt.UTC)},
        timestamp=f"{DAY}T10:00:00-05:00",
    ),
    _ev("us_timestamp", "invalid_type:timestamp", timestamp="06/16/2025 10:00"),
    _ev("case_id_10k", "too_long:case_id", case_id=LONG),
    _ev("activity_unknown", "unknown_activity", activity="Approve!!"),
    _ev("resource_past_limit", "too_long:resource", resource="r" * 257),
    _ev("future", "future_date", timestamp="2999-01-01T00:00:00Z"),
    _ev("before_2000", "out_of_range:timestamp", timestamp="1990-01-01T00:00:00Z"),
    # -- reference sources: a handful of bad rows in a 50-row source must not block gold --------------
    _vendor("country_name", "invalid_type:country", country="Germany"),
    _vendor("name_past_limit", "too_long:vendor_name", vendor_name="n" * 257),
    _vendor("category_unknown", "unknown_category", default_category="teleportation"),
    _employee("department_past_limit", "too_long:department", department="d" * 129),
]


def _files(cases: list[Case]) -> dict[str, list[Case]]:
    names = {
        "transactions": f"transactions/transactions-adversarial-{DAY}.jsonl",
        "events": f"events/events-adversarial-{DAY}.jsonl",
        "vendors": "vendors/vendors-adversarial.jsonl",
        "employees": "employees/employees-adversarial.jsonl",
    }
    files: dict[str, list[Case]] = {}
    for case in cases:
        files.setdefault(names[case.name.split("/")[0]], []).append(case)
    return files


@pytest.fixture(scope="module")
def corpus():
    """The clean small sample plus the corpus, one pipeline run, in a home of its own."""
    from assay.assets.partitions import partition_range_tags
    from assay.core.database import PostgresResource
    from assay.orchestration.definitions import defs

    with own_home("assay-adversarial-") as home:
        no_defects = DefectRates(**dict.fromkeys(DefectRates.__dataclass_fields__, 0.0))
        generate(home / "landing", home / "ground_truth", size="small", seed=11, defects=no_defects)
        files = _files(CASES)
        for rel, cases in files.items():
            (home / "landing" / rel).write_text("".join(case.line + "\n" for case in cases), encoding="utf-8")
        result = defs.resolve_job_def("pipeline").execute_in_process(
            raise_on_error=False, tags=partition_range_tags(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
        )
        with PostgresResource().connect(autocommit=True) as conn:
            yield result, files, conn


def test_the_corpus_has_forty_classes_or_more():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


def test_no_line_stops_the_run(corpus):
    result, _, conn = corpus
    failures = [e.step_key for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    # every layer was built, down to the search corpus
    for table in ("gold.monthly_summary", "gold.vendor_spend", "platinum.documents", "platinum.embeddings"):
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] > 0, table


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_line_ends_in_silver_or_in_rejects_with_its_reason(corpus, case):
    _, files, conn = corpus
    source = case.name.split("/")[0]
    rel = next(rel for rel, cases in files.items() if case in cases)
    line_number = files[rel].index(case) + 1
    bronze = conn.execute(
        sql.SQL("select bronze_id from {} where source_file = %s and line_number = %s").format(
            sql.Identifier("bronze", source)
        ),
        [rel, line_number],
    ).fetchall()
    assert len(bronze) == 1, f"{rel}:{line_number} is not in bronze exactly once"
    bronze_id = bronze[0][0]
    rejected = conn.execute(
        "select reason from silver.rejects where source = %s and bronze_id = %s", [source, bronze_id]
    ).fetchall()
    cur = conn.execute(
        sql.SQL("select * from {} where bronze_id = %s").format(sql.Identifier("silver", source)),
        [bronze_id],
    )
    names = [c.name for c in cur.description]
    in_silver = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert len(rejected) + len(in_silver) == 1, (
        f"{case.name}: in silver {len(in_silver)}, rejected {rejected}"
    )
    if case.expect == "silver":
        assert in_silver, f"{case.name} was rejected as {rejected[0][0]}"
        for column, value in case.silver.items():
            assert in_silver[0][column] == value, column
    else:
        assert rejected == [(case.expect,)]


def test_every_bronze_row_is_in_silver_or_rejects_once(corpus):
    _, _, conn = corpus
    for source in ("transactions", "events", "vendors", "employees"):
        bronze, silver, rejected = conn.execute(
            f"select (select count(*) from bronze.{source}), (select count(*) from silver.{source}),"
            " (select count(*) from silver.rejects where source = %s)",
            [source],
        ).fetchone()
        assert bronze == silver + rejected, source


def test_rejected_values_never_reach_typed_columns(corpus):
    """A rejected 10,000-character id is kept whole in the payload, never in an indexed column."""
    _, _, conn = corpus
    longest = conn.execute(
        "select max(length(transaction_id)) from silver.int_transactions_checked"
    ).fetchone()[0]
    assert longest <= 128
    payload = conn.execute(
        "select payload from silver.rejects where reason = 'too_long:id' and payload like %s", [f"%{LONG}%"]
    ).fetchone()
    assert payload is not None
