"""Days, their end instants and fiscal quarters: small pure functions, computed in Python.

The database never does time-zone arithmetic for day *boundaries*: Python computes T(D), the instant
at which day D ends in the reporting time zone, and hands the days to SQL as a calendar table. This is
what lets one set of queries run on SQLite (which has no time zones) and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator
from zoneinfo import ZoneInfo

ONE_DAY = dt.timedelta(days=1)


def day_end(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """T(D): 00:00 of the next day in `tz`, as an aware UTC instant."""
    next_midnight = dt.datetime.combine(day + ONE_DAY, dt.time(0), tzinfo=tz)
    return next_midnight.astimezone(dt.timezone.utc)


def parse_instant(value) -> dt.datetime | None:
    """An aware instant from a datetime or ISO 8601 text (naive means UTC); None when unreadable."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def parse_day(value) -> dt.date:
    """A day as the database returns it: a date (PostgreSQL) or ISO text (SQLite)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def local_date(instant: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The day (in `tz`) on which an instant falls; a naive instant is taken as UTC."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(tz).date()


def last_complete_day(tz: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """The most recent day that has ended in `tz` (yesterday there)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return local_date(now, tz) - ONE_DAY


def days(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """start..end inclusive."""
    for offset in range((end - start).days + 1):
        yield start + dt.timedelta(days=offset)


@dataclass(frozen=True)
class FiscalQuarter:
    fiscal_year: int  # the calendar year in which the fiscal year starts
    quarter: int  # 1..4
    start: dt.date
    end: dt.date  # inclusive
    year_start_month: int  # the fiscal year's first month

    @property
    def label(self) -> str:
        """`Q1 FY2025-26`: the quarter, then the fiscal year as its two calendar years.

        A fiscal year that starts in January spans one calendar year and reads `Q1 FY2025`.
        """
        if self.year_start_month == 1:
            return f"Q{self.quarter} FY{self.fiscal_year}"
        return f"Q{self.quarter} FY{self.fiscal_year}-{(self.fiscal_year + 1) % 100:02d}"


def fiscal_quarter(day: dt.date, start_month: int) -> FiscalQuarter:
    """The fiscal quarter holding `day`, for a fiscal year that starts on the 1st of `start_month`."""
    months_into_year = (day.month - start_month) % 12
    fiscal_year = day.year if day.month >= start_month else day.year - 1
    quarter = months_into_year // 3 + 1
    first_month_index = (start_month - 1) + (quarter - 1) * 3  # months since January of fiscal_year
    start = dt.date(fiscal_year + first_month_index // 12, first_month_index % 12 + 1, 1)
    after_index = first_month_index + 3
    after = dt.date(fiscal_year + after_index // 12, after_index % 12 + 1, 1)
    return FiscalQuarter(fiscal_year, quarter, start, after - ONE_DAY, start_month)
