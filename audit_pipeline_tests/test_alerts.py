"""Failure alerts through the real sensor, to local receivers that check each chat tool's shape as the
service does, and the webhook URL kept out of every log line, error and repr."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from audit_pipeline import alerts
from audit_pipeline.definitions import defs
from audit_pipeline.resources import DatabaseResource
from audit_pipeline.sensors import run_failure_alert
from audit_pipeline.settings import SettingsError, alert_format_for, load_settings

from .test_cli import run_cli

SECRET = "SECRET-T0KEN-4f9a"  # the credential part of every webhook URL in these tests
UI = "http://dagster.example.com:3000"


# --- what the services require (as documented; each rejects a message without it) -------------------


def slack_problems(body: dict) -> list[str]:
    """Slack incoming webhooks: `text` or `blocks`; blocks within Block Kit's limits."""
    problems = [] if body.get("text") or body.get("blocks") else ["no text and no blocks"]
    for block in body.get("blocks", []):
        if block.get("type") not in ("header", "section", "context", "divider", "actions"):
            problems.append(f"unknown block {block.get('type')}")
        if block.get("type") == "header" and len(block["text"]["text"]) > 150:
            problems.append("header longer than 150")
        if len(block.get("fields", [])) > 10 or any(len(f["text"]) > 2000 for f in block.get("fields", [])):
            problems.append("too many or too long fields")
        if "text" in block and block["text"].get("type") not in ("plain_text", "mrkdwn"):
            problems.append("text object without a type")
    return problems


def teams_problems(body: dict) -> list[str]:
    """Teams workflows: a message whose attachments are Adaptive Cards."""
    if body.get("type") != "message" or not body.get("attachments"):
        return ["not a message with attachments"]
    problems = []
    for attachment in body["attachments"]:
        content = attachment.get("content") or {}
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            problems.append(f"attachment of type {attachment.get('contentType')}")
        if content.get("type") != "AdaptiveCard" or not content.get("version") or not content.get("body"):
            problems.append("content is not an AdaptiveCard with a version and a body")
    return problems


def google_chat_problems(body: dict) -> list[str]:
    """Google Chat webhooks: `text` or `cardsV2`, each card with an id and sections of widgets."""
    problems = [] if body.get("text") or body.get("cardsV2") else ["no text and no cardsV2"]
    for card in body.get("cardsV2", []):
        if not card.get("cardId") or not all(s.get("widgets") for s in card.get("card", {}).get("sections", [None])):
            problems.append("a card without cardId or with an empty section")
    return problems


VALIDATORS = {"/slack": slack_problems, "/teams": teams_problems, "/chat": google_chat_problems, "/json": lambda b: []}


class Receiver(BaseHTTPRequestHandler):
    """Answers like the services: 2xx for a valid message, 400 and the reasons otherwise; /reject
    answers 404 quoting the path it was asked for (as some servers do), /broken 500."""

    received: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        route = "/" + self.path.strip("/").split("/")[0]
        Receiver.received.append((route, self.headers["Content-Type"], body))
        if route == "/reject":
            return self.answer(404, f"no webhook at {self.path}")
        if route == "/broken":
            return self.answer(500, "internal error")
        problems = VALIDATORS[route](body)
        self.answer(400 if problems else 200, "; ".join(problems) or "ok")

    def answer(self, status: int, text: str):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """One failed run of audit_history (its database has no source tables), kept in an instance."""
    empty = f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'no-tables.sqlite'}"
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("audit_history").execute_in_process(
            instance=instance, resources={"database": DatabaseResource(url=empty)}, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-03"},
        )
        assert not result.success
        yield instance, result.run_id


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def evaluate_sensor(failed_run) -> list[str]:
    """Run the failure sensor on the failed run, as the daemon would; the lines it logged."""
    instance, run_id = failed_run
    failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=instance.get_run_by_id(run_id),
    ).for_run_failure()
    lines = Lines()
    context.log.addHandler(lines)  # the sensor's own log, which the daemon stores with the tick
    run_failure_alert(context)  # raises nothing, whatever the receiver does
    return lines.lines


