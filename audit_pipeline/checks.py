"""Asset checks on the output tables: is each result whole and in range, and is it fresh.

Each failing check names the offending ids in its metadata, and counts them by kind. "One row per
tenant and day" blocks what is downstream of a table. What is odd in the source data is checked in
the steps that read it (source_checks.py).
"""


import datetime as dt
import time
from zoneinfo import ZoneInfo

import dagster as dg

from .assets._run import retried_if_transient
from .sql import checks as check_sql
from .sql.history import OBSERVATIONS, REQUIREMENTS
from .sql.snapshots import COMPLIANCE_COUNTS, SEVERITY_COUNTS
from .assets.changes import snapshot_change
from .assets.daily import compliance_snapshot, dashboard_snapshot, health_snapshot, severity_snapshot
from .assets.trends import compliance_trend_daily
from .calendar import parse_day
from .dialect import DAY_MAX, DAY_MIN
from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .resources import DATABASE_POOL, DatabaseResource
from .settings import load_settings
from .source_checks import MAX_EXAMPLES, problems_result

SEVERITY, COMPLIANCE = severity_snapshot.key, compliance_snapshot.key
DAILY_KEYS = (SEVERITY, COMPLIANCE, health_snapshot.key, dashboard_snapshot.key, compliance_trend_daily.key)


def run_days(context: dg.AssetCheckExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The first and last day of the run that materialized the days, or None outside a run."""
    try:
        tags = context.run.tags
    except dg.DagsterInvalidPropertyError:  # invoked directly, outside a run
        return None
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    return (dt.date.fromisoformat(first), dt.date.fromisoformat(last)) if first and last else None


def checked_days(context: dg.AssetCheckExecutionContext, w) -> dict:
    """The days a check reads: those of the run that materialized them, or all of them."""
    first_day, last_day = run_days(context) or (DAY_MIN, DAY_MAX)
    return {"first_day": w.dialect.day_param(first_day), "last_day": w.dialect.day_param(last_day)}


def tenant_day_problems(w, table: str, days: tuple[dt.date, dt.date] | None) -> list[tuple]:
    """Missing, unexpected and duplicate rows of a daily table on every one of `days` (first, last),
    or, with None, on every day from the table's first to its last."""
    days = days or w.reader.day_span(table)
    if days is None:
        return []
    bounds = {"first_day": w.dialect.day_param(days[0]), "last_day": w.dialect.day_param(days[1])}
    return w.reader.find(check_sql.tenant_day_rows(w.dialect, w.tables.ref(table)), **bounds)


def timed_find(w, sql: str, **params) -> tuple[list[tuple], dg.MetadataValue]:
    """The rows of a check's query and the seconds it took (the CLI counts them as time in SQL)."""
    began = time.perf_counter()
    rows = w.reader.find(sql, **params)
    return rows, dg.MetadataValue.float(round(time.perf_counter() - began, 3))


def one_row_per_tenant_and_day(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="one_row_per_tenant_and_day",
        pool=DATABASE_POOL,
        blocking=True,
        description="Every day of the run (outside a run: every day from the first to the last) holds exactly "
        "one row per tenant of that day's snapshot.",
    )
    @retried_if_transient
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        began = time.perf_counter()
        problems = tenant_day_problems(database.warehouse(), table, run_days(context))
        return problems_result(problems, seconds=dg.MetadataValue.float(round(time.perf_counter() - began, 3)))

    return _check


def values_in_range(asset: dg.AssetKey, conditions: dict[str, str]) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="values_in_range",
        pool=DATABASE_POOL,
        description="Counts, scores and percentages lie in their ranges: " + "; ".join(conditions) + ".",
    )
    @retried_if_transient
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        problems, seconds = timed_find(w, check_sql.out_of_range_rows(w.tables.ref(table), conditions), **checked_days(context, w))
        return problems_result(problems, seconds=seconds)

    return _check


# The count columns of each snapshot, and the record history and record table that explain them.
IDENTITY_TABLES = {
    "severity_snapshot": (SEVERITY_COUNTS, OBSERVATIONS),
    "compliance_snapshot": (COMPLIANCE_COUNTS, REQUIREMENTS),
}


def change_identity_problems(w, days: tuple[dt.date, dt.date] | None) -> list[dict]:
    """Where a snapshot's count of D is not D-1's plus D's changes (see sql.checks), on every one of
    `days` (first, last), or with None on every day each snapshot table holds."""
    problems = []
    for table, (counts, kind) in IDENTITY_TABLES.items():
        span = days or w.reader.day_span(table)
        if span is None:
            continue
        sql = check_sql.counts_follow_from_changes(
            w.dialect, w.tables.ref(table), counts, w.tables.ref(kind.history), kind.value_column,
            w.tables.ref("snapshot_change"), kind.log_table,
        )
        bounds = {name: w.dialect.day_param(day) for name, day in
                  (("first_day", span[0]), ("last_day", span[1]), ("day_before_first", span[0] - dt.timedelta(days=1)))}
        problems += [mismatch(table, *row) for row in w.reader.find(sql, **bounds)]
    return problems


