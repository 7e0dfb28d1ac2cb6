"""The one daily partitions definition, shared by every daily asset (and so by their range runs)."""

import dagster as dg

from .settings import load_settings

_settings = load_settings()

# How Dagster marks a run of a range of partitions (one run for many days), and of one partition.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"

# Days are days in the reporting time zone: at 01:00 IST the last partition is the day that just
# ended (in UTC it would still be the day before).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(),
    timezone=_settings.timezone,
)
