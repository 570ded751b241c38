"""Data never reaches the terminal as control sequences: the CLI shows them escaped."""

import contextlib
import types
from datetime import datetime

from click.testing import CliRunner

from assay.core.text import printable
from assay.orchestration import cli
from assay.quality import report as quality_report

UNSAFE = {chr(c) for c in (*range(0, 9), *range(11, 32), *range(0x7F, 0xA0))} | {"\u202e", "\u2066"}
ATTACK = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\r\x9b1m\u202egnp.exe\x08\x00"


def test_printable_escapes_controls_and_keeps_layout():
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable(ATTACK) == "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\x0d\\x9b1m\\u202egnp.exe\\x08\\x00"
    assert printable("naïve — 東京") == "naïve — 東京"


def test_quality_prints_landing_data_escaped(monkeypatch):
    report = quality_report.QualityReport(
        reject_reasons=[
            {
                "source": "transactions",
                "reason": "invalid_date",
                "n": 1,
                "examples": [
                    {"source_file": f"t{ATTACK}.jsonl", "line_number": 3, "payload": f'{{"d": "{ATTACK}"}}'}
                ],
            }
        ],
        failing_checks=[
            {
                "asset_key": "silver/transactions",
                "check_name": "gate",
                "severity": "ERROR",
                "description": ATTACK,
                "run_id": "r",
                "evaluated_at": datetime(2025, 1, 1),
            }
        ],
    )
    monkeypatch.setattr(quality_report, "build_report", lambda conn, **kwargs: report)
    database = types.SimpleNamespace(connect=lambda **kwargs: contextlib.nullcontext())
    monkeypatch.setattr(cli, "PostgresResource", lambda: database)
    result = CliRunner().invoke(cli.main, ["quality"])
    assert result.exit_code == 0, result.output
    assert not UNSAFE & set(result.output)
    assert result.output.count("\\x1b]0;owned\\x07") == 3  # file name, payload, check description
