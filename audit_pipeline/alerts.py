"""Failure alerts: what an operator reads on a phone, in the shape the receiving chat tool expects.

A failed run becomes a `FailedRun` (which run, which days and assets, the root error, a link to the
run in the UI) and is posted to `AUDIT_PIPELINE_ALERT_WEBHOOK` as one of the `ALERT_FORMATS`:

- `json`: our own object (the fields below, plus `text`), for scripts and generic receivers;
- `slack`: a Slack incoming webhook's `text` (the notification) and Block Kit `blocks`;
- `teams`: a Teams workflow's (or incoming webhook's) message with one Adaptive Card attachment;
- `google-chat`: a Google Chat webhook's `text` and a `cardsV2` card.

The webhook URL is a credential (whoever has it can post to the channel): it appears in no log line
and no error message, and a receiver that fails or does not answer gives one logged error, never a
failed sensor tick.

Not dagster-slack nor dagster-msteams (see the README): dagster-slack posts through the Slack API with
a bot token, not to an incoming webhook; dagster-msteams makes a sensor of its own (we keep one sensor
whose monitored runs are ours to choose), needs `requests`, puts only text in its card, and its
client's errors carry the webhook URL.
"""

from __future__ import annotations

import datetime as dt
import html
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass

import dagster as dg

from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .settings import ALERT_WEBHOOK_VAR, Settings

# A receiver that does not answer within this many seconds is given up on: the sensor's tick must end.
TIMEOUT_SECONDS = 10
# Longer error texts are cut: the message is read on a phone, the whole error is in the run's logs.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    job: str
    assets: list[str]
    days: str  # "2024-06-01..2024-06-03", one day, or "" for a run without partitions
    error: str  # Dagster's message for the run's failure
    failed_steps: list[dict]  # [{"step": ..., "error": root cause}]
    failed_at: str  # ISO 8601, UTC
    run_url: str | None  # the run's page in the UI, when AUDIT_PIPELINE_UI_URL is set

    @property
    def title(self) -> str:
        return f"{self.job} failed" + (f" for {self.days}" if self.days else "")

    @property
    def root_error(self) -> str:
        """The first failed step's innermost error, else the run's own failure message."""
        if self.failed_steps:
            step = self.failed_steps[0]
            return _cut(f"{step['step']}: {step['error']}")
        return _cut(self.error.strip().splitlines()[0] if self.error.strip() else "unknown error")

    @property
    def text(self) -> str:
        """The plain message: which run, which days, the root error and the link, in four lines."""
        lines = [self.title, f"Run {self.run_id}", f"Error: {self.root_error}"]
        if self.run_url:
            lines.append(self.run_url)
        return "\n".join(lines)


def failed_run(context: dg.RunFailureSensorContext, ui_url: str | None) -> FailedRun:
    """What an operator needs from a failed run: which run, which assets and days, and the error."""
    run = context.dagster_run
    tags = run.tags
    if RANGE_START_TAG in tags:
        days = f"{tags[RANGE_START_TAG]}..{tags.get(RANGE_END_TAG, tags[RANGE_START_TAG])}"
    else:
        days = tags.get(PARTITION_TAG, "")
    steps = [
        {"step": event.step_key, "error": root_cause(event.event_specific_data.error)}
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    # What the run was to materialize (a whole-job run has no explicit asset selection).
    planned = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=10_000
    ).records
    keys = {r.event_log_entry.dagster_event.asset_key for r in planned} or set(run.asset_selection or [])
    return FailedRun(
        run_id=run.run_id,
        job=run.job_name,
        assets=sorted(key.to_user_string() for key in keys),
        days=days,
        error=context.failure_event.message or "",
        failed_steps=steps,
        failed_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        run_url=f"{ui_url}/runs/{run.run_id}" if ui_url else None,
    )


def root_cause(error) -> str:
    """First line of the innermost cause of a Dagster error: the database's words, not the wrappers'."""
    while error.cause is not None:
        error = error.cause
    lines = (error.message or error.cls_name or "").strip().splitlines()
    return lines[0] if lines else error.cls_name


def report(context: dg.RunFailureSensorContext, settings: Settings) -> None:
    """Log the failed run in the sensor's log and post it to the webhook, if one is set."""
    run = failed_run(context, settings.ui_url)
    context.log.error(f"{run.title}: {json.dumps(json_payload(run))}")
    if settings.alert_webhook:
        deliver(settings.alert_webhook, payload(run, settings.alert_format), context.log)


