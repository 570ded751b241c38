"""Bad files have a way out: a file replaced under its name supersedes its earlier version, a retracted
file leaves silver at the next run, and a deleted landing file changes nothing until it is retracted.

Real embedded Postgres and real dbt, on a home of a few hand-written lines; the runs build bronze and
silver only (what the ledger decides), not the whole graph.
"""

import datetime as dt
import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from homes import own_home, run_bronze_silver, write_landing, write_reference

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 6, 16)
TX_FILE = f"transactions/transactions-{DAY}.jsonl"


def _tx(tx_id: str, amount: float) -> str:
    return json.dumps(
        {
            "id": tx_id,
            "employee_id": "E00001",
            "vendor_id": "V0001",
            "amount": amount,
            "currency": "EUR",
            "date": DAY.isoformat(),
            "description": "taxi to the airport",
            "category": "travel",
        }
    )


@pytest.fixture(scope="module")
def home():
    with own_home("assay-retract-") as home:
        write_reference(home)
        yield home


def _silver(conn) -> dict[str, Decimal]:
    return dict(conn.execute("select transaction_id, amount from silver.transactions").fetchall())


def _accounted(conn) -> None:
    """Every active bronze row is in silver or in rejects, once."""
    active, silver, rejected = conn.execute(
        "select (select count(*) from bronze.transactions_active),"
        " (select count(*) from silver.transactions),"
        " (select count(*) from silver.rejects where source = 'transactions')"
    ).fetchone()
    assert active == silver + rejected


def test_replace_retract_and_delete(home):
    from assay.core.database import PostgresResource
    from assay.orchestration.cli import main

    write_landing(home, TX_FILE, [_tx("T1", 649.08), _tx("T2", 20.0), _tx("T3", 30.0)])
    run_bronze_silver()
    with PostgresResource().connect(autocommit=True) as conn:
        assert _silver(conn) == {"T1": Decimal("649.08"), "T2": Decimal("20.00"), "T3": Decimal("30.00")}

    # the same name, corrected content: the new version replaces the old, nothing doubles
    write_landing(home, TX_FILE, [_tx("T1", 1649.08), _tx("T2", 20.0)])
    result = run_bronze_silver()
    notes = [
        m.metadata["files_superseded"].value
        for m in result.asset_materializations_for_node("bronze__transactions")
    ]
    assert any("supersedes the 3 rows" in n for n in notes), notes
    with PostgresResource().connect(autocommit=True) as conn:
        assert _silver(conn) == {"T1": Decimal("1649.08"), "T2": Decimal("20.00")}
        assert (
            conn.execute("select count(*) from silver.rejects where reason = 'duplicate'").fetchone()[0] == 0
        )
        # both versions stay in bronze for audit
        assert conn.execute("select count(*) from bronze.transactions").fetchone()[0] == 5
        _accounted(conn)

    runner = CliRunner()
    listed = runner.invoke(main, ["bronze", "files", "--source", "transactions"])
    assert listed.exit_code == 0 and "superseded" in listed.output and "active" in listed.output

    # deleting the landing file changes nothing by itself; retracting it (by its landing path, as a
    # user types it) takes its rows out of silver at the next run, which still covers its day
    (home / "landing" / TX_FILE).unlink()
    retracted = runner.invoke(main, ["bronze", "retract", TX_FILE, "--reason", "wrong currency"])
    assert retracted.exit_code == 0, retracted.output
    assert "2 version(s), 5 rows retracted" in retracted.output and "assay run" in retracted.output
    again = runner.invoke(main, ["bronze", "retract", TX_FILE])
    assert again.exit_code != 0 and "no active loaded file" in again.output
    run_bronze_silver()
    with PostgresResource().connect(autocommit=True) as conn:
        assert _silver(conn) == {}
        assert conn.execute("select count(*) from bronze.transactions").fetchone()[0] == 5
        status = conn.execute(
            "select retracted_reason from bronze.load_batches"
            " where source_file = %s and superseded_by is null",
            [TX_FILE],
        ).fetchone()
        assert status == ("wrong currency",)
        _accounted(conn)


def test_a_version_put_back_is_active_again(home):
    """Loader level: v1, v2, v1 again -> v1 active, v2 superseded, nothing loaded twice."""
    from assay.core.database import PostgresResource
    from assay.landing.bronze import load_source, loaded_files

    rel = f"transactions/transactions-{DAY + dt.timedelta(days=1)}.jsonl"
    postgres = PostgresResource()
    versions = ([_tx("R1", 1.0)], [_tx("R1", 2.0), _tx("R2", 3.0)], [_tx("R1", 1.0)])
    notes = []
    for lines in versions:
        write_landing(home, rel, lines)
        notes += [f.note for f in load_source(postgres, "transactions", home / "landing") if f.note]
    assert len(notes) == 2 and "active again" in notes[1]
    with postgres.connect() as conn:
        states = [(f.rows, f.status) for f in loaded_files(conn, "transactions") if f.source_file == rel]
        active = conn.execute(
            "select count(*) from bronze.transactions_active where source_file = %s", [rel]
        ).fetchone()[0]
    assert states == [(1, "active"), (2, "superseded")]
    assert active == 1


def test_quality_names_the_command_that_unblocks_a_gate(home):
    from assay.core.database import PostgresResource
    from assay.quality.report import _unblock

    with PostgresResource().connect() as conn:
        hint = _unblock(conn, {"asset_key": "silver/transactions", "check_name": "reject_rate_duplicate"})
        assert "assay bronze retract" in hint and "ASSAY_DQ_REJECT_RATE_LIMITS" in hint
        hint = _unblock(conn, {"asset_key": "silver/vendors", "check_name": "dq_score"})
        assert "assay bronze files --source vendors" in hint and "ASSAY_DQ_SILVER_MIN_SCORE" in hint
