"""Quarantine: bronze rows that made a step fail on a case no reject rule covers.

The reject rules (dbt's checked models) catch every value they know of. When a row still makes a
model fail with a database error on its data (an overflow, an index row too large, a constraint),
the step that met it finds the offending rows set-based (`isolate`), records them here with the
error (`quarantine_rows`) and runs again: the checked models reject a quarantined row as
`quarantined` (`silver.rejects.detail` holds the error), so the rest of the data goes on and a rerun
never fails the same way twice. `release` lets a row through the rules again (after a fix).

`isolate` re-runs the failing model's compiled SQL with one parent relation narrowed to a
`bronze_id` range, bisecting ranges: k bad rows among n cost O(k log n) probes, each a rolled-back
statement, never a loop over rows. A probe inserts into a temporary copy of the model's table
(`like ... including all`: its indexes and constraints), so an error that only the insert meets
is reproduced too.
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql

# Postgres error classes that come from a row's data (SQLSTATE classes 22 data exception and 23
# integrity constraint violation, 54000 program limit exceeded: e.g. `index row requires ... bytes`),
# never from the connection, permissions or the SQL's own text.
DATA_ERROR_CLASSES = ("22", "23", "54")


@dataclass
class QuarantinedRow:
    quarantine_id: int
    source: str
    bronze_id: int
    reason: str
    step: str
    quarantined_at: object
    released_at: object = None

    @property
    def release_command(self) -> str:
        return f"assay bronze quarantine release {self.quarantine_id}"


@dataclass
class Probe:
    """The failing model's statement, ready to run over a narrowed input."""

    compiled_sql: str  # the model's compiled select
    parent: str  # the relation (as it appears in the SQL) to narrow by bronze_id
    target: str | None  # the model's table when it exists: probes insert into a copy of it


def is_data_error(error: psycopg.Error) -> bool:
    state = error.sqlstate or ""
    return state[:2] in DATA_ERROR_CLASSES


def _probe_statement(probe: Probe, columns: list[str] | None, lo: int, hi: int, without: list[int]) -> str:
    # ids inlined (integers from the database): the model's SQL may hold `%` signs of its own
    skip = (
        f" and bronze_id <> all('{{{','.join(str(int(i)) for i in without)}}}'::bigint[])" if without else ""
    )
    narrowed = f"(select * from {probe.parent} where bronze_id between {lo:d} and {hi:d}{skip})"
    select = probe.compiled_sql.strip().rstrip(";").replace(probe.parent, narrowed)
    if columns is None:
        # `probe::text` makes Postgres compute every column of every row (a bare count may skip them)
        return f"select count(*) from ({select}) as probe where probe::text is not null"
    names = ", ".join(sql.Identifier(c).as_string(None) for c in columns)
    return f"insert into pg_temp.assay_probe ({names}) select {names} from ({select}) as probe"


def _run_probe(
    conn: psycopg.Connection,
    probe: Probe,
    columns: list[str] | None,
    lo: int,
    hi: int,
    without: list[int] | None = None,
) -> str | None:
    """The data error the statement meets over bronze ids lo..hi (less `without`), or None when it
    goes through. Nothing stays: the probe's transaction is always rolled back."""
    try:
        with conn.transaction(force_rollback=True):
            if columns is not None:
                conn.execute(
                    f"create temporary table assay_probe (like {probe.target} including all) on commit drop"
                )
            conn.execute(_probe_statement(probe, columns, lo, hi, without or []))
    except psycopg.Error as exc:
        if not is_data_error(exc):
            raise
        message = (exc.diag.message_primary or str(exc)).strip()
        # the probe's copy stands for the model's table: name the table the user knows
        return message.replace('"assay_probe"', probe.target) if probe.target else message
    return None


