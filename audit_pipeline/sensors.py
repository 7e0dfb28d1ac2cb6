"""Sensors: re-run past days when source data is corrected late; alert when a run fails."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import dagster as dg

from . import alerts
from .corrections import PendingCorrection, earliest_affected_day, needs_created_at
from .jobs import audit_history_job
from .log_reader import LATE_COMMIT_SECONDS, LogPosition
from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
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
        "Reads each new audit_log row once (whatever order their transactions commit in), works out "
        "the earliest day they change, and re-materializes the materialized days from there on (one "
        "single run), after any run that may have read the sources before the rows were seen."
    ),
)
def late_correction_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    warehouse = database.warehouse()
    if context.cursor is None:
        # First tick: start from now. Replaying the whole log would re-run all of history.
        position = warehouse.reader.start_log_position()
        context.update_cursor(SensorCursor(position).to_json())
        return dg.SkipReason(f"started: watching audit_log rows after id {position.after}")

    cursor = SensorCursor.from_json(context.cursor)
    batch = warehouse.reader.read_log_rows(cursor.position, LOG_ROWS_PER_TICK)
    for gap in batch.given_up:
        context.log.warning(
            f"audit_log ids {gap.first}..{gap.last} were still missing {LATE_COMMIT_SECONDS} s after they were "
            "first passed: taken as rolled back. A row committed with one of them later is not read (see README)."
        )
    pending = cursor.pending
    if batch.rows:
        settings = load_settings()
        rows = batch.rows
        created = warehouse.reader.created_at({(r.table_name, r.record_id) for r in rows if needs_created_at(r)})
        earliest = earliest_affected_day(rows, settings.tz, settings.start_date, created)
        if earliest is not None:
            seen = PendingCorrection(earliest, time.time(), rows[0].id, max(r.id for r in rows))
            pending = seen.merge(pending)
    read = f"read {len(batch.rows)} new audit_log rows" if batch.rows else "no new audit_log rows"

    if pending is None:
        context.update_cursor(SensorCursor(batch.position).to_json())
        return dg.SkipReason(f"{read}; nothing to re-run")
    busy = runs_that_may_predate(context.instance, pending)
    if busy:
        # Their days are being written from sources read before these rows were seen: re-running
        # now would not help (the days are not materialized yet, or will be overwritten).
        context.update_cursor(SensorCursor(batch.position, pending).to_json())
        return dg.SkipReason(f"{read}; waiting for run(s) {', '.join(busy)} to finish before re-running from {pending.first_day}")

    context.update_cursor(SensorCursor(batch.position).to_json())
    materialized = sorted(context.instance.get_materialized_partitions(FIRST_DAILY_ASSET))
    affected = [key for key in materialized if key >= pending.first_day.isoformat()]
    if not affected:
        return dg.SkipReason(
            f"{read}; audit_log rows {pending.first_id}..{pending.last_id} change no materialized day "
            f"(earliest day they change: {pending.first_day}; materialized through: {materialized[-1] if materialized else 'none'})"
        )
    context.log.info(f"audit_log rows {pending.first_id}..{pending.last_id} change {affected[0]}..{affected[-1]}")
    return dg.RunRequest(
        # Each row is acted on once, so an id range names one request: a later correction of the
        # same days gets its own run.
        run_key=f"late-correction:{pending.first_id}-{pending.last_id}",
        tags={RANGE_START_TAG: affected[0], RANGE_END_TAG: affected[-1], "audit_pipeline/trigger": "late-correction"},
    )


@dataclass(frozen=True)
class SensorCursor:
    """Where the sensor is in audit_log, and the corrections it still has to act on."""

    position: LogPosition
    pending: PendingCorrection | None = None

    def to_json(self) -> str:
        return json.dumps({"log": json.loads(self.position.to_json()), "pending": self.pending and self.pending.to_dict()})

    @classmethod
    def from_json(cls, value: str) -> SensorCursor:
        data = json.loads(value)
        if isinstance(data, int):  # a cursor of the sensor before it remembered gaps: the last id read
            return cls(LogPosition(data))
        return cls(LogPosition.from_json(json.dumps(data["log"])), PendingCorrection.from_dict(data.get("pending")))


def runs_that_may_predate(instance: dg.DagsterInstance, pending: PendingCorrection) -> list[str]:
    """Runs in progress that started before the rows were seen and write days they change: they may
    have read the sources without them. (Queued runs have not read anything yet: they will see them.)"""
    busy = []
    for run in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])):
        tags = run.dagster_run.tags
        last_day = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
        started = run.start_time or run.create_timestamp.timestamp()
        if last_day and last_day >= pending.first_day.isoformat() and started < pending.seen_at:
            busy.append(run.dagster_run.run_id)
    return busy


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
    # Which runs are covered is this sensor's; what the alert says, in which format, and how it is
    # sent without ever showing the webhook's URL is alerts.py's.
    alerts.report(context, load_settings())
