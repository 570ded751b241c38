"""What `assay quality` shows: latest DQ scores, failing checks, top reject reasons with examples.

Everything comes from Postgres (`quality.dq_scores`, `quality.check_results`, `silver.rejects`), so
it works the same for the CLI, the read API and tests, whichever Dagster instance ran the pipeline.
"""

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from assay.quality.rules import DIMENSIONS


@dataclass
class QualityReport:
    latest_run: str | None = None
    scores: list[dict] = field(default_factory=list)
    failing_checks: list[dict] = field(default_factory=list)
    reject_reasons: list[dict] = field(default_factory=list)
    failed_run: dict | None = None  # the latest run, when it failed (quality.run_failures)
    quarantined: list[dict] = field(default_factory=list)  # open quarantines (bronze.quarantine)

    @property
    def empty(self) -> bool:
        return not (
            self.scores or self.failing_checks or self.reject_reasons or self.failed_run or self.quarantined
        )


def build_report(conn: psycopg.Connection, reasons: int = 10, examples: int = 2) -> QualityReport:
    report = QualityReport()
    if _exists(conn, "quality.check_results"):
        row = conn.execute(
            "select run_id from quality.check_results order by evaluated_at desc, result_id desc limit 1"
        ).fetchone()
        report.latest_run = row[0] if row else None
        report.failing_checks = _dicts(
            conn.execute(
                """
                select asset_key, check_name, severity, description, run_id, evaluated_at
                from (
                    select distinct on (asset_key, check_name) *
                    from assay.quality.check_results
                    order by asset_key, check_name, evaluated_at desc, result_id desc
                ) latest
                where not passed
                order by severity = 'WARN', asset_key, check_name
                """
            )
        )
        for check in report.failing_checks:
            check["unblock"] = _unblock(conn, check) if check["severity"] == "ERROR" else None
    if _exists(conn, "quality.run_failures"):
        report.failed_run = _latest_failure(conn)
    if _exists(conn, "quality.dq_scores"):
        report.scores = _dicts(
            conn.execute(
                f"""
                select table_name, layer, {", ".join(DIMENSIONS)}, overall, threshold, passed, row_count,
                       input_rows, window_start, window_end, table_rows, run_id, measured_at
                from (
                    select distinct on (table_name) * from quality.dq_scores
                    order by table_name, measured_at desc
                ) latest
                order by case layer when 'silver' then 1 when 'gold' then 2 else 3 end, table_name
                """
            )
        )
    if _exists(conn, "silver.rejects"):
        report.reject_reasons = _dicts(
            conn.execute(
                "select source, reason, count(*) as n from silver.rejects group by 1, 2"
                " order by 3 desc, 1, 2 limit %s",
                [reasons],
            )
        )
        for reason in report.reject_reasons:
            reason["examples"] = _dicts(
                conn.execute(
                    "select source_file, line_number, left(payload, 140) as payload from silver.rejects"
                    " where source = %s and reason = %s order by source_file, line_number limit %s",
                    [reason["source"], reason["reason"], examples],
                )
            )
    if _exists(conn, "bronze.quarantine"):
        report.quarantined = _dicts(
            conn.execute(
                "select quarantine_id, source, bronze_id, reason, step, quarantined_at from bronze.quarantine"
                " where released_at is null order by quarantine_id"
            )
        )
    return report


def _latest_failure(conn: psycopg.Connection) -> dict | None:
    """The latest failed run, unless a check ran after it (a later run got further)."""
    later_check = (
        "exists (select from quality.check_results c where c.evaluated_at > f.failed_at)"
        if _exists(conn, "quality.check_results")
        else "false"
    )
    rows = _dicts(
        conn.execute(
            "select run_id, job_name, failed_at, errors from quality.run_failures f"
            f" where not {later_check} order by failed_at desc limit 1"
        )
    )
    return rows[0] if rows else None


