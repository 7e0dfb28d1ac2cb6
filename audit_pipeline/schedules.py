"""The nightly run: at 01:00 in the reporting time zone, the day that just ended."""

import dagster as dg

from .checks import FRESHNESS_DEADLINE_HOUR
from .jobs import audit_history_job, freshness_job
from .settings import load_settings

# The time zone comes from the partitions definition: at 01:00 IST the last partition is the day
# that ended an hour ago, and the run materializes it and everything downstream.
nightly_schedule = dg.build_schedule_from_partitioned_job(
    audit_history_job,
    hour_of_day=1,
    name="nightly_audit_history",
    description="At 01:00 in the reporting time zone: the day that just ended, and everything downstream.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

freshness_schedule = dg.ScheduleDefinition(
    name="freshness_at_2am",
    job=freshness_job,
    cron_schedule=f"0 {FRESHNESS_DEADLINE_HOUR} * * *",
    execution_timezone=load_settings().timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 02:00 in the reporting time zone: fail the freshness checks if yesterday is missing.",
)