def deliver(url: str, body: dict, log: logging.Logger) -> bool:
    """POST the alert; a failure is logged (without the URL) and reported as False, never raised."""
    try:
        post(url, body)
        return True
    # Whatever the network or the receiver does, the sensor's tick must end normally.
    except (OSError, http.client.HTTPException, ValueError) as error:
        log.error(f"the failure alert did not reach {ALERT_WEBHOOK_VAR}: {describe(error, url)}")
        return False


def post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        response.read()


def describe(error: BaseException, url: str) -> str:
    """What went wrong, in words that never contain the URL (nor its path, where the secret is)."""
    if isinstance(error, urllib.error.HTTPError):
        # The receiver's own words help (Slack: "invalid_blocks", "no_service"), if it sends them at once.
        try:
            answer = error.read(300).decode("utf-8", "replace").strip().splitlines()
        except (OSError, http.client.HTTPException):
            answer = []
        text = f"the receiver answered HTTP {error.code} {error.reason}" + (f": {answer[0]}" if answer else "")
    elif isinstance(error, TimeoutError) or "timed out" in str(error):
        text = f"no answer within {TIMEOUT_SECONDS} s"
    elif isinstance(error, urllib.error.URLError):
        text = f"cannot connect: {error.reason}"
    else:
        text = type(error).__name__
    # A receiver or a library might still echo the URL or its path: cut them out.
    for secret in {url, urllib.parse.urlsplit(url).path}:
        if len(secret) > 1:
            text = text.replace(secret, "***")
    return text


# --- the formats ---------------------------------------------------------------------------------


def payload(run: FailedRun, alert_format: str) -> dict:
    return FORMATS[alert_format](run)


def json_payload(run: FailedRun) -> dict:
    return {**asdict(run), "text": run.text}


def slack_payload(run: FailedRun) -> dict:
    # `text` is the notification (and what clients without blocks show); the blocks are the message.
    fields = [("Job", run.job), ("Days", run.days or "-"), ("Run", _slack_link(run.run_id, run.run_url))]
    fields.append(("Assets", _slack_escape(_assets(run))))
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": run.title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{_slack_escape(run.root_error)}```"}},
    ]
    return {"text": _slack_escape(run.text), "blocks": blocks}


def teams_payload(run: FailedRun) -> dict:
    # The message shape of Teams workflows ("post to a channel when a webhook request is received")
    # and of the older incoming webhooks: one Adaptive Card as an attachment.
    facts = [("Job", run.job), ("Days", run.days or "-"), ("Run", run.run_id), ("Assets", _assets(run))]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "text": run.title, "weight": "Bolder", "size": "Medium", "color": "Attention",
             "wrap": True},
            {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in facts]},
            {"type": "TextBlock", "text": run.root_error, "wrap": True, "fontType": "Monospace"},
        ],
    }
    if run.run_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the run", "url": run.run_url}]
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


def google_chat_payload(run: FailedRun) -> dict:
    # `text` is the notification (and shows above the card); the card holds the details. Card texts
    # are HTML: escape them.
    widgets = [
        {"decoratedText": {"topLabel": name, "text": html.escape(value, quote=False), "wrapText": True}}
        for name, value in [("Days", run.days or "-"), ("Run", run.run_id), ("Assets", _assets(run))]
    ]
    widgets.append({"textParagraph": {"text": f"<b>Error</b><br>{html.escape(run.root_error, quote=False)}"}})
    if run.run_url:
        widgets.append({"buttonList": {"buttons": [{"text": "Open the run", "onClick": {"openLink": {"url": run.run_url}}}]}})
    card = {"header": {"title": run.title, "subtitle": f"Run {run.run_id}"}, "sections": [{"widgets": widgets}]}
    return {"text": f"{run.title}\n{run.root_error}", "cardsV2": [{"cardId": "run-failure", "card": card}]}


FORMATS = {"json": json_payload, "slack": slack_payload, "teams": teams_payload, "google-chat": google_chat_payload}


def _assets(run: FailedRun, shown: int = 6) -> str:
    if not run.assets:
        return "-"
    more = len(run.assets) - shown
    return ", ".join(run.assets[:shown]) + (f" and {more} more" if more > 0 else "")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn reads <, > and & as markup: escape them as its documentation says."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(label: str, url: str | None) -> str:
    return f"<{url}|{label}>" if url else label
