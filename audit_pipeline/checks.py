"""Asset checks: is each result whole and in range, and what is odd in the source data.

Each failing check names the offending ids (the first MAX_EXAMPLES) in its metadata, and counts them
by kind. "One row per tenant and day" blocks what is downstream of a table; the data-quality checks
on the source are warnings: the pipeline handles those rows as the contract says, but someone
should look at them.
"""


import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import dagster as dg

from . import queries
from .assets.daily import compliance_snapshot, dashboard_snapshot, health_snapshot, severity_snapshot
from .assets.findings import repeat_finding
from .assets.trends import compliance_trend_daily
from .dialect import DAY_MAX, DAY_MIN
from .partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from .resources import DatabaseResource
from .settings import load_settings
from .warehouse import PATH_SEPARATOR

MAX_EXAMPLES = 20
REQUIREMENT_STATUSES = ("COMPLIANT", "PARTIALLY_COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE")
WARN = dg.AssetCheckSeverity.WARN

SEVERITY, COMPLIANCE = severity_snapshot.key, compliance_snapshot.key
DAILY_KEYS = (SEVERITY, COMPLIANCE, health_snapshot.key, dashboard_snapshot.key, compliance_trend_daily.key)


def problems_result(problems: list[tuple], severity=dg.AssetCheckSeverity.ERROR, **metadata) -> dg.AssetCheckResult:
    """A check result from offending rows (kind, id, detail)."""
    examples = [f"{kind}: {id_}" + (f" ({detail})" if detail not in (None, "") else "") for kind, id_, detail in problems]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=severity,
        metadata={
            "count": len(problems),
            "by_kind": dg.MetadataValue.json(dict(Counter(kind for kind, *_ in problems))),
            "examples": dg.MetadataValue.md("\n".join(f"- `{e}`" for e in examples[:MAX_EXAMPLES]) or "none"),
            **metadata,
        },
    )


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


def one_row_per_tenant_and_day(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="one_row_per_tenant_and_day",
        blocking=True,
        description="Every day present holds exactly one row per tenant of that day's snapshot.",
    )
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        return problems_result(w.find(queries.tenant_day_rows(w.dialect, w.table_ref(table)), **checked_days(context, w)))

    return _check


def values_in_range(asset: dg.AssetKey, conditions: dict[str, str]) -> dg.AssetChecksDefinition:
    table = asset.path[-1]

    @dg.asset_check(
        asset=asset,
        name="values_in_range",
        description="Counts, scores and percentages lie in their ranges: " + "; ".join(conditions) + ".",
    )
    def _check(context: dg.AssetCheckExecutionContext, database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        return problems_result(w.find(queries.out_of_range_rows(w.table_ref(table), conditions), **checked_days(context, w)))

    return _check


def enum_values_known(
    asset: dg.AssetKey, source_table: str, column: str, known: tuple[str, ...]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=f"{source_table}_{column}_values_known",
        description=f"{source_table}.{column} holds only {', '.join(known)} (after trimming and upper-casing).",
    )
    def _check(database: DatabaseResource) -> dg.AssetCheckResult:
        w = database.warehouse()
        unknown, normalized = {}, {}
        for value, norm, n in w.find(queries.enum_values(w.dialect, source_table, column)):
            if norm not in known:
                unknown[repr(value)] = n
            elif value != norm:
                normalized[repr(value)] = n
        return dg.AssetCheckResult(
            passed=not unknown,
            severity=WARN,
            metadata={
                "unknown_values": dg.MetadataValue.json(unknown),
                "rows_with_unknown_values": sum(unknown.values()),
                "values_normalized": dg.MetadataValue.json(normalized),
            },
        )

    return _check


@dg.asset_check(asset=SEVERITY, description="Observations whose closed_at is before their created_at (never counted as open).")
def observations_closed_before_created(database: DatabaseResource) -> dg.AssetCheckResult:
    return problems_result(database.warehouse().find(queries.closed_before_created()), WARN)


@dg.asset_check(asset=repeat_finding.key, description="repeat_of_id links into another tenant's observations (never followed).")
def repeat_links_across_tenants(database: DatabaseResource) -> dg.AssetCheckResult:
    return problems_result(database.warehouse().find(queries.cross_tenant_repeat_links()), WARN)


@dg.asset_check(asset=repeat_finding.key, description="Observations on a cycle of repeat_of_id links (chains stop there).")
def repeat_link_cycles(database: DatabaseResource) -> dg.AssetCheckResult:
    w = database.warehouse()
    return problems_result(w.find(queries.repeat_cycles(w.dialect), sep=PATH_SEPARATOR), WARN)


asset_checks = [
    *(one_row_per_tenant_and_day(key) for key in DAILY_KEYS),
    values_in_range(SEVERITY, queries.SEVERITY_RANGES),
    values_in_range(COMPLIANCE, queries.COMPLIANCE_RANGES),
    values_in_range(health_snapshot.key, queries.HEALTH_RANGES),
    enum_values_known(SEVERITY, "observation", "severity", queries.SEVERITIES),
    enum_values_known(COMPLIANCE, "compliance_requirement", "status", REQUIREMENT_STATUSES),
    observations_closed_before_created,
    repeat_links_across_tenants,
    repeat_link_cycles,
]


# Freshness: the day that ended at midnight must be materialized by 02:00 in the reporting time
# zone, an hour after the nightly run starts. Evaluated by the 02:00 schedule in schedules.py.
FRESHNESS_DEADLINE_HOUR = 2


def required_day(now: dt.datetime, tz: ZoneInfo, deadline_hour: int = FRESHNESS_DEADLINE_HOUR) -> dt.date:
    """The latest day that must be materialized at `now`: yesterday after the deadline, else the day before."""
    local = now.astimezone(tz)
    yesterday = local.date() - dt.timedelta(days=1)
    return yesterday if local.hour >= deadline_hour else yesterday - dt.timedelta(days=1)


def materialized_by_deadline(asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="yesterday_materialized_by_2am",
        description=f"Yesterday's partition is materialized by 0{FRESHNESS_DEADLINE_HOUR}:00 in the reporting time zone.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        settings = load_settings()
        day = required_day(dt.datetime.now(dt.timezone.utc), settings.tz)
        if day < settings.start_date:
            return dg.AssetCheckResult(passed=True, metadata={"required_day": "none yet"})
        materialized = context.instance.get_materialized_partitions(asset)
        return dg.AssetCheckResult(
            passed=day.isoformat() in materialized,
            metadata={"required_day": day.isoformat(), "latest_materialized": max(materialized, default="none")},
        )

    return _check


freshness_checks = [materialized_by_deadline(key) for key in DAILY_KEYS]
