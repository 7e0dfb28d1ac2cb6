"""The main job: every asset, for a day or a range of days, in one run."""

import dagster as dg

from .partitions import daily_partitions

AUDIT_HISTORY_JOB = "audit_history"

audit_history_job = dg.define_asset_job(
    AUDIT_HISTORY_JOB,
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="The daily snapshots of the selected days and every asset downstream of them.",
)
