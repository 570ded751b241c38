"""Alerts: a failed run, a failed blocking check, a DQ score under its threshold or a stale layer
notifies someone, once per incident, and once more when it clears (a recovery notice).

What to say comes from the same place as `assay quality` (quality/report.py: the root cause of each
failed step, the command that unblocks each failed ERROR check); where to send it is
`ASSAY_ALERT_URLS` (apprise URLs: mail, JSON webhooks, Slack, ...). `quality.alerts_sent` remembers
what was sent, so the sensors that call `notify_new` after every run never repeat an alert: an
incident of a family (`run:<job>`, `check:<asset>:<check>`, `dq:<table>`, `stale:<layer>`) stays open
until that family no longer fails, then one recovery notice closes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import apprise
import psycopg

from assay.core.settings import FRESHNESS_LAYERS, get_settings
from assay.quality.report import build_report

# Tables of each layer last built (ANALYZEd: dbt's post-hook) longer ago than the layer's fail window.
_STALE = """
select schemaname, relname, last_analyze
from pg_stat_user_tables
where schemaname = %(layer)s and last_analyze < now() - %(fail)s
order by relname
"""


@dataclass(frozen=True)
class Alert:
    key: str
    title: str
    body: str
    family: str = ""
    """What is failing (`run:<job>`, `check:<asset>:<check>`, `stale:<layer>`, `dq:<table>`): one
    alert per incident of a family, and a recovery notice when it no longer fails."""


def pending_alerts(conn: psycopg.Connection) -> list[Alert]:
    """The latest failed run and every failed blocking check, as alerts (sent or not)."""
    report = build_report(conn, reasons=0)
    alerts = []
    if run := report.failed_run:
        causes = "\n".join(f"{step}: {cause}" for step, cause in run["errors"].items()) or "no step failed"
        alerts.append(
            Alert(
                f"run:{run['run_id']}",
                f"assay: run {run['run_id'][:8]} of {run['job_name']} failed",
                f"{causes}\n\nUnblock: fix the cause above, then `assay run` (`assay ui` shows the run).",
                f"run:{run['job_name']}",
            )
        )
    for check in report.failing_checks:
        if check["severity"] != "ERROR":
            continue
        name = f"{check['asset_key']}:{check['check_name']}"
        alerts.append(
            Alert(
                f"check:{name}:{check['run_id']}",
                f"assay: blocking check {name} failed",
                f"{check['description'] or name}\n\nUnblock: {check['unblock']}",
                f"check:{name}",
            )
        )
    for score in report.scores:
        if score["passed"]:
            continue
        table = score["table_name"]
        alerts.append(
            Alert(
                f"dq:{table}:{score['run_id']}",
                f"assay: DQ score of {table} under its threshold",
                f"{table}: overall {score['overall']:.4f} < threshold {score['threshold']:.4f}"
                f" (run {score['run_id']}, {score['row_count']:,} of {score['input_rows']:,} rows)."
                "\n\nSee why: `assay quality` (reject reasons and example rows).",
                f"dq:{table}",
            )
        )
    return alerts + stale_alerts(conn)


def stale_alerts(conn: psycopg.Connection) -> list[Alert]:
    """One alert per layer with tables older than the layer's fail window (ASSAY_FRESHNESS_*); keyed
    by the oldest build time, so a layer that is rebuilt and goes stale again alerts again."""
    freshness = get_settings().freshness
    alerts = []
    for layer in FRESHNESS_LAYERS:
        _, fail = freshness.window(layer)
        rows = conn.execute(_STALE, {"layer": layer, "fail": fail}).fetchall()
        if rows:
            oldest = min(at for _, _, at in rows)
            tables = ", ".join(f"{schema}.{name}" for schema, name, _ in rows)
            alerts.append(
                Alert(
                    f"stale:{layer}:{oldest.isoformat()}",
                    f"assay: {layer} is stale",
                    f"{tables} older than the {layer} fail window of {fail.total_seconds() / 3600:g} h"
                    f" (ASSAY_FRESHNESS_{layer.upper()}_FAIL_HOURS); oldest build {oldest.isoformat()}."
                    "\n\nUnblock: `assay run` (or see why the schedule did not run in `assay ui`).",
                    f"stale:{layer}",
                )
            )
    return alerts


def send(urls: list[str], title: str, body: str) -> None:
    """Send one notification to every URL; raise naming the URLs when none accepted it."""
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise ValueError(f"ASSAY_ALERT_URLS: {url.split('://')[0]}:// is not a valid apprise URL")
    if not notifier.notify(title=title, body=body):
        schemes = ", ".join(sorted({url.split("://")[0] + "://" for url in urls}))
        raise RuntimeError(
            f"the alert could not be delivered to {schemes}: check the URL and that its receiver is"
            " reachable, then `assay alerts test`"
        )


def notify_new(conn: psycopg.Connection, urls: list[str]) -> list[Alert]:
    """Send the alerts not sent yet, one per incident, and a recovery notice for each incident that
    has cleared (none without URLs); returns those sent."""
    if not urls:
        return []
    sent = []
    pending = pending_alerts(conn)
    for alert in pending:
        with conn.transaction():
            # the row is the claim: a second sensor evaluating at the same moment skips it, and so
            # does an incident of the same family still open (alerts_sent_open); a failed delivery
            # rolls it back, so the next evaluation tries again
            claimed = conn.execute(
                "insert into quality.alerts_sent (alert_key, title, family) values (%s, %s, %s)"
                " on conflict do nothing returning alert_key",
                [alert.key, alert.title, alert.family or alert.key],
            ).fetchone()
            if claimed:
                send(urls, alert.title, alert.body)
                sent.append(alert)
    return sent + _notify_recovered(conn, urls, {a.family or a.key for a in pending})


def _notify_recovered(conn: psycopg.Connection, urls: list[str], failing: set[str]) -> list[Alert]:
    """One notice per open incident whose family no longer fails; its row is closed."""
    recovered = []
    open_incidents = conn.execute(
        "select alert_key, family, title, sent_at from quality.alerts_sent"
        " where recovered_at is null and family is not null order by sent_at"
    ).fetchall()
    for key, family, title, sent_at in open_incidents:
        if family in failing:
            continue
        with conn.transaction():
            closed = conn.execute(
                "update quality.alerts_sent set recovered_at = now()"
                " where alert_key = %s and recovered_at is null returning recovered_at",
                [key],
            ).fetchone()
            if closed:
                notice = Alert(
                    f"recovered:{key}",
                    "assay: resolved: " + title.removeprefix("assay: "),
                    f"{title.removeprefix('assay: ')} no longer holds (alerted {sent_at:%Y-%m-%d %H:%M %Z},"
                    f" resolved {closed[0]:%Y-%m-%d %H:%M %Z}).",
                    family,
                )
                send(urls, notice.title, notice.body)
                recovered.append(notice)
    return recovered
