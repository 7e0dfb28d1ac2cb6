"""Assets downstream of the daily snapshots: what the dashboard's trend widgets read."""

import dagster as dg

from ..catalog import table_metadata
from ..partitions import daily_partitions
from ..resources import DATABASE_POOL, DatabaseResource
from .daily import compliance_snapshot, daily, severity_snapshot
from ..sql import trends as trend_sql
from ..sql.common import PREVIEW_ROWS
from ._run import markdown_table, run_days, write

GROUP = "trends"


@dg.asset(
    **daily,
    group_name=GROUP,
    kinds={"sql"},
    # Day D reads the compliance snapshots of D-6..D: Dagster knows, so a late change to day D
    # marks the trend of D..D+6 stale, and a range run needs its upstream days first.
    deps=[dg.AssetDep(compliance_snapshot, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-6))],
    description="Daily compliance percentage with its 1-day change and 7-day rolling average.",
    metadata=table_metadata("compliance_trend_daily", daily_partitions),
)
def compliance_trend_daily(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    start, end = run_days(context)
    w = database.warehouse()

    def preview():
        sql = trend_sql.compliance_trend_preview(w.tables.ref("compliance_trend_daily"))
        rows = w.reader.find(sql, day=w.dialect.day_param(end))
        columns = ["tenant", "day", "compliance %", "change 1d", "rolling 7d avg"]
        return {f"preview (last day, first {PREVIEW_ROWS} tenants)": markdown_table(columns, rows)}

    return write(context, lambda: w.writer.compliance_trend_daily(start, end), preview)


@dg.asset(
    group_name=GROUP,
    kinds={"sql"},
    pool=DATABASE_POOL,
    deps=[severity_snapshot],
    description="Open findings by severity at the latest snapshot of each fiscal quarter (rebuilt whole).",
    metadata=table_metadata("severity_trend_quarterly"),
)
def severity_trend_quarterly(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    # Rebuilt from all snapshots: a quarter's row can depend on days outside any one run's range.
    w = database.warehouse()

    def preview():
        rows = w.reader.find(trend_sql.latest_quarter_preview(w.tables.ref("severity_trend_quarterly")))
        columns = ["tenant", "quarter", "as of", "critical", "high", "medium", "low"]
        return {f"preview (latest quarter, first {PREVIEW_ROWS} tenants)": markdown_table(columns, rows)}

    return write(context, w.writer.severity_trend_quarterly, preview)