def _unblock(conn: psycopg.Connection, check: dict) -> str:
    """The commands that clear a failed blocking check."""
    layer, _, table = check["asset_key"].partition("/")
    rerun = "then `assay run`"
    if check["check_name"] == "reject_rate_quarantined":
        return (
            "rows that made a step fail were quarantined (`assay bronze quarantine` lists them with the "
            "error); fix the cause, then `assay bronze quarantine release ID` for each, or correct or "
            f"retract their files (`assay bronze retract <file>`), {rerun}"
        )
    if check["check_name"].startswith("reject_rate_"):
        reason_class = check["check_name"].removeprefix("reject_rate_")
        files = (
            [
                f"{name} ({n:,})"
                for name, n in conn.execute(
                    "select source_file, count(*) from silver.rejects where source = %s and reason_class = %s"
                    " group by 1 order by 2 desc, 1 limit 3",
                    [table, reason_class],
                )
            ]
            if _exists(conn, "silver.rejects")
            else []
        )
        where = f"most of these rows come from {', '.join(files)}; " if files else ""
        return (
            f"{where}land a corrected file under the same name (it supersedes the old one) or "
            f"`assay bronze retract <file>`, {rerun}; or allow more of this class: "
            f"ASSAY_DQ_REJECT_RATE_LIMITS='{{\"{reason_class}\": 0.05}}'"
        )
    if check["check_name"] == "dq_score" and layer == "silver":
        return (
            f"its rejects are in silver.rejects (source {table}): correct or retract the worst files "
            f"(`assay bronze files --source {table}`, `assay bronze retract <file>`), {rerun}; "
            "or lower ASSAY_DQ_SILVER_MIN_SCORE"
        )
    if check["check_name"] == "dq_score":
        return (
            "a gold rule (a dbt test in dbt_project/models/gold) fails: the check's metadata in `assay ui` "
            f"shows the failing rows; correct or retract the files they come from, {rerun}; "
            "or lower ASSAY_DQ_GOLD_MIN_SCORE"
        )
    return (
        f"the check's metadata in `assay ui` shows the failing rows; correct or retract their files, {rerun}"
    )


def render(report: QualityReport) -> list[str]:
    """The report as terminal lines."""
    if report.empty:
        return ["No quality results yet: `assay run` builds the tables and runs the checks."]
    lines = []
    if report.failed_run:
        run = report.failed_run
        lines.append(
            f"The latest run failed ({run['job_name']}, {_when(run['failed_at'])}, run {run['run_id']}):"
        )
        for step, cause in run["errors"].items():
            lines.append(f"  {step}: " + cause.replace("\n", "\n    "))
        lines += ["  `assay ui` shows the run; fix the cause above, then `assay run` again.", ""]
    lines.append("Data-quality scores (latest per table, history in quality.dq_scores):")
    header = f"  {'table':<24}{'overall':>9}" + "".join(f"{d:>14}" for d in DIMENSIONS)
    lines.append(header + f"{'threshold':>11}  status")
    for s in report.scores:
        earlier = "" if s["run_id"] == report.latest_run else "  (earlier run: not rebuilt in the latest)"
        # a windowed score vouches for its days only (README: What a gate vouches for)
        window = f"  days {s['window_start']}..{s['window_end']}" if s["window_start"] else ""
        lines.append(
            f"  {s['table_name']:<24}{_pct(s['overall']):>9}"
            + "".join(f"{_pct(s[d]):>14}" for d in DIMENSIONS)
            + f"{_pct(s['threshold']):>11}  {'ok' if s['passed'] else 'FAIL'}{window}{earlier}"
        )
    if not report.scores:
        lines.append("  (none yet)")
    lines.append("")
    if report.failing_checks:
        lines.append("Failing checks (latest result of each check):")
        blocking = sorted({c["asset_key"] for c in report.failing_checks if c["severity"] == "ERROR"})
        if blocking:
            lines.append(
                "  ERROR checks block: nothing built from "
                + ", ".join(k.replace("/", ".") for k in blocking)
                + " runs until they pass (gold waits for silver, platinum for gold)."
            )
        for c in report.failing_checks:
            name = f"{c['asset_key']}:{c['check_name']}"
            lines.append(f"  {c['severity']:<6}{name}  ({_when(c['evaluated_at'])})")
            if c["description"]:
                lines.append(f"        {c['description']}")
            if c.get("unblock"):
                lines.append(f"        unblock: {c['unblock']}")
    else:
        lines.append("Failing checks: none (every check passed at its latest run).")
    lines.append("")
    if report.reject_reasons:
        lines.append("Top reject reasons (silver.rejects):")
        for r in report.reject_reasons:
            lines.append(f"  {r['source']:<13}{r['reason']:<30}{r['n']:>8,}")
            for e in r["examples"]:
                lines.append(f"      {e['source_file']}:{e['line_number']}  {e['payload']}")
    else:
        lines.append("Rejected rows: none.")
    if report.quarantined:
        lines += ["", "Quarantined rows (a step failed on them; the run went on without them):"]
        for q in report.quarantined:
            lines.append(
                f"  {q['quarantine_id']:>6}  {q['source']} bronze row {q['bronze_id']}, in {q['step']}"
                f" ({_when(q['quarantined_at'])})"
            )
            lines.append(f"          {q['reason']}")
            lines.append(
                f"          release: `assay bronze quarantine release {q['quarantine_id']}`, then `assay run`"
            )
    return lines