def isolate(conn: psycopg.Connection, probe: Probe, max_rows: int = 100) -> dict[int, str]:
    """The bronze ids whose rows alone make the model fail, with each one's error.

    Empty unless the failure is a few rows' own: when the whole input goes through (the failure was
    not about data), when the rest still fails without the rows found (rows fail only together), or
    when more than `max_rows` rows (or every row) fail: that is not poison rows but a missing rule
    or a broken model, and quarantining them would hide it. Never a guess: each row found failed on
    its own, and the input without them went through.
    `conn` should be in autocommit mode: each probe is its own rolled-back transaction.
    """
    columns = None
    if probe.target is not None:
        columns = [
            row[0]
            for row in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
                " and not attisdropped order by attnum",
                [probe.target],
            )
        ]
    first, last, rows = conn.execute(
        f"select min(bronze_id), max(bronze_id), count(*) from {probe.parent}"
    ).fetchone()
    if first is None or _run_probe(conn, probe, columns, first, last) is None:
        return {}
    found: dict[int, str] = {}
    pending = [(first, last)]
    while pending:
        if len(found) > max_rows:
            return {}
        lo, hi = pending.pop()
        if lo == hi:
            error = _run_probe(conn, probe, columns, lo, hi)
            if error is not None:
                found[lo] = error
            continue
        mid = (lo + hi) // 2
        for half in ((lo, mid), (mid + 1, hi)):
            if _run_probe(conn, probe, columns, *half) is not None:
                pending.append(half)
    if not found or len(found) >= rows or _run_probe(conn, probe, columns, first, last, list(found)):
        return {}
    return found


def failing_rows(conn: psycopg.Connection, test_sql: str, reason: str, max_rows: int = 100) -> dict[int, str]:
    """The bronze ids of the rows a failing test returns (its compiled SQL selects the failing rows),
    each with `reason`. Empty when the test's rows carry no `bronze_id` (`unique`, `relationships`:
    they name values, not rows) or when more than `max_rows` fail (a rule, not a few rows)."""
    select = test_sql.strip().rstrip(";")
    try:
        with conn.transaction(force_rollback=True):
            ids = [
                row[0]
                for row in conn.execute(
                    f"select distinct bronze_id from ({select}) as failing"
                    f" where bronze_id is not null limit {max_rows + 1:d}"
                )
            ]
    except psycopg.errors.UndefinedColumn:
        return {}
    return {} if len(ids) > max_rows else dict.fromkeys(ids, reason)


def quarantine_rows(
    conn: psycopg.Connection, source: str, errors: dict[int, str], step: str
) -> list[QuarantinedRow]:
    """Record `errors` (bronze id -> error) as open quarantines of `source`; returns the new ones."""
    if not errors:
        return []
    rows = conn.execute(
        """insert into bronze.quarantine (source, bronze_id, reason, step)
           select %(source)s, ids.bronze_id, ids.reason, %(step)s
           from unnest(%(ids)s::bigint[], %(reasons)s::text[]) as ids (bronze_id, reason)
           on conflict (source, bronze_id) where released_at is null do nothing
           returning quarantine_id, source, bronze_id, reason, step, quarantined_at, released_at""",
        {"source": source, "ids": list(errors), "reasons": list(errors.values()), "step": step},
    ).fetchall()
    return [QuarantinedRow(*row) for row in rows]


def quarantined(conn: psycopg.Connection, released: bool = False) -> list[QuarantinedRow]:
    """The open quarantines (with `released`, the released ones too), oldest first."""
    rows = conn.execute(
        """select quarantine_id, source, bronze_id, reason, step, quarantined_at, released_at
           from bronze.quarantine where %(released)s or released_at is null order by quarantine_id""",
        {"released": released},
    ).fetchall()
    return [QuarantinedRow(*row) for row in rows]


def release(conn: psycopg.Connection, quarantine_id: int) -> QuarantinedRow | None:
    """Release one quarantined row: the next run checks it against the rules again (and, should it
    still fail, quarantines it again). None when no open quarantine has that id."""
    row = conn.execute(
        """update bronze.quarantine set released_at = now()
           where quarantine_id = %s and released_at is null
           returning quarantine_id, source, bronze_id, reason, step, quarantined_at, released_at""",
        [quarantine_id],
    ).fetchone()
    return QuarantinedRow(*row) if row else None
