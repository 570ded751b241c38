"""The read API's pure parts: value parsing, cursors, rate limiting, and keyset paging as a property.

The keyset property runs the real SQL on a throwaway table (random rows with nulls and duplicates,
random sorts and page sizes) and compares with Python's own ordering.
"""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.api.catalog import Column, Mart
from assay.api.errors import ApiError
from assay.api.query import (
    build_page_query,
    decode_cursor,
    encode_cursor,
    filter_params,
    parse_page_request,
    parse_value,
)
from assay.api.ratelimit import RateLimiter


def _column(name: str, kind: str, pg_type: str, nullable: bool = True) -> Column:
    return Column(name=name, pg_type=pg_type, nullable=nullable, description="", kind=kind)


MART = Mart(
    name="keyset_probe",
    schema="pg_temp",
    table="keyset_probe",
    description="",
    columns=(
        _column("id", "integer", "integer", nullable=False),
        _column("x", "integer", "integer"),
        _column("y", "string", "text"),
        _column("d", "date", "date"),
        _column("n", "number", "numeric"),
        _column("flag", "boolean", "boolean"),
    ),
    key=("id",),
    key_is_unique=True,
)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("x", "-42", -42),
        ("n", "12.50", Decimal("12.50")),
        ("n", "1e3", Decimal("1e3")),
        ("d", "2025-02-28", dt.date(2025, 2, 28)),
        ("flag", "TRUE", True),
        ("flag", "0", False),
        ("y", "it's; drop table x", "it's; drop table x"),
    ],
)
def test_values_are_parsed_by_column_type(name, text, expected):
    assert parse_value(MART.by_name[name], text, name) == expected


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("x", "1.5"),
        ("x", "1" * 19),
        ("n", "NaN"),
        ("n", "1e99999"),
        ("d", "2025-02-30"),
        ("d", "20250101"),
        ("flag", "yes"),
        ("y", "a\x00b"),
        ("y", "y" * 1001),
    ],
)
def test_bad_values_are_400(name, text):
    with pytest.raises(ApiError) as error:
        parse_value(MART.by_name[name], text, name)
    assert error.value.status == 400


def _page(params) -> object:
    return parse_page_request(MART, params, filter_params(MART), default_limit=5, max_limit=50, max_in=10)


def test_cursors_round_trip_and_refuse_tampering():
    page = _page([("sort", "-n,d")])
    cursor = encode_cursor(page, [Decimal("2.50"), dt.date(2025, 1, 6), 7])
    assert decode_cursor(MART, page, cursor) == (Decimal("2.50"), dt.date(2025, 1, 6), 7)
    assert decode_cursor(MART, page, encode_cursor(page, [None, None, 3])) == (None, None, 3)
    for bad in ("", "!!!", cursor[:-3], encode_cursor(_page([]), [1])):
        with pytest.raises(ApiError):
            decode_cursor(MART, page, bad)


def test_fixed_endpoint_cursors_round_trip_and_refuse_wrong_types():
    from assay.api import pages

    rows = [(f"k{i}", i) for i in range(5)]
    page, cursor = pages.split(rows, 3, lambda r: (r[1], r[0]))
    assert page == rows[:3] and pages.decode(cursor, (int, str)) == (2, "k2")
    assert pages.split(rows, 5, lambda r: r) == (rows, None)
    for bad in (
        pages.encode(["k2", 2]),  # the types swapped: an int column never gets a string bound
        pages.encode([2.0, "k2"]),
        pages.encode([2]),
        pages.encode([True, "k2"]),
        "not base64!",
        "x" * 3000,
    ):
        with pytest.raises(ApiError) as error:
            pages.decode(bad, (int, str))
        assert error.value.status == 400


def test_rate_limiter_bursts_then_refuses_with_a_wait():
    limiter = RateLimiter(per_minute=60, burst=3)
    assert [limiter.check("k") for _ in range(3)] == [None, None, None]
    wait = limiter.check("k")
    assert wait is not None and 0.9 < wait <= 1.0
    assert limiter.check("other") is None  # keys are independent
    assert limiter.check("slow", per_minute=1) is None and limiter.check("slow", per_minute=1) > 59
    shared = RateLimiter(per_minute=60, burst=4, share=0.5)  # one of two workers
    assert [shared.check("k") is None for _ in range(3)] == [True, True, False]
    assert RateLimiter.retry_after(0.2) == "1"