def mismatch(table: str, column: str, tenant: str, day, previous, plus, minus, actual) -> dict:
    """One count that does not follow, as JSON metadata (None: no row)."""
    number = lambda value: None if value is None else int(value)  # noqa: E731
    previous, plus, minus, actual = number(previous), int(plus), int(minus), number(actual)
    expected = None if previous is None else previous + plus - minus
    return dict(table=table, column=column, tenant_id=tenant, day=parse_day(day).isoformat(),
                previous=previous, plus=plus, minus=minus, expected=expected, actual=actual)


def arithmetic(p: dict) -> str:
    """'D-1 + added - removed = expected, table has actual', as a failure reads it."""
    stored = "no row" if p["actual"] is None else p["actual"]
    if p["previous"] is None:  # the day before's row is missing too (reported on its own day)
        return f"table has {stored}"
    return f"{p['previous']} + {p['plus']} - {p['minus']} = {p['expected']}, table has {stored}"


def counts_follow_from_changes() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=snapshot_change.key,
        name="counts_follow_from_changes",
        pool=DATABASE_POOL,
        # An ERROR that blocks: one of the two tables is wrong, and whatever reads them should wait.
        blocking=True,
        description="For every tenant and day of the run (outside a run: every day of the snapshots), each count of "
        "severity_snapshot and compliance_snapshot equals the day before's (0 for a tenant new that day) plus the "
        "day's changes with that value after, minus those with it before. The day before a run's first is counted "
        "from the record history (it may not be materialized, or be due for a re-run after a correction).",
    )
    @retried_if_transient
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        problems = change_identity_problems(database.warehouse(), run_days(context))
        rows = [("count differs", f"{p['tenant_id']} {p['day']} {p['table']}.{p['column']}", arithmetic(p)) for p in problems]
        return problems_result(rows, mismatches=dg.MetadataValue.json(problems[:MAX_EXAMPLES]))

    return _check


asset_checks = [
    *(one_row_per_tenant_and_day(key) for key in DAILY_KEYS),
    counts_follow_from_changes(),
    values_in_range(SEVERITY, check_sql.SEVERITY_RANGES),
    values_in_range(COMPLIANCE, check_sql.COMPLIANCE_RANGES),
    values_in_range(health_snapshot.key, check_sql.HEALTH_RANGES),
]


# Freshness: the day that ended at midnight must be materialized by 02:00 in the reporting time
# zone, an hour after the nightly run starts. Evaluated by the 02:00 schedule in schedules.py.
FRESHNESS_DEADLINE_HOUR = 2
FRESHNESS_JOB = "freshness_check"
FRESHNESS_CHECK = "yesterday_materialized_by_2am"


def required_day(now: dt.datetime, tz: ZoneInfo, deadline_hour: int = FRESHNESS_DEADLINE_HOUR) -> dt.date:
    """The latest day that must be materialized at `now`: yesterday after the deadline, else the day before."""
    local = now.astimezone(tz)
    yesterday = local.date() - dt.timedelta(days=1)
    return yesterday if local.hour >= deadline_hour else yesterday - dt.timedelta(days=1)


@dg.multi_asset_check(
    name=FRESHNESS_CHECK,
    specs=[
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=key,
            description=f"Yesterday's partition is materialized by 0{FRESHNESS_DEADLINE_HOUR}:00 in the reporting time zone.",
        )
        for key in (*DAILY_KEYS, snapshot_change.key)
    ],
    can_subset=True,
)
def materialized_by_deadline(context: dg.AssetCheckExecutionContext):
    settings = load_settings()
    day = required_day(dt.datetime.now(dt.timezone.utc), settings.tz)
    missing = []
    for key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
        if day < settings.start_date:
            yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=True,
                                      metadata={"required_day": "none yet"})
            continue
        materialized = context.instance.get_materialized_partitions(key.asset_key)
        passed = day.isoformat() in materialized
        if not passed:
            missing.append(key.asset_key.to_user_string())
        yield dg.AssetCheckResult(
            asset_key=key.asset_key, check_name=key.name, passed=passed,
            metadata={"required_day": day.isoformat(), "latest_materialized": max(materialized, default="none")},
        )
    # At the deadline a missing day is an incident: the freshness job's run fails (after recording
    # the checks' results), and the failure sensor alerts on it as on any failed run. Evaluated in
    # other runs (the UI's Materialize and asset backfills include every check of their assets,
    # often for past days), a failed check is only recorded.
    if missing and context.run.job_name == FRESHNESS_JOB:
        raise dg.Failure(
            description=f"{day} is not materialized at 0{FRESHNESS_DEADLINE_HOUR}:00 {settings.timezone}: {', '.join(missing)}",
            metadata={"required_day": day.isoformat(), "assets": missing},
        )


freshness_checks = [materialized_by_deadline]
