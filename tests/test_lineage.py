"""Answers that name transactions cite the landing file and line each came from (issue 20 item 4)."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from assay.agents.ask import Asker
from assay.agents.tasks.answer_questions import AnswerQuestions
from assay.agents.tasks.base import RunInput, RunState
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


def test_the_answer_questions_asset_shows_each_answers_landing_line(pipeline_run, postgres, conn):
    """A batch question answered by Ask assay keeps its sources in the stored answer, and the asset's
    materialisation metadata lists them (assets/agents.py source_rows)."""
    from assay.assets.agents import source_rows

    (day,) = conn.execute("select max(transaction_date) from silver.transactions").fetchone()
    question = f"Which were the top 3 expenses in {day:%B %Y}?"
    with ReaderSession(postgres.reader_url()) as reader:
        asked = Asker(reader).ask(question).as_dict()
    assert len(asked["sources"]) == 3, asked["answer"]
    run = RunState(RunInput("q1", {"question": question, "ask": asked}))
    AnswerQuestions().start(run)
    assert run.status == "succeeded" and run.answer["sources"] == asked["sources"]
    table = source_rows(SimpleNamespace(report=SimpleNamespace(runs=[run])))
    rows = table.splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == [s["transaction_id"] for s in asked["sources"]]
    assert all(f"| {s['line']} |" in table and s["file"] in table for s in asked["sources"])
