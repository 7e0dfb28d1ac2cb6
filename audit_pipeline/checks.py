"""The freshness checks: is yesterday materialized by 02:00 in the reporting time zone.

They read the Dagster instance, not the database, and run in a job of their own at 02:00. The checks
of the output tables are evaluated in the step that writes them (output_checks.py); those of the
source tables in the steps that read them (source_checks.py).
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from .assets.changes import snapshot_change
from .assets.snapshots import compliance_snapshot, dashboard_snapshot, health_snapshot, severity_snapshot
from .assets.trends import compliance_trend_daily
from .settings import load_settings

DAILY_KEYS = (severity_snapshot.key, compliance_snapshot.key, health_snapshot.key, dashboard_snapshot.key,
              compliance_trend_daily.key)


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
