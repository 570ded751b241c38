"""DQ scores per table (see `assay.quality.rules` for what each dimension means), set-based SQL only."""

import psycopg
from psycopg import sql

from assay.quality.rules import DIMENSIONS, gold_rules, reason_dimension, source_reasons
from assay.quality.store import Score, Window


def silver_score(conn: psycopg.Connection, source: str, window: Window | None = None) -> Score:
    """Scores of `silver.<source>` from its bronze rows and their reject reasons.

    With a `window` (first and last day, of a daily-partitioned source), only the rows of those days
    count: bronze's and silver's by `partition_date`, the rejects by their bronze row's day. The
    whole table's row count is still read (`table_rows`), so the gate keeps a whole-table figure.
    """
    bronze = sql.Identifier("bronze", source)
    in_window = sql.SQL(" and partition_date between %s and %s") if window else sql.SQL("")
    days = list(window) if window else []
    bronze_rows = conn.execute(
        sql.SQL("select count(*) from {} where true{}").format(bronze, in_window), days
    ).fetchone()[0]
    # After retention removed old bronze days, silver and rejects still hold the rows made from them:
    # the score covers the rows whose bronze row remains (quality.retention_horizons says whether any
    # went), so it stays a share of bronze.
    kept = (
        sql.SQL(" and exists (select from {} b where b.bronze_id = s.bronze_id)").format(bronze)
        if _bronze_trimmed(conn)
        else sql.SQL("")
    )
    silver_rows = conn.execute(
        sql.SQL("select count(*) from {} s where true{}{}").format(
            sql.Identifier("silver", source), in_window, kept
        ),
        days,
    ).fetchone()[0]
    table_rows = _count(conn, "silver", source) if window else silver_rows
    rejects_in_window = (
        sql.SQL(" and bronze_id in (select bronze_id from {} where partition_date between %s and %s)").format(
            bronze
        )
        if window
        else sql.SQL("")
    )
    by_class = dict(
        conn.execute(
            sql.SQL(
                "select reason_class, count(*) from silver.rejects s where source = %s{}{} group by 1"
            ).format(rejects_in_window, kept),
            [source, *days],
        ).fetchall()
    )
    rejected = sum(by_class.values())
    # bronze rows that reached neither silver nor rejects were lost on the way: incomplete
    unaccounted = max(bronze_rows - silver_rows - rejected, 0)
    short = dict.fromkeys(DIMENSIONS, 0)
    for reason_class, n in by_class.items():
        short[reason_dimension(reason_class)] += n
    short["completeness"] += unaccounted
    share = (lambda n: 1 - n / bronze_rows) if bronze_rows else (lambda n: 1.0)
    return Score(
        table=f"silver.{source}",
        layer="silver",
        row_count=silver_rows,
        input_rows=bronze_rows,
        **{d: share(short[d]) for d in DIMENSIONS},
        overall=silver_rows / bronze_rows if bronze_rows else 1.0,
        window=window,
        table_rows=table_rows,
        details={
            # every class the source can produce, and any other that turned up
            "rejected_by_class": {c: by_class.get(c, 0) for c in source_reasons(source)} | by_class,
            "rejected_rows": rejected,
            "unaccounted_rows": unaccounted,
            "short_rows": short,
        },
    )


def gold_score(conn: psycopg.Connection, table: str) -> Score:
    """Scores of `gold.<table>` from its own rows and its dbt tests (`gold_rules`)."""
    query = sql.SQL(
        """
        {flagged}
        select count(*),
               count(*) filter (where _complete),
               count(*) filter (where _first),
               count(*) filter (where _valid),
               count(*) filter (where _timely),
               count(*) filter (where _complete and _first and _valid and _timely)
        from flagged
        """
    ).format(flagged=_flagged(table))
    n, *passing = conn.execute(query).fetchone()
    shares = [p / n if n else 1.0 for p in passing]
    return Score(
        table=f"gold.{table}",
        layer="gold",
        row_count=n,
        input_rows=n,
        **dict(zip(DIMENSIONS, shares[:4], strict=True)),
        overall=shares[4],
        details={"short_rows": {d: n - p for d, p in zip(DIMENSIONS, passing[:4], strict=True)}},
    )


def gold_failing_rows(conn: psycopg.Connection, table: str, limit: int) -> list[dict]:
    """Up to `limit` rows of `gold.<table>` that fail any dimension, with the dimensions they fail."""
    query = sql.SQL(
        "{flagged} select * from flagged where not (_complete and _first and _valid and _timely) limit %s"
    ).format(flagged=_flagged(table))
    cur = conn.execute(query, [limit])
    names = [c.name for c in cur.description]
    flags = dict(zip(("_complete", "_first", "_valid", "_timely"), DIMENSIONS, strict=True))
    rows = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        failed = [dimension for flag, dimension in flags.items() if not row[flag]]
        rows.append({k: v for k, v in row.items() if not k.startswith("_")} | {"fails": ", ".join(failed)})
    return rows


def _flagged(table: str) -> sql.Composed:
    """A `flagged` CTE: every row of `gold.<table>` with one boolean per dimension."""
    rules = gold_rules()[table]
    # one occurrence number per key: a row is "first" when it is the first with each of its keys
    occurrences = sql.SQL("").join(
        sql.SQL(", row_number() over (partition by {key} order by {key}) as {name}").format(
            key=sql.SQL(", ").join(sql.Identifier(c) for c in key), name=sql.Identifier(f"_occurrence{i}")
        )
        for i, key in enumerate(rules.keys)
    )
    first = _all(sql.SQL("{} = 1").format(sql.Identifier(f"_occurrence{i}")) for i in range(len(rules.keys)))
    complete = _all(sql.SQL("{} is not null").format(sql.Identifier(c)) for c in rules.required)
    # rule texts are the expressions of the model's dbt tests (the project's own code), never user input
    valid = _all(sql.SQL(f"coalesce(({rule}), false)") for rule in rules.valid)
    timely = _all(sql.SQL(f"coalesce(({rule}), false)") for rule in rules.timely)
    return sql.SQL(
        """
        with ranked as (
            select *{occurrences} from {table}
        ),
        flagged as (
            select ranked.*, {complete} as _complete, {first} as _first, {valid} as _valid,
                   {timely} as _timely
            from ranked
        )
        """
    ).format(
        occurrences=occurrences,
        table=sql.Identifier("gold", table),
        complete=complete,
        first=first,
        valid=valid,
        timely=timely,
    )


def _all(conditions) -> sql.Composable:
    """`a and b and ...`, or `true` for none."""
    parts = list(conditions)
    return sql.SQL(" and ").join(parts) if parts else sql.SQL("true")


def reject_examples(conn: psycopg.Connection, source: str, reason_class: str, limit: int) -> list[dict]:
    """The first rejected rows of one class, as `silver.rejects` holds them."""
    cur = conn.execute(
        "select source_file, line_number, reason, left(payload, 160) as payload from silver.rejects"
        " where source = %s and reason_class = %s order by source_file, line_number limit %s",
        [source, reason_class, limit],
    )
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _bronze_trimmed(conn: psycopg.Connection) -> bool:
    """Whether retention has removed bronze days (core/retention.py)."""
    return conn.execute(
        "select exists (select from quality.retention_horizons where layer = 'bronze')"
    ).fetchone()[0]


def _count(conn: psycopg.Connection, schema: str, table: str) -> int:
    return conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))).fetchone()[
        0
    ]