_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(-2, 2)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "B", "é"])),
        st.one_of(st.none(), st.dates(dt.date(2025, 1, 1), dt.date(2025, 1, 4))),
        st.one_of(st.none(), st.sampled_from([Decimal("-1.5"), Decimal("0"), Decimal("2.25")])),
    ),
    max_size=30,
)
_sorts = st.lists(st.sampled_from(["x", "-x", "y", "-y", "d", "-d", "n", "-n"]), max_size=3).filter(
    lambda s: len({t.lstrip("-") for t in s}) == len(s)
)


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows, sort=_sorts, limit=st.integers(1, 7))
def test_keyset_pages_return_every_row_once_in_order(conn, rows, sort, limit):
    conn.execute(
        "create temp table if not exists keyset_probe"
        " (id integer primary key, x integer, y text, d date, n numeric, flag boolean)"
    )
    conn.execute("truncate keyset_probe")
    with conn.cursor() as cursor:
        cursor.executemany(
            "insert into keyset_probe values (%s, %s, %s, %s, %s, true)",
            [(i, *row) for i, row in enumerate(rows)],
        )
    seen, cursor_text = [], None
    for _ in range(len(rows) + 2):
        params = [("sort", s) for s in sort] + [("limit", str(limit))]
        if cursor_text:
            params.append(("cursor", cursor_text))
        page = _page(params)
        query, values = build_page_query(MART, page)
        fetched = conn.execute(query, values).fetchall()
        more = len(fetched) > limit
        fetched = fetched[:limit]
        seen += [row[-1] for row in fetched]  # the key (id) is the last order value
        if not more:
            break
        cursor_text = encode_cursor(page, fetched[-1][-len(page.order) :])
    assert sorted(seen) == list(range(len(rows)))  # every row exactly once

    # and in the requested order, nulls last in every column, text by Postgres's collation
    collated = {
        text: rank
        for rank, (text,) in enumerate(conn.execute("select unnest(array['a','b','B','é']) order by 1"))
    }
    columns = {"x": 0, "y": 1, "d": 2, "n": 3}

    def sortable(name: str, value):
        return collated[value] if name == "y" else value.toordinal() if name == "d" else value

    def key(i: int) -> tuple:
        parts = []
        for token in sort:
            name = token.lstrip("-")
            value = rows[i][columns[name]]
            if value is None:
                parts.append((1, 0))
            else:
                number = sortable(name, value)
                parts.append((0, -number if token.startswith("-") else number))
        return (*parts, i)

    assert seen == sorted(range(len(rows)), key=key)


def test_or_groups_match_any_of_their_terms_with_bound_values(conn):
    conn.execute(
        "create temp table if not exists keyset_probe (id integer primary key, x integer, y text,"
        " d date, n numeric, flag boolean)"
    )
    conn.execute("truncate keyset_probe")
    rows = [
        (1, -5, "a", None),
        (2, 3, "a,b (c)", None),
        (3, 9, "z", dt.date(2025, 1, 1)),
        (4, 9, None, None),
        (5, 20, "x", dt.date(2025, 6, 1)),
    ]
    with conn.cursor() as cursor:
        cursor.executemany("insert into keyset_probe values (%s, %s, %s, %s, 1, true)", rows)

    def ids(*params: tuple[str, str]) -> list[int]:
        query, values = build_page_query(MART, _page([*params, ("limit", "50")]))
        return sorted(row[-1] for row in conn.execute(query, values))

    assert ids(("or", '(x.lt.0,y.eq."a,b (c)")')) == [1, 2]
    assert ids(("or", "(d.gte.2025-03-01, y.is.null)")) == [4, 5]
    assert ids(("or", "(x.lt.0,x.gt.10)"), ("or", "(y.like.x%,d.is.notnull)")) == [5]  # groups and-ed
    assert ids(("or", "(y.eq.z)"), ("x", "9")) == [3]
    assert ids(("or", "(y.eq.'; drop table keyset_probe; --)")) == []
    for text, fragment in (
        ("x.lt.0", "or: expected (column.op.value,...)"),
        ("(nope.eq.1)", "or: nope.eq is not a filter of keyset_probe"),
        ("(x.in.1)", "or: x.in is not a filter"),
        ("(x__lt.eq.1)", "or: x__lt.eq is not a filter"),
        ("(x.lt.ten)", "or: x: expected an integer"),
        ("(y.is.maybe)", "expected null or notnull"),
        ("(" + ",".join(["x.eq.1"] * 11) + ")", "or: give 1 to 10 conditions"),
    ):
        with pytest.raises(ApiError) as raised:
            _page([("or", text)])
        assert fragment in raised.value.detail, raised.value.detail


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0, gzip", "gzip"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("BR", "br"),
        ("*", "br"),
        ("*;q=0", None),
        ("gzip;q=bad, deflate", None),
    ],
)
def test_accept_encoding_is_negotiated_by_q_values_preferring_br(accept, expected):
    from assay.api.compression import negotiate

    assert negotiate(accept) == expected
