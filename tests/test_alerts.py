"""Alerts go out through real receivers on 127.0.0.1: an HTTP server (json://) and an SMTP server
(aiosmtpd, mailto://), once per failure."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from psycopg.types.json import Jsonb

from assay.quality.alerts import notify_new, send


@pytest.fixture
def receiver():
    """A JSON webhook on 127.0.0.1: (its json:// URL, the bodies it received)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


@pytest.fixture
def smtp():
    """An SMTP server on 127.0.0.1 (aiosmtpd): (its mailto:// URL, the messages it received)."""
    from aiosmtpd.controller import Controller

    messages: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append(envelope.content)
            return "250 OK"

    with socket.socket() as probe:  # a free port: the controller's start-up self-check needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield f"mailto://127.0.0.1:{port}?from=assay@example.com&to=ops@example.com&secure=no", messages
    controller.stop()


def test_a_test_alert_reaches_a_json_webhook_and_an_smtp_server(receiver, smtp):
    (hook, bodies), (mail, messages) = receiver, smtp
    send([hook, mail], "assay: test alert", "hello from the test")
    assert [(b["title"], b["message"]) for b in bodies] == [("assay: test alert", "hello from the test")]
    assert len(messages) == 1
    assert b"assay: test alert" in messages[0] and b"hello from the test" in messages[0]


def test_an_unreachable_receiver_is_an_error_naming_the_scheme():
    with pytest.raises(RuntimeError, match="json://"):
        send(["json://127.0.0.1:9/none"], "t", "b")


def test_a_failed_run_alerts_once_with_its_cause_and_the_command(postgres, receiver):
    hook, bodies = receiver
    with postgres.connect(autocommit=True) as conn:
        conn.execute("delete from quality.alerts_sent")
        conn.execute(
            "insert into quality.run_failures (run_id, job_name, failed_steps, message, errors, tags)"
            " values ('alert-test-run', 'pipeline', '{gold_step}', 'failed', %s, '{}')",
            [Jsonb({"gold_step": "UndefinedColumn: column x does not exist"})],
        )
        try:
            first = notify_new(conn, [hook])
            again = notify_new(conn, [hook])  # the next sensor tick: nothing new
        finally:
            conn.execute("delete from quality.run_failures where run_id = 'alert-test-run'")
            conn.execute("delete from quality.alerts_sent")
    assert [a.key for a in first] == ["run:alert-test-run"] and again == []
    assert len(bodies) == 1
    assert "UndefinedColumn: column x does not exist" in bodies[0]["message"]
    assert "`assay run`" in bodies[0]["message"] and "pipeline" in bodies[0]["title"]


def test_a_layer_older_than_its_fail_window_alerts_once(postgres, receiver, monkeypatch):
    hook, bodies = receiver
    # any gold table built before now is older than a window of 3.6 ms
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_WARN_HOURS", "0.000001")
    monkeypatch.setenv("ASSAY_FRESHNESS_GOLD_FAIL_HOURS", "0.000001")
    with postgres.connect(autocommit=True) as conn:
        conn.execute("delete from quality.alerts_sent")
        conn.execute("create table if not exists gold.alert_probe (x int)")
        conn.execute("analyze gold.alert_probe")  # what dbt's post-hook does after a build
        try:
            first = notify_new(conn, [hook])
            again = notify_new(conn, [hook])
        finally:
            conn.execute("drop table gold.alert_probe")
            conn.execute("delete from quality.alerts_sent")
    assert [a.title for a in first if a.key.startswith("stale:")] == ["assay: gold is stale"]
    assert again == []
    gold = [b for b in bodies if b["title"] == "assay: gold is stale"]
    assert len(gold) == 1 and "gold.alert_probe" in gold[0]["message"]
    assert "ASSAY_FRESHNESS_GOLD_FAIL_HOURS" in gold[0]["message"] and "`assay run`" in gold[0]["message"]


def _score(conn, run_id: str, passed: bool, minutes_ago: int) -> None:
    conn.execute(
        "insert into quality.dq_scores (run_id, table_name, layer, row_count, input_rows, completeness,"
        " uniqueness, validity, timeliness, overall, threshold, passed, measured_at)"
        " values (%s, 'silver.alert_probe', 'silver', 90, 100, 0.9, 1, 1, 1, %s, 0.95, %s,"
        " now() - make_interval(mins => %s))",
        [run_id, 0.97 if passed else 0.9, passed, minutes_ago],
    )


def test_a_dq_score_under_its_threshold_alerts_once_per_incident_and_once_when_it_clears(postgres, receiver):
    hook, bodies = receiver
    probe = "dq:silver.alert_probe"

    def mine(alerts):
        return [(a.key, a.title) for a in alerts if a.family == probe]

    with postgres.connect(autocommit=True) as conn:
        conn.execute("delete from quality.alerts_sent")
        try:
            _score(conn, "dq-1", passed=False, minutes_ago=4)
            first = notify_new(conn, [hook])
            _score(conn, "dq-2", passed=False, minutes_ago=3)  # still failing: the same incident
            still = notify_new(conn, [hook])
            _score(conn, "dq-3", passed=True, minutes_ago=2)
            cleared = notify_new(conn, [hook])
            quiet = notify_new(conn, [hook])
            _score(conn, "dq-4", passed=False, minutes_ago=1)  # a new incident
            again = notify_new(conn, [hook])
        finally:
            conn.execute("delete from quality.dq_scores where table_name = 'silver.alert_probe'")
            conn.execute("delete from quality.alerts_sent")
    title = "assay: DQ score of silver.alert_probe under its threshold"
    assert mine(first) == [(f"{probe}:dq-1", title)]
    assert mine(still) == [] and mine(quiet) == []
    assert mine(cleared) == [
        (f"recovered:{probe}:dq-1", "assay: resolved: DQ score of silver.alert_probe under its threshold")
    ]
    assert mine(again) == [(f"{probe}:dq-4", title)]
    sent = [b for b in bodies if "silver.alert_probe" in b["title"]]
    assert [b["title"] for b in sent] == [title, "assay: resolved: " + title.removeprefix("assay: "), title]
    assert (
        "overall 0.9000 < threshold 0.9500" in sent[0]["message"] and "`assay quality`" in sent[0]["message"]
    )


def test_a_failed_run_sends_one_recovery_notice_once_a_later_run_gets_further(postgres, receiver):
    hook, bodies = receiver
    with postgres.connect(autocommit=True) as conn:
        conn.execute("delete from quality.alerts_sent")
        # failed after every check recorded so far (by earlier tests too): a check a moment later
        # is the later run that got further
        conn.execute(
            "insert into quality.run_failures"
            " (run_id, job_name, failed_steps, message, errors, tags, failed_at)"
            " values ('recover-run', 'pipeline', '{s}', 'failed', '{}', '{}', clock_timestamp())"
        )
        try:
            first = notify_new(conn, [hook])
            conn.execute(  # a later run got as far as a check
                "insert into quality.check_results (run_id, asset_key, check_name, passed, severity)"
                " values ('recover-next', 'silver/x', 'recover_probe', true, 'ERROR')"
            )
            cleared = notify_new(conn, [hook])
            quiet = notify_new(conn, [hook])
        finally:
            conn.execute("delete from quality.run_failures where run_id = 'recover-run'")
            conn.execute("delete from quality.check_results where check_name = 'recover_probe'")
            conn.execute("delete from quality.alerts_sent")
    assert [a.key for a in first if a.family == "run:pipeline"] == ["run:recover-run"]
    assert [a.title for a in cleared if a.family == "run:pipeline"] == [
        "assay: resolved: run recover- of pipeline failed"
    ]
    assert [a for a in quiet if a.family == "run:pipeline"] == []
    assert [b["title"] for b in bodies if "recover-" in b["title"]] == [
        "assay: run recover- of pipeline failed",
        "assay: resolved: run recover- of pipeline failed",
    ]
