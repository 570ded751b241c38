"""Tests for the sample-data generator: determinism, exact defect counts, truth <-> file mapping."""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import median

import pytest

from assay.landing.sample import (
    ACTIVITIES,
    CATEGORIES,
    CURRENCIES,
    FX_PER_EUR,
    SIZES,
    DefectRates,
    SampleSummary,
    generate,
)

SEEDS = Path(__file__).parents[1] / "dbt_project" / "seeds"
N = SIZES["small"]
DAYS_2025 = [(date(2025, 1, 1) + timedelta(days=i)).isoformat() for i in range(365)]
KEYS = ["id", "employee_id", "vendor_id", "amount", "currency", "date", "description", "category"]
DEFECT_FIELDS = {
    "duplicate": "duplicate",
    "parse_error": "malformed_json",
    "non_positive_amount": "non_positive_amount",
    "future_date": "future_date",
    "unknown_currency": "unknown_currency",
    "unknown_category": "unknown_category",
    "orphan_vendor": "orphan_vendor",
}


def expected(rate: float, n: int) -> int:
    """Round half up, written independently of the module's helper."""
    return math.floor(rate * n + 0.5)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    root = tmp_path_factory.mktemp("small")
    return generate(root / "landing", root / "truth", size="small", seed=7)


@pytest.fixture(scope="module")
def lines(small: SampleSummary) -> list[dict]:
    return joined_lines(small)


def joined_lines(summary: SampleSummary) -> list[dict]:
    """Every transaction line joined with its truth row, in file order."""
    truth = read_csv(summary.truth_dir / "lines.csv")
    out, by_file = [], defaultdict(list)
    for row in truth:
        by_file[row["file"]].append(row)
    for rel, rows in sorted(by_file.items()):
        raw = (summary.landing_dir / rel).read_bytes().split(b"\n")
        assert raw[-1] == b"" and len(raw) - 1 == len(rows), rel  # one truth row per line, "\n" ended
        for row, text in zip(rows, raw[:-1], strict=True):
            out.append({**row, "raw": text, "day": date.fromisoformat(rel[-16:-6])})
    return out


