"""Prints the first day `make demo` backfills: the first partition, so the demo fills the whole history.

The whole history (about a thousand days, ten daily assets) fits the demo's one-minute budget since
the local instance writes a range run's materializations in batches (sqlite_event_log.py): on
Dagster's default SQLite event log each asset partition cost about 14 ms of bookkeeping, and the
demo had to stop at six fiscal quarters (README, Decisions).
"""

from .settings import load_settings

if __name__ == "__main__":
    print(load_settings().start_date)
