"""Jobs: the main one (every asset and its checks, for a day or a range of days) and the freshness check."""

import dagster as dg

from .checks import FRESHNESS_JOB, freshness_checks
from .partitions import daily_partitions

AUDIT_HISTORY_JOB = "audit_history"

audit_history_job = dg.define_asset_job(
    AUDIT_HISTORY_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*freshness_checks),
    partitions_def=daily_partitions,
    description="The daily snapshots of the selected days and every asset downstream of them.",
)

freshness_job = dg.define_asset_job(
    FRESHNESS_JOB,
    selection=dg.AssetSelection.checks(*freshness_checks),
    description="Is yesterday materialized by 02:00 in the reporting time zone?",
)

rebuild_history_job = dg.define_asset_job(
    "rebuild_record_history",
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*freshness_checks),
    partitions_def=daily_partitions,
    config={"ops": {step: {"config": {"full_rebuild": True}} for step in ("daily_tables", "current_findings")}},
    description="Parse the whole audit_log again, derive every record's history and the current-state tables, and "
    "write the selected days from them (launch it for the days that need it).",
)