def test_files_and_summary(small: SampleSummary) -> None:
    names = sorted(
        p.relative_to(small.landing_dir).as_posix() for p in small.files if small.landing_dir in p.parents
    )
    assert names == sorted(
        ["vendors/vendors.csv", "employees/employees.csv"]
        + [f"transactions/transactions-{d}.jsonl" for d in DAYS_2025]
        + [f"events/events-{d}.csv" for d in DAYS_2025]
    )
    assert all(p.exists() for p in small.files) and len(small.files) == 2 + 2 * 365 + 5
    assert (small.vendors, small.employees) == (50, 40)
    assert small.transactions == N + expected(0.005, N) == 2010
    summary = json.loads((small.truth_dir / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["size"] == "small"
    assert summary["defects"] == {d: 10 for d in DEFECT_FIELDS}
    assert summary["missing_category"] == {"null": 30, "absent": 30}


def test_determinism(tmp_path: Path) -> None:
    a = generate(tmp_path / "a" / "landing", tmp_path / "a" / "truth", size=500, seed=3)
    b = generate(tmp_path / "b" / "landing", tmp_path / "b" / "truth", size=500, seed=3)
    generate(tmp_path / "c" / "landing", tmp_path / "c" / "truth", size=500, seed=4)
    rel = [p.relative_to(tmp_path / "a") for p in a.files]
    assert rel == [p.relative_to(tmp_path / "b") for p in b.files]
    assert all((tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes() for r in rel)
    tx = Path("landing/transactions/transactions-2025-06-11.jsonl")
    assert (tmp_path / "a" / tx).read_bytes() != (tmp_path / "c" / tx).read_bytes()


def test_overwrites_only_its_own_files(tmp_path: Path) -> None:
    stray = tmp_path / "landing" / "transactions" / "manual-upload.jsonl"
    stray.parent.mkdir(parents=True)
    stray.write_text("keep me\n")
    generate(tmp_path / "landing", tmp_path / "truth", size=300)
    assert stray.read_text() == "keep me\n"


def test_defect_counts_low_profile(lines: list[dict]) -> None:
    counts = Counter(row["defect"] for row in lines)
    rates = DefectRates.low()
    assert {d: counts[d] for d in DEFECT_FIELDS} == {
        d: expected(getattr(rates, f), N) for d, f in DEFECT_FIELDS.items()
    }
    assert counts[""] == N - 6 * 10  # originals of duplicated ids are clean lines
    assert len(lines) == 2010


def test_defect_counts_high_profile(tmp_path: Path) -> None:
    generate(tmp_path / "landing", tmp_path / "truth", size=N, defects=DefectRates.high())
    counts = Counter(row["defect"] for row in read_csv(tmp_path / "truth" / "lines.csv"))
    assert counts == {**{d: 80 for d in DEFECT_FIELDS}, "": N - 6 * 80}
    tx = read_csv(tmp_path / "truth" / "transactions.csv")
    assert sum(row["category_in_data"] == "" for row in tx) == 100  # missing_category 0.05


def test_lines_parse_or_fail_as_labelled(lines: list[dict], small: SampleSummary) -> None:
    vendors = {r["vendor_id"] for r in read_csv(small.landing_dir / "vendors" / "vendors.csv")}
    missing = Counter()
    for row in lines:
        if row["defect"] == "parse_error":
            with pytest.raises(json.JSONDecodeError):
                json.loads(row["raw"])
            continue
        rec = json.loads(row["raw"])
        assert list(rec) in (KEYS, KEYS[:-1]) and rec["id"] == row["transaction_id"]
        assert re.search(rb'"amount":-?\d+\.\d{2},', row["raw"])  # number with 2 decimals
        if "category" not in rec:
            missing["absent"] += 1
        elif rec["category"] is None:
            missing["null"] += 1
        d, day = row["defect"], date.fromisoformat(rec["date"])
        assert (rec["amount"] <= 0) == (d == "non_positive_amount")
        assert (day.year == 2031) == (d == "future_date")
        if d != "duplicate":  # copies may sit in a later day's file; every other line is in its own
            assert (day.month, day.day) == (row["day"].month, row["day"].day)  # future dates keep theirs
        assert (rec["currency"] not in CURRENCIES) == (d == "unknown_currency")
        assert (rec.get("category") not in (*CATEGORIES, None)) == (d == "unknown_category")
        assert (rec["vendor_id"] not in vendors) == (d == "orphan_vendor")
    assert missing == {"absent": 30, "null": 30}


def test_duplicates_are_later_byte_copies(lines: list[dict]) -> None:
    first_seen: dict[str, int] = {}
    for i, row in enumerate(lines):  # lines are in (day, line_number) order
        if row["defect"] == "duplicate":
            orig = lines[first_seen[row["transaction_id"]]]
            assert orig["raw"] == row["raw"] and orig["defect"] == ""
            assert (row["day"] - orig["day"]).days in (0, 1, 2)
        else:
            assert row["transaction_id"] not in first_seen  # each id has one non-duplicate line
            first_seen[row["transaction_id"]] = i
    assert len(first_seen) == N


def test_transactions_truth(small: SampleSummary, lines: list[dict]) -> None:
    tx = read_csv(small.truth_dir / "transactions.csv")
    assert [r["transaction_id"] for r in tx] == [f"T{i:07d}" for i in range(1, N + 1)]
    assert all(r["true_category"] in CATEGORIES for r in tx)
    by_line = {r["transaction_id"]: r["defect"] for r in lines if r["defect"] != ""}
    assert {r["transaction_id"]: r["defect"] for r in tx if r["defect"]} == by_line
    clean = [r for r in tx if r["defect"] in ("", "duplicate") and r["category_in_data"]]
    assert all(r["category_in_data"] == r["true_category"] for r in clean)
    injected = [r for r in lines if b"DROP TABLE" in r["raw"] or b"Ignore previous" in r["raw"]]
    assert injected and any(r["defect"] == "" for r in injected)  # injection text is plain data


def test_reference_tables(small: SampleSummary) -> None:
    vendors = read_csv(small.landing_dir / "vendors" / "vendors.csv")
    assert [v["vendor_id"] for v in vendors] == [f"V{i:04d}" for i in range(1, 51)]
    assert any("," in v["vendor_name"] for v in vendors)
    assert {v["default_category"] for v in vendors} == set(CATEGORIES)
    employees = read_csv(small.landing_dir / "employees" / "employees.csv")
    assert list(employees[0]) == ["employee_id", "employee_name", "department", "cost_centre"]
    assert [e["employee_id"] for e in employees] == [f"E{i:05d}" for i in range(1, 41)]
    assert all(re.fullmatch(r"CC-[A-Z]{3}-\d{2}", e["cost_centre"]) for e in employees)
    anomalies = read_csv(small.truth_dir / "anomalies.csv")
    assert len(anomalies) == 3 and all(a["category"] in CATEGORIES for a in anomalies)
    assert all(date.fromisoformat(a["week_start"]).weekday() == 0 for a in anomalies)


def test_events(small: SampleSummary) -> None:
    cases = {r["case_id"]: r["variant"] for r in read_csv(small.truth_dir / "cases.csv")}
    n_cases = N - 10  # parse errors have no case; duplicates share their original's case
    assert len(cases) == n_cases
    shares = {"rework": 0.12, "rejected": 0.08, "skipped_approval": 0.05, "slow": 0.05}
    want = {v: expected(p, n_cases) for v, p in shares.items()}
    assert Counter(cases.values()) == {**want, "normal": n_cases - sum(want.values())}

    seq: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    file_of: dict[str, set[int]] = defaultdict(set)
    total = 0
    for d in DAYS_2025:
        rows = read_csv(small.landing_dir / "events" / f"events-{d}.csv")
        total += len(rows)
        for r in rows:
            assert r["timestamp"].endswith("Z")
            seq[r["case_id"]].append((datetime.fromisoformat(r["timestamp"]), r["activity"], r["resource"]))
            file_of[r["case_id"]].add(d)
    assert total == small.events and set(seq) == set(cases)
    assert all(len(ms) == 1 for ms in file_of.values())
    for case_id, events in seq.items():
        times, acts = [t for t, _, _ in events], [a for _, a, _ in events]
        assert times == sorted(times)
        assert acts[0] == "Submit" and events[0][2].startswith("E")
        variant = cases[case_id]
        if variant == "rejected":
            assert acts == ["Submit", "Manager Approval", "Reject"]
            continue
        assert acts[-2:] == ["Approve", "Pay"]
        if variant == "skipped_approval":
            assert acts == ["Submit", "Approve", "Pay"]
        elif variant == "rework":
            loops = acts.count("Request Changes")
            assert loops in (1, 2) and acts.count("Resubmit") == loops
            assert acts.count("Manager Approval") == loops + 1
        else:
            assert acts[:2] == ["Submit", "Manager Approval"] and len(acts) in (4, 5)
            gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
            assert (max(gaps) >= 5 * 86_400) == (variant == "slow")
        for _, act, res in events:
            prefix = {"Manager Approval": "M", "Finance Review": "FIN", "Approve": "SYSTEM", "Pay": "SYSTEM"}
            assert res.startswith(prefix.get(act, "E" if act in ("Submit", "Resubmit") else "M"))


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    root = tmp_path_factory.mktemp("medium")
    return generate(root / "landing", root / "truth", size=20_000, seed=1)


def test_integer_size_runs(medium: SampleSummary) -> None:
    assert (medium.transactions, medium.vendors, medium.employees) == (20_000 + 100, 80, 200)
    tx_lines = sum(len(p.read_bytes().splitlines()) for p in medium.files if p.suffix == ".jsonl")
    assert tx_lines == medium.transactions


def test_anomaly_weeks_stand_out(medium: SampleSummary) -> None:
    """Each (category, week) in anomalies.csv has a median EUR amount far above its category's."""
    truth = read_csv(medium.truth_dir / "transactions.csv")
    clean = {r["transaction_id"]: r["true_category"] for r in truth if r["defect"] in ("", "duplicate")}
    eur: dict[tuple[str, date], list[float]] = defaultdict(list)
    for row in joined_lines(medium):
        if row["transaction_id"] in clean:  # duplicates just repeat a value; harmless for medians
            rec = json.loads(row["raw"])
            day = date.fromisoformat(rec["date"])
            week = date.fromordinal(day.toordinal() - day.weekday())
            fx = FX_PER_EUR[CURRENCIES.index(rec["currency"])]
            eur[(clean[rec["id"]], week)].append(rec["amount"] / fx)
    for a in read_csv(medium.truth_dir / "anomalies.csv"):
        typical = median(v for (cat, _), vs in eur.items() if cat == a["category"] for v in vs)
        spike = eur[(a["category"], date.fromisoformat(a["week_start"]))]
        assert len(spike) >= 10 and median(spike) > 4 * typical


def test_bad_size_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "landing", tmp_path / "truth", size="huge")


@pytest.mark.parametrize(
    ("seed", "column", "generated"),
    [("activities", "activity", ACTIVITIES), ("categories", "category", CATEGORIES)],
)
def test_generator_uses_the_reference_seeds(seed: str, column: str, generated: tuple[str, ...]) -> None:
    # The seeds are the authority silver and the GX suites check against; sample data must obey them.
    with (SEEDS / f"{seed}.csv").open(newline="") as f:
        assert sorted(row[column] for row in csv.DictReader(f)) == sorted(generated)