@pytest.mark.parametrize("alert_format, route", [("json", "/json"), ("slack", "/slack"), ("teams", "/teams"),
                                                 ("google-chat", "/chat")])
def test_each_format_is_accepted_by_a_receiver_that_checks_it_as_the_service_does(
    failed_run, receiver, monkeypatch, alert_format, route
):
    monkeypatch.setenv("AUDIT_PIPELINE_ALERT_WEBHOOK", f"{receiver}{route}/{SECRET}")
    monkeypatch.setenv("AUDIT_PIPELINE_ALERT_FORMAT", alert_format)
    monkeypatch.setenv("AUDIT_PIPELINE_UI_URL", UI + "/")
    lines = evaluate_sensor(failed_run)
    [(_, content_type, body)] = Receiver.received
    assert content_type == "application/json"
    assert VALIDATORS[route](body) == []
    assert not any("did not reach" in line for line in lines), lines
    # What a person needs, whatever the shape: the run, its days, the root error and the link.
    _, run_id = failed_run
    text = json.dumps(body)
    for expected in (run_id, "audit_history", "2024-06-01..2024-06-03", "no such table", f"{UI}/runs/{run_id}"):
        assert expected in text, (expected, alert_format)
    if alert_format == "json":  # the shape scripts already read, plus the link and the text
        assert body["run_id"] == run_id and body["days"] == "2024-06-01..2024-06-03"
        assert "severity_snapshot" in body["assets"]
        assert any("no such table" in step["error"] for step in body["failed_steps"])
        assert body["run_url"] == f"{UI}/runs/{run_id}"


