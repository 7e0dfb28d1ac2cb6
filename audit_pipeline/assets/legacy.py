"""The old cron job compared with the reconstructed history: the evidence the team reads before the
cutover, as legacy_snapshot_diff rows and as the materialization's metadata."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

import dagster as dg

from ..calendar import local_date, parse_day, parse_instant
from ..partitions import daily_partitions
from ..settings import LEGACY_SNAPSHOT_TABLE_VAR
from ..sql import legacy
from ..warehouse import Warehouse
from ._run import Task, markdown_table, table_spec, write_task
from .snapshots import dashboard_snapshot

GROUP = "cutover"
WORST_DAYS = 10

legacy_snapshot_diff = table_spec(
    "legacy_snapshot_diff", GROUP,
    "The old cron job's DashboardSnapshot rows against dashboard_snapshot: one row per tenant, day "
    "and metric that differ, with the audit_log rows between the day's end and the old job's run. "
    "The old table is only read; without it nothing is compared.",
    daily_partitions, deps=(dashboard_snapshot,),
)


def write_task_for(context: dg.AssetExecutionContext, w: Warehouse, start: dt.date, end: dt.date) -> Task:
    return write_task(legacy_snapshot_diff, lambda: w.writer.legacy_snapshot_diff(start, end),
                      lambda: comparison_report(context, w, start, end), needs=("dashboard_snapshot",))


@dataclass(frozen=True)
class DayComparison:
    """One day's tenant-days, as `legacy.comparison_by_day` counts them."""

    day: dt.date
    compared: int
    matching: int
    differing: int
    explained: int
    reruns: int
    not_in_pipeline: int
    without_legacy_row: int

    @property
    def unexplained(self) -> int:
        return self.differing - self.explained


def comparison_report(context: dg.AssetExecutionContext, w: Warehouse, start: dt.date, end: dt.date) -> dict:
    """The comparison of the run's days, for the team: counts, per metric, the worst days."""
    name = ".".join(part for part in w.settings.legacy_snapshot_table if part)
    table = w.reader.legacy_snapshot_table()
    if table is None:
        context.log.info(f'no table "{name}" ({LEGACY_SNAPSHOT_TABLE_VAR}): nothing to compare for {start}..{end}')
        return {"legacy_table": dg.MetadataValue.text(f'"{name}" does not exist: nothing compared')}

    d = w.dialect
    params = {**legacy.range_params(d, start, end), **legacy.window_params(d, w.settings.tz, start, end)}
    dashboard, diff = w.tables.ref("dashboard_snapshot"), w.tables.ref("legacy_snapshot_diff")
    # In one transaction with the settings of a grouping of every tenant-day (sql/legacy.report_settings).
    with w.reader.reads(legacy.report_settings(w.dialect)) as find:
        days = [DayComparison(parse_day(day), *(int(n or 0) for n in counts))
                for day, *counts in find(legacy.comparison_by_day(d, table, dashboard, diff), **params)]
        span = old_job_days(find, w, table)
        by_metric = {metric: {"differences": n, "explained_by_log": int(explained or 0)}
                     for metric, n, explained in find(legacy.differences_by_metric(diff), **params)}
        largest = find(legacy.largest_unexplained(diff), **params)
    in_span = [c for c in days if span and span[0] <= c.day <= span[1]]
    missed = [c for c in in_span if c.without_legacy_row]
    total = lambda field: sum(getattr(c, field) for c in days)  # noqa: E731

    summary = (
        f"{total('compared')} tenant-days compared with the old job: {total('matching')} match, "
        f"{total('differing')} differ ({total('explained')} explained by the log, {total('unexplained')} not); "
        f"{total('reruns')} with re-runs; {sum(c.without_legacy_row for c in missed)} without an old-job row "
        f"({sum(1 for c in missed if not c.compared)} whole nights missed)"
    )
    context.log.info(summary)
    worst = sorted((c for c in days if c.differing or c.day in {m.day for m in missed}),
                   key=lambda c: (-c.unexplained, -c.differing, -c.without_legacy_row, c.day))[:WORST_DAYS]
    return {
        "legacy_table": dg.MetadataValue.text(table.name),
        "summary": dg.MetadataValue.text(summary),
        "old_job_describes": dg.MetadataValue.text(f"{span[0]}..{span[1]}" if span else "no day (no rows)"),
        "tenant_days_compared": dg.MetadataValue.int(total("compared")),
        "tenant_days_matching": dg.MetadataValue.int(total("matching")),
        "tenant_days_differing": dg.MetadataValue.int(total("differing")),
        "differences_explained_by_log": dg.MetadataValue.int(total("explained")),
        "differences_unexplained": dg.MetadataValue.int(total("unexplained")),
        "differences_by_metric": dg.MetadataValue.json(by_metric),
        "tenant_days_with_reruns": dg.MetadataValue.int(total("reruns")),
        "tenant_days_not_in_pipeline": dg.MetadataValue.int(total("not_in_pipeline")),
        "tenant_days_missed_by_old_job": dg.MetadataValue.int(sum(c.without_legacy_row for c in missed)),
        "nights_missed_by_old_job": dg.MetadataValue.int(sum(1 for c in missed if not c.compared)),
        "days_outside_old_job": dg.MetadataValue.int(len(days) - len(in_span)),
        f"worst days (first {WORST_DAYS})": markdown_table(
            ["day", "compared", "matching", "differing", "explained by log", "unexplained", "re-runs",
             "not in pipeline", "no old-job row"],
            [(c.day, c.compared, c.matching, c.differing, c.explained, c.unexplained, c.reruns, c.not_in_pipeline,
              c.without_legacy_row if c in missed else "") for c in worst],
        ),
        f"largest unexplained differences (first {legacy.PREVIEW_ROWS})": markdown_table(
            ["day", "tenant", "metric", "old job", "pipeline"],
            [(parse_day(day), tenant, metric, _number(old), _number(new))
             for day, tenant, metric, old, new in largest],
        ),
    }


def old_job_days(find: Callable[..., list[tuple]], w: Warehouse, table: legacy.LegacyTable) -> tuple[dt.date, dt.date] | None:
    """The first and last day the old job's rows describe: outside them it was not running yet, or
    any more, so a day without its rows there is no missed night."""
    first, last = find(legacy.capture_span(w.dialect, table))[0]
    if first is None:
        return None
    one_day = dt.timedelta(days=1)
    return (local_date(parse_instant(first), w.settings.tz) - one_day,
            local_date(parse_instant(last), w.settings.tz) - one_day)


def _number(value) -> str | None:
    """A value as the team reads it, the same on both databases: 100, not 100.0 or 1E+2."""
    if value is None:
        return None
    return format(Decimal(str(value)).normalize(), "f")

