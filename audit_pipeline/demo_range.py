"""Prints the first day `make demo` backfills: the start of the fiscal quarter five quarters back.

Why not the whole history: on Dagster's default SQLite instance every asset partition costs two
connections and two commits (a disk flush each) of bookkeeping; that storage does not batch. With
one planned event per asset (bookkeeping.py) the whole history, 969 days of five daily assets, still
took 81.5 s after installation in the quietest of three paired runs (74.3 s of backfill: 64.4 s of
bookkeeping, 9.9 s of SQL) and 49 s of CPU at the median, against 29.9 s for these six quarters:
more than the demo's one-minute budget (README, Decisions). The current fiscal quarter and the five
before it fill every dashboard widget (six quarters of severity trend, well over a year of daily
compliance); `audit-pipeline backfill --start 2024-04-01` (or the UI) fills the rest.
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
