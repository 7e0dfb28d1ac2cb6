"""What the dashboard's trend widgets read, downstream of the daily snapshots."""

import datetime as dt

import dagster as dg

from ..partitions import daily_partitions
from ..sql import trends as trend_sql
from ..sql.common import PREVIEW_ROWS
from ..warehouse import Warehouse
from ._run import Task, markdown_table, table_spec, write_task
from .snapshots import compliance_snapshot, severity_snapshot

GROUP = "trends"

compliance_trend_daily = table_spec(
    "compliance_trend_daily", GROUP, "Daily compliance percentage with its 1-day change and 7-day rolling average.",
    daily_partitions,
    # Day D reads the compliance snapshots of D-6..D: Dagster knows, so a late change to day D marks
    # the trend of D..D+6 stale, and a range run needs its upstream days first.
    deps=(dg.AssetDep(compliance_snapshot, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-6)),),
)
severity_trend_quarterly = table_spec(
    "severity_trend_quarterly", GROUP,
    "Open findings by severity at the latest snapshot of each fiscal quarter. Partition D stands for D's "
    "quarter: a run rewrites the quarters its days fall in, from every snapshot of those quarters.",
    daily_partitions, deps=(severity_snapshot,),
)
SPECS = (compliance_trend_daily, severity_trend_quarterly)


def write_tasks(w: Warehouse, start: dt.date, end: dt.date) -> list[Task]:
    def daily_preview():
        sql = trend_sql.compliance_trend_preview(w.tables.ref("compliance_trend_daily"))
        rows = w.reader.find(sql, day=w.dialect.day_param(end))
        columns = ["tenant", "day", "compliance %", "change 1d", "rolling 7d avg"]
        return {f"preview (last day, first {PREVIEW_ROWS} tenants)": markdown_table(columns, rows)}

    def quarterly_preview():
        rows = w.reader.find(trend_sql.latest_quarter_preview(w.tables.ref("severity_trend_quarterly")))
        columns = ["tenant", "quarter", "as of", "critical", "high", "medium", "low"]
        return {f"preview (latest quarter, first {PREVIEW_ROWS} tenants)": markdown_table(columns, rows)}

    return [
        write_task(compliance_trend_daily, lambda: w.writer.compliance_trend_daily(start, end), daily_preview,
                   needs=("compliance_snapshot",)),
        write_task(severity_trend_quarterly, lambda: w.writer.severity_trend_quarterly(start, end), quarterly_preview,
                   needs=("severity_snapshot",)),
    ]
