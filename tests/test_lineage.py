"""Answers that name transactions cite the landing file and line each came from (issue 20 item 4)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from assay.agents.ask import Asker
from assay.agents.tools.db import ReaderSession, ToolError
from assay.agents.tools.lineage import transaction_sources


def test_the_reader_finds_each_transactions_landing_line(pipeline_run, postgres, assay_home, conn):
    with ReaderSession(postgres.reader_url()) as reader:
        with pytest.raises(ToolError):  # the reader cannot read silver itself
            reader.query("select 1 from silver.transactions limit 1")
        top = reader.query(
            "select source_id from platinum.documents where doc_type = 'transaction'"
            " order by amount_eur desc, source_id limit 5"
        ).rows
        ids = [row[0] for row in top]
        sources = transaction_sources(reader, ids)
    assert sorted(sources) == sorted(ids)
    amounts = dict(
        conn.execute(
            "select transaction_id::text, amount from silver.transactions"
            " where transaction_id::text = any(%s)",
            [ids],
        ).fetchall()
    )
    for tid, source in sources.items():
        assert source.source == "transactions"
        lines = (assay_home / "landing" / source.source_file).read_text().splitlines()
        record = json.loads(lines[source.line_number - 1])
        assert str(record["id"]).strip() == tid
        assert round(Decimal(str(record["amount"]).strip()), 2) == amounts[tid]


def test_ask_largest_expense_cites_its_landing_line(pipeline_run, postgres, assay_home, conn):
    tid, amount, day, amount_eur = conn.execute(
        "select transaction_id::text, amount, transaction_date, amount_eur from silver.transactions"
        " order by amount_eur desc, transaction_id::text limit 1"
    ).fetchone()
    question = f"What was the largest expense in {day:%B %Y}?"
    with ReaderSession(postgres.reader_url()) as reader:
        answer = Asker(reader).ask(question).as_dict()
    assert not answer["abstained"], answer["answer"]
    assert answer["rows"][0][0] == tid and Decimal(str(answer["rows"][0][-1])) == amount_eur
    (source,) = answer["sources"]
    assert source["transaction_id"] == tid
    lines = (assay_home / "landing" / source["file"]).read_text().splitlines()
    record = json.loads(lines[source["line"] - 1])
    assert str(record["id"]).strip() == tid
    assert round(Decimal(str(record["amount"]).strip()), 2) == amount
