"""The one daily partitions definition, shared by every daily asset (and so by their range runs)."""

import dagster as dg

from .settings import load_settings

_settings = load_settings()

# Days are days in the reporting time zone: at 01:00 IST the last partition is the day that just
# ended (in UTC it would still be the day before).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(),
    timezone=_settings.timezone,
)
