"""Asset checks on the output tables: is each result whole and in range, and is it fresh.

Each failing check names the offending ids in its metadata, and counts them by kind. "One row per
tenant and day" blocks what is downstream of a table. What is odd in the source data is checked in
the steps that read it (source_checks.py).
"""


import datetime as dt
import time
from zoneinfo import ZoneInfo

import dagster as dg

from . import queries
from .assets.daily import compliance_snapshot, dashboard_snapshot, health_snapshot, severity_snapshot
from .assets.trends import compliance_trend_daily
from .dialect import DAY_MAX, DAY_MIN
from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .resources import DATABASE_POOL, DatabaseResource
from .settings import load_settings
from .source_checks import problems_result

SEVERITY, COMPLIANCE = severity_snapshot.key, compliance_snapshot.key
DAILY_KEYS = (SEVERITY, COMPLIANCE, health_snapshot.key, dashboard_snapshot.key, compliance_trend_daily.key)


def checked_days(context: dg.AssetCheckExecutionContext, w) -> dict:
    """The days a check reads: those of the run that materialized them, or all of them."""
    try:
        tags = context.run.tags
    except dg.DagsterInvalidPropertyError:  # invoked directly, outside a run: check every day
        tags = {}
    first = tags.get(RANGE_START_TAG) or tags.get(PARTITION_TAG)
    last = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    first_day = dt.date.fromisoformat(first) if first else DAY_MIN
    last_day = dt.date.fromisoformat(last) if last else DAY_MAX
    return {"first_day": w.dialect.day_param(first_day), "last_day": w.dialect.day_param(last_day)}


def timed_find(w, sql: str, **params) -> tuple[list[tuple], dg.MetadataValue]:
    """The rows of a check's query and the seconds it took (the CLI counts them as time in SQL)."""
    began = time.perf_counter()
    rows = w.find(sql, **params)
    return rows, dg.MetadataValue.float(round(time.perf_counter() - began, 3))


def one_row_per_tenant_and_day(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="one_row_per_tenant_and_day",
        pool=DATABASE_POOL,
        blocking=True,
        description="Every day present holds exactly one row per tenant of that day's snapshot.",
    )
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        problems, seconds = timed_find(w, queries.tenant_day_rows(w.dialect, w.table_ref(table)), **checked_days(context, w))
        return problems_result(problems, seconds=seconds)

    return _check


def values_in_range(asset: dg.AssetKey, conditions: dict[str, str]) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="values_in_range",
        pool=DATABASE_POOL,
        description="Counts, scores and percentages lie in their ranges: " + "; ".join(conditions) + ".",
    )
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        problems, seconds = timed_find(w, queries.out_of_range_rows(w.table_ref(table), conditions), **checked_days(context, w))
        return problems_result(problems, seconds=seconds)

    return _check


asset_checks = [
    *(one_row_per_tenant_and_day(key) for key in DAILY_KEYS),
    values_in_range(SEVERITY, queries.SEVERITY_RANGES),
    values_in_range(COMPLIANCE, queries.COMPLIANCE_RANGES),
    values_in_range(health_snapshot.key, queries.HEALTH_RANGES),
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
        for key in DAILY_KEYS
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
