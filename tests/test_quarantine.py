"""No single row can stop the others: a row that makes a silver model fail on a case no reject rule
covers is quarantined by the run that meets it, and the rest goes on.

Every failure the adversarial corpus knows of is caught by a rule (tests/test_adversarial.py), so
this test makes one rule-less failure honestly: it adds a CHECK constraint to `silver.transactions`
that refuses one description. dbt's insert into the table then fails on that one row with a database
error (a check violation), exactly as an unknown overflow or index limit would. Real embedded
Postgres and real dbt; the runs build bronze and silver (where quarantine acts), not the whole graph.
"""

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from homes import own_home, run_bronze_silver, write_landing, write_reference

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 6, 16)
POISON = "a description this table refuses"
CONSTRAINT = "test_refuses_one_description"


def _tx(tx_id: str, description: str = "taxi to the airport") -> str:
    return json.dumps(
        {
            "id": tx_id,
            "employee_id": "E00001",
            "vendor_id": "V0001",
            "amount": 12.5,
            "currency": "EUR",
            "date": DAY.isoformat(),
            "description": description,
            "category": "travel",
        }
    )


def _quarantine_notes(result) -> list[str]:
    """The notes of the run's materializations (one per daily partition, the same for each)."""
    return sorted(
        {
            m.metadata["quarantine_notes"].value
            for m in result.asset_materializations_for_node("dbt_silver_daily")
            if "quarantine_notes" in m.metadata
        }
    )


@pytest.fixture(scope="module")
def home():
    with own_home("assay-quarantine-") as home:
        write_reference(home)
        yield home


def test_a_row_that_breaks_a_model_is_quarantined_and_the_rest_goes_on(home):
    from assay.core.database import PostgresResource
    from assay.orchestration.cli import main
    from assay.quality.report import build_report, render

    postgres = PostgresResource()
    write_landing(home, f"transactions/transactions-{DAY}.jsonl", [_tx("Q1")])
    run_bronze_silver()  # makes silver.transactions, so the test can add its constraint
    with postgres.connect(autocommit=True) as conn:
        conn.execute(
            f"alter table silver.transactions add constraint {CONSTRAINT}"
            f" check (description is distinct from '{POISON}')"
        )

    day2 = DAY + dt.timedelta(days=1)
    lines = [_tx("Q2"), _tx("Q3", POISON), _tx("Q4")]
    write_landing(
        home, f"transactions/transactions-{day2}.jsonl", [line.replace(str(DAY), str(day2)) for line in lines]
    )
    result = run_bronze_silver()

    with postgres.connect(autocommit=True) as conn:
        poison_id = conn.execute(
            "select bronze_id from bronze.transactions where record ->> 'id' = 'Q3'"
        ).fetchone()[0]
        silver = {r[0] for r in conn.execute("select transaction_id from silver.transactions")}
        assert silver == {"Q1", "Q2", "Q4"}
        rejected = conn.execute(
            "select bronze_id, reason, detail, payload from silver.rejects where source = 'transactions'"
        ).fetchall()
        assert len(rejected) == 1
        bronze_id, reason, detail, payload = rejected[0]
        assert (bronze_id, reason) == (poison_id, "quarantined")
        assert f'"silver"."transactions" violates check constraint "{CONSTRAINT}"' in detail, detail
        assert "silver.transactions (dbt_silver_daily)" in detail and POISON in payload
        (quarantine_id,) = conn.execute(
            "select quarantine_id from bronze.quarantine where source = 'transactions' and bronze_id = %s"
            " and released_at is null",
            [poison_id],
        ).fetchone()
        lines = render(build_report(conn))
    notes = _quarantine_notes(result)
    assert len(notes) == 1 and f"assay bronze quarantine release {quarantine_id}" in notes[0], notes
    assert any(f"assay bronze quarantine release {quarantine_id}" in line for line in lines), lines

    # a rerun meets nothing: the row stays quarantined, nothing new is quarantined
    again = run_bronze_silver()
    assert _quarantine_notes(again) == []
    with postgres.connect(autocommit=True) as conn:
        assert conn.execute("select count(*) from bronze.quarantine").fetchone()[0] == 1

    runner = CliRunner()
    listed = runner.invoke(main, ["bronze", "quarantine"])
    assert listed.exit_code == 0 and CONSTRAINT in listed.output, listed.output

    # the cause fixed (the constraint dropped) and the row released: the next run takes it to silver
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"alter table silver.transactions drop constraint {CONSTRAINT}")
    released = runner.invoke(main, ["bronze", "quarantine", "release", str(quarantine_id)])
    assert released.exit_code == 0 and "Released transactions" in released.output, released.output
    twice = runner.invoke(main, ["bronze", "quarantine", "release", str(quarantine_id)])
    assert twice.exit_code != 0 and "no quarantined row" in twice.output
    run_bronze_silver()
    with postgres.connect(autocommit=True) as conn:
        silver = {r[0] for r in conn.execute("select transaction_id from silver.transactions")}
        assert silver == {"Q1", "Q2", "Q3", "Q4"}
        assert conn.execute("select count(*) from silver.rejects").fetchone()[0] == 0


def test_a_failure_no_row_causes_is_not_quarantined(home):
    """Isolation only blames rows: a statement that fails on every input (here a broken one) finds
    nothing to quarantine, so the step's own error stands."""
    from assay.core.database import PostgresResource
    from assay.landing.quarantine import Probe, isolate

    with PostgresResource().connect(autocommit=True) as conn:
        whole = Probe(
            "select bronze_id, 1 / 0 as boom from bronze.transactions_active",
            "bronze.transactions_active",
            None,
        )
        assert isolate(conn, whole) == {}  # division by zero on every row: not a few poison rows
        one = Probe(
            f"select bronze_id, 1 / (bronze_id - {_first_id(conn)}) as boom from bronze.transactions_active",
            "bronze.transactions_active",
            None,
        )
        assert list(isolate(conn, one)) == [_first_id(conn)]


def _first_id(conn) -> int:
    return conn.execute("select min(bronze_id) from bronze.transactions_active").fetchone()[0]


def test_a_failing_test_names_its_rows_when_they_carry_bronze_id(home):
    """What a failed ERROR test quarantines: the rows its compiled SQL returns, when they carry a
    `bronze_id` (the shape of `expression_is_true`), nothing when they name values only (`unique`).
    Here on the SQL alone: no shipped test can fail on data that passed the rules."""
    from assay.core.database import PostgresResource
    from assay.landing.quarantine import failing_rows

    with PostgresResource().connect(autocommit=True) as conn:
        q3 = conn.execute("select bronze_id from silver.transactions where transaction_id = 'Q3'").fetchone()[
            0
        ]
        rows = failing_rows(
            conn, "select * from silver.transactions where not (transaction_id <> 'Q3')", "why"
        )
        assert rows == {q3: "why"}
        values = "select transaction_id as unique_field, count(*) as n from silver.transactions group by 1"
        assert failing_rows(conn, values, "why") == {}
        assert failing_rows(conn, "select * from silver.transactions", "why", max_rows=2) == {}


def test_quality_says_how_to_clear_a_quarantine_gate(home):
    from assay.core.database import PostgresResource
    from assay.quality.report import _unblock

    with PostgresResource().connect() as conn:
        hint = _unblock(conn, {"asset_key": "silver/transactions", "check_name": "reject_rate_quarantined"})
    assert "assay bronze quarantine release ID" in hint and "assay bronze retract" in hint
