"""Sensors: re-run past days when source data is corrected late; alert when a run fails."""
import datetime as dt
import json
import urllib.request

import dagster as dg

from .corrections import earliest_affected_day
from .jobs import AUDIT_HISTORY_JOB, audit_history_job
from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .resources import DatabaseResource
from .settings import load_settings

LOG_ROWS_PER_TICK = 50_000
WEBHOOK_TIMEOUT_SECONDS = 10
# The daily asset whose materialized partitions tell which days exist (the first one written).
FIRST_DAILY_ASSET = dg.AssetKey("severity_snapshot")


@dg.sensor(
    job=audit_history_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reads audit_log rows newer than its cursor, works out the earliest day they change, and "
        "re-materializes the already materialized days from there on (one single run)."
    ),
)
def late_correction_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    warehouse = database.warehouse()
    if context.cursor is None:
        # First tick: start from now. Replaying the whole log would re-run all of history.
        start_id = warehouse.max_log_id()
        context.update_cursor(str(start_id))
        return dg.SkipReason(f"started: watching audit_log rows after id {start_id}")

    after = int(context.cursor)
    rows = warehouse.log_rows_after(after, LOG_ROWS_PER_TICK)
    if not rows:
        return dg.SkipReason(f"no audit_log rows after id {after}")
    last_id = rows[-1].id
    context.update_cursor(str(last_id))

    settings = load_settings()
    earliest = earliest_affected_day(rows, settings.tz, settings.start_date, warehouse.tenant_created_at())
    materialized = sorted(context.instance.get_materialized_partitions(FIRST_DAILY_ASSET))
    affected = [key for key in materialized if earliest is not None and key >= earliest.isoformat()]
    if not affected:
        return dg.SkipReason(
            f"audit_log rows {after + 1}..{last_id} change no materialized day "
            f"(earliest day they change: {earliest or 'none'}; materialized through: {materialized[-1] if materialized else 'none'})"
        )
    context.log.info(f"audit_log rows {after + 1}..{last_id} change {affected[0]}..{affected[-1]}")
    return dg.RunRequest(
        # One key per window of the cursor: a later correction of the same days gets its own run.
        run_key=f"late-correction:{after + 1}-{last_id}",
        tags={RANGE_START_TAG: affected[0], RANGE_END_TAG: affected[-1], "audit_pipeline/trigger": "late-correction"},
    )


def root_cause(error) -> str:
    """First line of the innermost cause of a Dagster error: the database's words, not the wrappers'."""
    while error.cause is not None:
        error = error.cause
    lines = (error.message or error.cls_name or "").strip().splitlines()
    return lines[0] if lines else error.cls_name


def failure_alert(context: dg.RunFailureSensorContext) -> dict:
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
    assets = sorted(key.to_user_string() for key in keys)
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "assets": assets,
        "days": days,
        "error": context.failure_event.message,
        "failed_steps": steps,
        "failed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }


def post_json(url: str, payload: dict) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
        response.read()


@dg.run_failure_sensor(
    name="run_failure_alert",
    # Every failed run of the instance, whichever way it was launched: the jobs, the implicit asset
    # job of the UI's Materialize and of asset backfills, the freshness job (whose run fails when a
    # day is missing at the deadline), and CLI runs, which belong to no code location.
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run of the pipeline and POSTs it as JSON to AUDIT_PIPELINE_ALERT_WEBHOOK when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    alert = failure_alert(context)
    context.log.error(f"{AUDIT_HISTORY_JOB} run failed: {json.dumps(alert)}")
    webhook = load_settings().alert_webhook
    if webhook:
        try:
            post_json(webhook, alert)
        except OSError as error:  # the alert must not fail silently, nor take the sensor down
            context.log.error(f"could not POST the alert to the webhook: {error}")
