"""The four daily snapshots: the world as it was at the end of each day in the reporting time zone."""

import dagster as dg

from .. import source_checks
from ..catalog import table_metadata
from ..partitions import daily_partitions
from ..resources import DATABASE_POOL, DatabaseResource
from ._run import run_days, table_spec, write, write_at_once
from .history import observation_history, requirement_history

GROUP = "daily_snapshots"

# A range of days is one run and one set of statements, whatever its length; the step works on the
# application database, so it takes a slot of its pool.
daily = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=DATABASE_POOL,
)

severity_snapshot = table_spec(
    "severity_snapshot", GROUP, "Open observations per tenant and day, by severity as of the day's end.",
    daily_partitions,
    deps=(observation_history,),
)
compliance_snapshot = table_spec(
    "compliance_snapshot", GROUP, "Compliance requirements per tenant and day, by status as of the day's end.",
    daily_partitions,
    deps=(requirement_history,),
)


@dg.multi_asset(
    specs=[severity_snapshot, compliance_snapshot],
    check_specs=source_checks.check_specs(severity_snapshot, compliance_snapshot),
    can_subset=True,
    **daily,
    description="Both snapshots counted from the record history, written at the same time.",
)
def log_snapshots(context: dg.AssetExecutionContext, database: DatabaseResource):
    # The two statements are independent and each keeps one database core busy: run together on
    # two connections, a run takes about as long as the slower one (compliance) instead of their sum.
    w = database.warehouse()
    steps = {}
    if context.selected_asset_keys:  # not a run of its source checks alone (no days then)
        start, end = run_days(context)
        writes = {
            compliance_snapshot.key: lambda: w.writer.compliance_snapshot(start, end),
            severity_snapshot.key: lambda: w.writer.severity_snapshot(start, end),
        }
        steps = {key: step for key, step in writes.items() if key in context.selected_asset_keys}
    steps.update(source_checks.selected_checks(context, w, severity_snapshot, compliance_snapshot))
    yield from write_at_once(context, w, steps)


@dg.asset(
    **daily,
    group_name=GROUP,
    kinds={"sql"},
    deps=[severity_snapshot, compliance_snapshot],
    description="Severity, compliance and health scores.",
    metadata=table_metadata("health_snapshot", daily_partitions),
)
def health_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().writer.health_snapshot(start, end))


@dg.asset(
    **daily,
    group_name=GROUP,
    kinds={"sql"},
    deps=[severity_snapshot, compliance_snapshot, health_snapshot],
    description="The dashboard's metrics JSON, captured_at the end of the day it describes.",
    metadata=table_metadata("dashboard_snapshot", daily_partitions),
)
def dashboard_snapshot(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    return write(context, lambda: database.warehouse().writer.dashboard_snapshot(start, end))
