"""Prints the first day `make demo` backfills: the start of the fiscal quarter five quarters back.

Why not the whole history: on Dagster's default SQLite instance every asset partition costs about
14 ms of bookkeeping (its event log opens a new connection for each write and does not batch).
With seven daily assets the whole history, 969 days, took 154 s after installation on a quiet
machine (131 s of bookkeeping), these six quarters 71 s (59 s): both over the demo's one-minute
budget (README, Decisions); fewer quarters would leave the quarterly trend nearly empty. The
current fiscal quarter and the five before it fill every dashboard widget (six quarters of severity
trend, well over a year of daily compliance); `audit-pipeline backfill --start 2024-04-01` (or the
UI) fills the rest.
"""

import datetime as dt

from .calendar import fiscal_quarter, last_complete_day
from .settings import load_settings

QUARTERS_BACK = 5


def demo_start(today: dt.date, start_month: int, first_partition: dt.date) -> dt.date:
    quarter_start = fiscal_quarter(today, start_month).start
    for _ in range(QUARTERS_BACK):
        quarter_start = fiscal_quarter(quarter_start - dt.timedelta(days=1), start_month).start
    return max(quarter_start, first_partition)


if __name__ == "__main__":
    settings = load_settings()
    print(demo_start(last_complete_day(settings.tz), settings.fiscal_year_start_month, settings.start_date))