def render_markdown(report: QualityReport, title: str) -> str:
    """The report as markdown: the daily report's file and its metadata in the Dagster UI."""
    lines = [f"# {title}", ""]
    if report.empty:
        return "\n".join(
            [*lines, "No quality results yet: `assay run` builds the tables and runs the checks."]
        )
    failing = [s["table_name"] for s in report.scores if not s["passed"]]
    lines += [
        f"Tables below their DQ threshold: **{len(failing)}** of {len(report.scores)}"
        + (f" ({', '.join(failing)})" if failing else ""),
        f"Failing checks: **{len(report.failing_checks)}**; latest check run: `{report.latest_run}`",
        "",
        "## DQ scores (latest per table)",
        "",
        "| table | overall | " + " | ".join(DIMENSIONS) + " | threshold | status |",
        "| --- | ---: | " + " | ".join("---:" for _ in DIMENSIONS) + " | ---: | --- |",
    ]
    for s in report.scores:
        dims = " | ".join(_pct(s[d]) for d in DIMENSIONS)
        status = "ok" if s["passed"] else "**FAIL**"
        lines.append(
            f"| {s['table_name']} | {_pct(s['overall'])} | {dims} | {_pct(s['threshold'])} | {status} |"
        )
    lines += ["", "## Failing checks (latest result of each)", ""]
    for c in report.failing_checks:
        about = f": {' '.join(c['description'].split())}" if c["description"] else ""
        lines.append(
            f"- {c['severity']} `{c['asset_key']}:{c['check_name']}` ({_when(c['evaluated_at'])}){about}"
        )
    if not report.failing_checks:
        lines.append("None: every check passed at its latest run.")
    lines += ["", "## Top reject reasons (silver.rejects)", ""]
    if report.reject_reasons:
        lines += ["| source | reason | rows | example |", "| --- | --- | ---: | --- |"]
        for r in report.reject_reasons:
            e = r["examples"][0] if r["examples"] else None
            example = f"`{e['source_file']}:{e['line_number']}`" if e else ""
            lines.append(f"| {r['source']} | {r['reason']} | {r['n']:,} | {example} |")
    else:
        lines.append("None.")
    if report.quarantined:
        lines += ["", "## Quarantined rows (open)", "", "| id | source | bronze_id | step | error |"]
        lines.append("| ---: | --- | ---: | --- | --- |")
        for q in report.quarantined:
            error = " ".join(q["reason"].split()).replace("|", "\\|")
            lines.append(
                f"| {q['quarantine_id']} | {q['source']} | {q['bronze_id']} | {q['step']} | {error} |"
            )
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s)", [name]).fetchone()[0] is not None


def _dicts(cur: psycopg.Cursor) -> list[dict]:
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
