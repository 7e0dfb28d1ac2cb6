"""The four daily snapshots: the world as it was at the end of each day in the reporting time zone."""

import dagster as dg

from ..partitions import daily_partitions
from ..resources import DatabaseResource
from ._run import run_days, write

GROUP = "daily_snapshots"

# A range of days is one run and one set of statements, whatever its length.
daily = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"sql"},
)


@dg.asset(**daily, description="Open observations per tenant and day, by severity as of the day's end.")
def severity_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().write_severity_snapshot(start, end))


@dg.asset(**daily, description="Compliance requirements per tenant and day, by status as of the day's end.")
def compliance_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().write_compliance_snapshot(start, end))


@dg.asset(**daily, deps=[severity_snapshot, compliance_snapshot], description="Severity, compliance and health scores.")
def health_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().write_health_snapshot(start, end))


@dg.asset(
    **daily,
    deps=[severity_snapshot, compliance_snapshot, health_snapshot],
    description="The dashboard's metrics JSON, captured_at the end of the day it describes.",
)
def dashboard_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().write_dashboard_snapshot(start, end))