@pytest.mark.parametrize("route", ["/reject", "/broken", "timeout", "refused"])
def test_a_receiver_that_fails_or_never_answers_is_a_logged_error_without_the_url(
    failed_run, receiver, monkeypatch, capfd, caplog, route
):
    monkeypatch.setattr(alerts, "TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if route == "timeout":
            silent.listen()  # accepts the connection in the kernel, never answers
            url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook/{SECRET}"
        elif route == "refused":
            url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook/{SECRET}"  # bound, not listening
        else:
            url = f"{receiver}{route}/{SECRET}"
        monkeypatch.setenv("AUDIT_PIPELINE_ALERT_WEBHOOK", url)
        lines = evaluate_sensor(failed_run)
    errors = [line for line in lines if "did not reach AUDIT_PIPELINE_ALERT_WEBHOOK" in line]
    expected = {"/reject": "HTTP 404", "/broken": "HTTP 500", "timeout": "no answer within 0.5 s",
                "refused": "cannot connect"}[route]
    assert len(errors) == 1 and expected in errors[0], lines
    everything = "\n".join(lines) + caplog.text + "".join(capfd.readouterr())
    assert SECRET not in everything and url not in everything


def test_a_url_that_slipped_past_the_settings_is_still_never_shown():
    lines = Lines()
    log = logging.getLogger("test_alerts.deliver")
    log.addHandler(lines)
    try:
        assert alerts.deliver(f"hooks.slack.com/services/{SECRET}", {"text": "x"}, log) is False
    finally:
        log.removeHandler(lines)
    assert lines.lines == ["the failure alert did not reach AUDIT_PIPELINE_ALERT_WEBHOOK: ValueError"]


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://hooks.slack.com/services/T0/B0/x", "slack"),
        ("https://contoso.webhook.office.com/webhookb2/x", "teams"),
        ("https://prod-12.westeurope.logic.azure.com:443/workflows/x/triggers/manual/paths/invoke?sig=x", "teams"),
        ("https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/direct/x", "teams"),
        ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=x&token=y", "google-chat"),
        ("https://alerts.example.com/hook", "json"),
        ("https://hooks.slack.com.example.com/x", "json"),  # only the service's own host counts
    ],
)
def test_the_format_is_chosen_from_the_url_and_an_explicit_setting_wins(url, expected):
    assert alert_format_for(url) == expected
    assert load_settings({"AUDIT_PIPELINE_ALERT_WEBHOOK": url}).alert_format == expected
    explicit = {"AUDIT_PIPELINE_ALERT_WEBHOOK": url, "AUDIT_PIPELINE_ALERT_FORMAT": "JSON"}
    assert load_settings(explicit).alert_format == "json"
    assert load_settings({}).alert_format == "json"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"AUDIT_PIPELINE_ALERT_WEBHOOK": f"hooks.slack.com/services/{SECRET}"}, "must start with https:// or http://"),
        ({"AUDIT_PIPELINE_ALERT_WEBHOOK": f"ftp://files.example.com/{SECRET}"}, "must start with https:// or http://"),
        ({"AUDIT_PIPELINE_ALERT_WEBHOOK": f"https:///{SECRET}"}, "has no host name"),
        ({"AUDIT_PIPELINE_ALERT_WEBHOOK": f"https://example.com:http/{SECRET}"}, "is not a URL"),
        ({"AUDIT_PIPELINE_ALERT_WEBHOOK": f"https://example.com/{SECRET} x"}, "is not a URL"),
        ({"AUDIT_PIPELINE_ALERT_FORMAT": "discord"}, "AUDIT_PIPELINE_ALERT_FORMAT='discord' is not one of json, slack"),
        ({"AUDIT_PIPELINE_UI_URL": "dagster.example.com"}, "AUDIT_PIPELINE_UI_URL is not an http(s) URL"),
    ],
)
def test_a_malformed_alert_setting_is_a_one_line_error_that_never_shows_the_url(env, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    text = str(raised.value)
    assert message in text and "\n" not in text
    assert SECRET not in text


def test_a_malformed_webhook_stops_the_cli_at_start_up_with_one_line(tmp_path):
    url = f"hooks.slack.com/services/T0/B0/{SECRET}"
    result = run_cli("backfill", "--start", "2024-06-01", env={"AUDIT_PIPELINE_ALERT_WEBHOOK": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "audit-pipeline: error: AUDIT_PIPELINE_ALERT_WEBHOOK must start with https:// or http:// (its value is not shown)"
    )
    assert SECRET not in result.stdout + result.stderr


def test_the_settings_repr_shows_neither_url_nor_password():
    settings = load_settings({
        "AUDIT_PIPELINE_DATABASE_URL": "postgresql://auditor:S3cr3t-pw@db.example.com/app",
        "AUDIT_PIPELINE_ALERT_WEBHOOK": f"https://hooks.slack.com/services/T0/B0/{SECRET}",
    })
    shown = repr(settings) + str(settings)
    assert "S3cr3t-pw" not in shown and "db.example.com" not in shown
    assert SECRET not in shown and "hooks.slack.com" not in shown
    assert "alert_format='slack'" in shown  # the rest is still there to read


def test_the_message_is_short_and_escaped_for_each_tool():
    run = alerts.FailedRun(
        run_id="r-1", job="audit_history", assets=[f"asset_{i}" for i in range(9)], days="2024-06-01",
        error="Execution of run failed.", failed_steps=[{"step": "log_snapshots", "error": "bad <value> & " + "x" * 900}],
        failed_at="2026-11-26T00:00:00+00:00", run_url=f"{UI}/runs/r-1",
    )
    assert run.text.splitlines() == [
        "audit_history failed for 2024-06-01", "Run r-1", f"Error: {run.root_error}", f"{UI}/runs/r-1"
    ]
    assert len(run.root_error) == alerts.MAX_ERROR_CHARS
    slack = json.dumps(alerts.slack_payload(run))
    assert "bad &lt;value&gt; &amp;" in slack and "<value>" not in slack  # Slack reads < > & as markup
    assert f"<{UI}/runs/r-1|r-1>" in slack and "and 3 more" in slack
    chat = json.dumps(alerts.google_chat_payload(run)["cardsV2"])
    assert "bad &lt;value&gt; &amp;" in chat  # card texts are HTML
    teams = alerts.teams_payload(run)["attachments"][0]["content"]
    assert teams["actions"] == [{"type": "Action.OpenUrl", "title": "Open the run", "url": f"{UI}/runs/r-1"}]
    without_ui = alerts.FailedRun(**{**run.__dict__, "run_url": None})
    assert "actions" not in alerts.teams_payload(without_ui)["attachments"][0]["content"]
    assert len(without_ui.text.splitlines()) == 3
