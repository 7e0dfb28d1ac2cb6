import dagster as dg

from . import bookkeeping
from .assets import daily, findings
from .checks import freshness_checks
from .jobs import audit_history_job, freshness_job, rebuild_history_job
from .resources import database_resource_from_env
from .schedules import freshness_schedule, nightly_schedule
from .sensors import late_correction_sensor, run_failure_alert

bookkeeping.apply_defaults()  # in every run worker, which imports this module before it executes

defs = dg.Definitions(
    assets=[daily.daily_tables, findings.current_findings],
    asset_checks=freshness_checks,
    jobs=[audit_history_job, freshness_job, rebuild_history_job],
    schedules=[nightly_schedule, freshness_schedule],
    sensors=[late_correction_sensor, run_failure_alert],
    resources={"database": database_resource_from_env()},
    # Every job, the implicit one of the UI's Materialize and asset backfills included, runs its
    # steps in the run's own process: the work is SQL in the database (a step already runs its
    # independent writes at once), and a process per step would add seconds of imports to each.
    executor=dg.in_process_executor,
)
