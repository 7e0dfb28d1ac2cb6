"""Sensors: re-run past days when source data is corrected late; alert when a run fails."""
import dagster as dg

from . import alerts
from .corrections import earliest_affected_day
from .jobs import audit_history_job
from .partitions import RANGE_END_TAG, RANGE_START_TAG
from .resources import DatabaseResource
from .settings import load_settings

LOG_ROWS_PER_TICK = 50_000
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


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitored_jobs=[audit_history_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run of the pipeline and POSTs it as JSON to AUDIT_PIPELINE_ALERT_WEBHOOK when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    # Which runs are covered is this sensor's; what the alert says, in which format, and how it is
    # sent without ever showing the webhook's URL is alerts.py's.
    alerts.report(context, load_settings())
