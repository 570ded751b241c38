"""Alerts: a failed run or a failed blocking check notifies someone, once per failure.

What to say comes from the same place as `assay quality` (quality/report.py: the root cause of each
failed step, the command that unblocks each failed ERROR check); where to send it is
`ASSAY_ALERT_URLS` (apprise URLs: mail, JSON webhooks, Slack, ...). `quality.alerts_sent` remembers
what was sent, so the sensors that call `notify_new` after every run never repeat an alert.
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
    """Send the alerts not sent yet (none without URLs); returns those sent."""
    if not urls:
        return []
    sent = []
    for alert in pending_alerts(conn):
        with conn.transaction():
            # the row is the claim: a second sensor evaluating at the same moment skips it; a
            # failed delivery rolls it back, so the next evaluation tries again
            claimed = conn.execute(
                "insert into quality.alerts_sent (alert_key, title) values (%s, %s)"
                " on conflict do nothing returning alert_key",
                [alert.key, alert.title],
            ).fetchone()
            if claimed:
                send(urls, alert.title, alert.body)
                sent.append(alert)
    return sent
