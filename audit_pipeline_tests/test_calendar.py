"""Days, day ends and fiscal quarters: the pure functions behind the calendar table."""

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from audit_pipeline.calendar import day_end, fiscal_quarter, last_complete_day

IST = ZoneInfo("Asia/Kolkata")


def test_day_end_is_the_next_midnight_in_the_zone():
    assert day_end(dt.date(2024, 6, 10), IST) == dt.datetime(2024, 6, 10, 18, 30, tzinfo=dt.timezone.utc)
    # A zone with daylight saving: the day of the change is 23 hours long.
    ny = ZoneInfo("America/New_York")
    assert day_end(dt.date(2024, 3, 9), ny) == dt.datetime(2024, 3, 10, 5, tzinfo=dt.timezone.utc)
    assert day_end(dt.date(2024, 3, 10), ny) == dt.datetime(2024, 3, 11, 4, tzinfo=dt.timezone.utc)


def test_last_complete_day_is_yesterday_in_the_zone():
    now = dt.datetime(2026, 11, 24, 19, 0, tzinfo=dt.timezone.utc)  # 2026-11-25 00:30 IST
    assert last_complete_day(IST, now) == dt.date(2026, 11, 24)
    assert last_complete_day(ZoneInfo("UTC"), now) == dt.date(2026, 11, 23)


@pytest.mark.parametrize(
    "day, start_month, expected",
    [
        ("2025-03-31", 4, (2024, 4, "2025-01-01", "2025-03-31", "Q4 FY2024-25")),
        ("2025-04-01", 4, (2025, 1, "2025-04-01", "2025-06-30", "Q1 FY2025-26")),
        ("2025-06-30", 4, (2025, 1, "2025-04-01", "2025-06-30", "Q1 FY2025-26")),
        ("2025-07-01", 4, (2025, 2, "2025-07-01", "2025-09-30", "Q2 FY2025-26")),
        ("2099-12-31", 4, (2099, 3, "2099-10-01", "2099-12-31", "Q3 FY2099-00")),
        ("2026-02-15", 1, (2026, 1, "2026-01-01", "2026-03-31", "Q1 FY2026")),
        ("2026-02-15", 10, (2025, 2, "2026-01-01", "2026-03-31", "Q2 FY2025-26")),
    ],
)
def test_fiscal_quarters(day, start_month, expected):
    q = fiscal_quarter(dt.date.fromisoformat(day), start_month)
    assert (q.fiscal_year, q.quarter, q.start.isoformat(), q.end.isoformat(), q.label) == expected


def test_the_demo_fills_the_whole_history_from_the_first_partition(monkeypatch):
    monkeypatch.setenv("AUDIT_PIPELINE_START_DATE", "2024-06-01")
    result = subprocess.run([sys.executable, "-m", "audit_pipeline.demo_range"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "2024-06-01"
