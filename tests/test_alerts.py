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
