"""Every daily table in one step: the record history, the snapshots, what changed, the trends and the
comparison with the old job, written in dependency order, two at a time.

Each table is an asset of its own (its own key, lineage, checks and partitions; any of them can be
materialized alone), as the models of `dagster-dbt`'s `@dbt_assets` are: one step runs them in
dependency order. The work is SQL in the database, Dagster's in-process executor runs one step at a
time, and every step costs Dagster a few events; so the writes that do not read each other run at
once on two connections (assets/_run.run_tasks), and each table's checks run right after its write,
in the same step. A range of days is one run and the same few statements, whatever its length.
"""

import datetime as dt

import dagster as dg

from .. import output_checks, source_checks
from ..partitions import daily_partitions
from ..resources import DATABASE_POOL, DatabaseResource
from ..warehouse import Warehouse
from . import changes, history, legacy, snapshots, trends
from ._run import Task, run_tasks

SPECS = (*history.SPECS, *snapshots.SPECS, changes.snapshot_change, *trends.SPECS, legacy.legacy_snapshot_diff)


@dg.multi_asset(
    name="daily_tables",
    specs=SPECS,
    check_specs=[
        *history.check_specs,
        *(check.spec for check in output_checks.OUTPUT_CHECKS),
        *source_checks.check_specs(snapshots.severity_snapshot, snapshots.compliance_snapshot),
    ],
    can_subset=True,
    partitions_def=daily_partitions,
    # A range of days is one run: one set of statements, whatever its length.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # The step works on the application database: it takes a slot of its pool.
    pool=DATABASE_POOL,
    description="The record history brought up to date, then every daily table of the run's days, with their checks.",
)
def daily_tables(context: dg.AssetExecutionContext, config: history.HistoryConfig, database: DatabaseResource):
    w = database.warehouse()
    yield from run_tasks(context, w, selected_tasks(context, w, config))


def selected_tasks(context: dg.AssetExecutionContext, w: Warehouse, config: history.HistoryConfig) -> list[Task]:
    """The run's selected writes and checks, in the order they are started when ready: the record
    history; then each table's write followed by its checks (a blocking one holds up what reads the
    table), the heads of the longest chains first; last, the checks of the sources (they read
    nothing the step writes, so they fill the connections the chains leave idle instead of holding
    up their heads: a night's whole-table scans of observation and compliance_requirement)."""
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    if selected & set(history.TABLES):
        tasks = [history.update_task(context, w, config)]
    else:
        tasks = [history.check_task(w, spec.key.path[-1]) for spec, check in zip(history.SPECS, history.check_specs)
                 if check.key in context.selected_asset_check_keys]
    source_checks_selected = source_checks.selected_checks(context, w, snapshots.severity_snapshot, snapshots.compliance_snapshot)
    of_sources = [Task((key.asset_key.to_user_string(),), lambda evaluate=evaluate: [evaluate()], check=key.name,
                       reads_table=False)
                  for key, evaluate in source_checks_selected.items()]
    days = run_days(context)
    writes = []
    if days is not None:
        start, end = days
        writes = [*changes.write_tasks(w, start, end), *snapshots.write_tasks(w, start, end),
                  *trends.write_tasks(w, start, end), legacy.write_task_for(context, w, start, end)]
    written = {t.preview_of or t.tables[0]: [] for t in writes}
    for task in writes:
        if (task.preview_of or task.tables[0]) in selected:
            written[task.preview_of or task.tables[0]].append(task)
    checks = [check_task(w, c, days) for c in output_checks.OUTPUT_CHECKS if c.key in context.selected_asset_check_keys]
    for table in [*ORDER, *(t for t in written if t not in ORDER)]:
        tasks += written.get(table, []) + [c for c in checks if c.tables[0] == table]
    return tasks + [c for c in checks if c.tables[0] not in written] + of_sources


# Which table's write (and checks) starts first when several are ready: the longest chain first
# (over a whole history: severity 3.4 s -> health 1.1 s -> the dashboard 2.5 s -> the old job's diff
# 2.9 s), then what changed and its identity check (3.9 s and 2.9 s) beside it.
ORDER = ("severity_snapshot", "compliance_snapshot", "snapshot_change", "health_snapshot", "dashboard_snapshot",
         "legacy_snapshot_diff", "compliance_trend_daily", "severity_trend_quarterly")


def check_task(w: Warehouse, check: output_checks.OutputCheck, days: tuple[dt.date, dt.date] | None) -> Task:
    # The identity check reads both snapshots beside its own table.
    reads = ("severity_snapshot", "compliance_snapshot") if check is output_checks.COUNTS_FOLLOW_FROM_CHANGES else ()
    return Task((check.asset,), lambda: [check.evaluate(w, days)], needs=reads, check=check.name, blocking=check.blocking)


def run_days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date] | None:
    """First and last day (inclusive) of the run: one partition or a single-run range; None when the
    run has no days (its checks alone, executed outside a partitioned run: they read every day)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    keys = context.partition_key_range
    return dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)
