"""The application's trend code, ported as it is, run on the pipeline's rows: why the cutover guide
says to read `snapshot_date` and `severity_trend_quarterly` instead of re-bucketing `captured_at`.

The application buckets its `DashboardSnapshot` rows with JavaScript's `Date` in the server's time
zone: `new Date(row.capturedAt)`, then `getFullYear()`, `getMonth()` and `getDate()`, which are local
time there. For the old job's rows (captured at about 01:00 IST) that gave the day after the one
they describe, whatever it was meant to be. The pipeline's `captured_at` is T(D), the midnight that
ends D in the reporting time zone: in a UTC server it lands on D for IST, in an IST server on D+1
(a quarter's last day moves to the next quarter), and in a UTC server with a reporting time zone
west of UTC (America/New_York) on D+1 too.
"""

import datetime as dt
from zoneinfo import ZoneInfo

from .builder import SourceBuilder, all_rows, warehouse

UTC, IST, NEW_YORK = ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")


# --- the application's code, in Python --------------------------------------------------------------

def js_local(instant: dt.datetime, server_zone: ZoneInfo) -> dt.datetime:
    """`new Date(instant)` read with the local getters (getFullYear, getMonth, getDate): the wall-clock
    time in the server's zone (TZ)."""
    return instant.astimezone(server_zone)


def app_fiscal_quarter(instant: dt.datetime, server_zone: ZoneInfo) -> tuple[int, int]:
    """The application's `fiscalQuarterOf(date)`: the fiscal year starting in April, from getMonth()."""
    local = js_local(instant, server_zone)
    month = local.month - 1  # getMonth() counts from 0
    fiscal_year = local.year if month >= 3 else local.year - 1
    return fiscal_year, (month - 3) % 12 // 3 + 1


def app_quarterly_trend(rows: list[dict], server_zone: ZoneInfo) -> dict:
    """The application's quarterly severity trend: per tenant and quarter, the latest row's counts."""
    trend = {}
    for row in sorted(rows, key=lambda r: r["captured_at"]):
        key = (row["tenant_id"], *app_fiscal_quarter(row["captured_at"], server_zone))
        trend[key] = row["metrics"]["severity"]  # later rows overwrite: the latest wins
    return trend


def app_day(instant: dt.datetime, server_zone: ZoneInfo) -> dt.date:
    """The application's daily bucket: `d.getFullYear(), d.getMonth(), d.getDate()`."""
    return js_local(instant, server_zone).date()


# --- the pipeline's rows ----------------------------------------------------------------------------

def dashboard_rows(engine) -> list[dict]:
    out = []
    for row in all_rows(engine, "dashboard_snapshot"):
        captured = row["captured_at"]
        captured = dt.datetime.fromisoformat(captured) if isinstance(captured, str) else captured
        out.append({**row, "captured_at": captured if captured.tzinfo else captured.replace(tzinfo=dt.timezone.utc)})
    return out


def quarter_end_history(engine, **env):
    """A critical finding opened on the last day of Q1 FY2025-26 (2025-06-30) and closed on 07-02."""
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.observation("q1-end", severity="CRITICAL", created="2025-06-30 12:00:00", closed="2025-07-02 12:00:00")
    w = warehouse(engine, **env)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot, w.writer.dashboard_snapshot):
        write(dt.date(2025, 6, 27), dt.date(2025, 7, 4))
    w.writer.severity_trend_quarterly(dt.date(2025, 6, 27), dt.date(2025, 7, 4))


def test_bucketing_captured_at_in_an_ist_server_moves_a_quarters_last_day(engine):
    quarter_end_history(engine)
    rows = dashboard_rows(engine)
    quarterly = {(r["tenant_id"], r["fiscal_year"], r["fiscal_quarter"]): r for r in all_rows(engine, "severity_trend_quarterly")}
    # What to read: severity_trend_quarterly. Q1 is as of 06-30, with the critical finding open.
    q1 = quarterly[("t1", 2025, 1)]
    assert (q1["as_of_date"], q1["critical_open"]) == (dt.date(2025, 6, 30), 1)

    # A UTC server happens to bucket IST's T(D) (18:30 UTC of D) on D: the same quarters.
    utc_server = app_quarterly_trend(rows, UTC)
    assert utc_server[("t1", 2025, 1)]["criticalOpen"] == 1
    # An IST server sees 06-30's row at 2025-07-01 00:00: in Q2. Its Q1 ends with 06-29, without the finding.
    ist_server = app_quarterly_trend(rows, IST)
    assert ist_server[("t1", 2025, 1)]["criticalOpen"] == 0
    assert app_fiscal_quarter(next(r for r in rows if r["snapshot_date"] == dt.date(2025, 6, 30))["captured_at"], IST) == (2025, 2)

    # Daily buckets: snapshot_date is the day; an IST server's local date of captured_at is the day after.
    for row in rows:
        assert app_day(row["captured_at"], UTC) == row["snapshot_date"]
        assert app_day(row["captured_at"], IST) == row["snapshot_date"] + dt.timedelta(days=1)


def test_a_reporting_zone_west_of_utc_moves_the_day_even_in_a_utc_server(engine):
    quarter_end_history(engine, AUDIT_PIPELINE_TIMEZONE="America/New_York")
    rows = dashboard_rows(engine)
    assert rows and all(app_day(r["captured_at"], UTC) == r["snapshot_date"] + dt.timedelta(days=1) for r in rows)
    assert all(app_day(r["captured_at"], NEW_YORK) == r["snapshot_date"] + dt.timedelta(days=1) for r in rows)


def test_prisma_reads_a_date_as_utc_midnight_so_format_it_with_utc_getters():
    # Prisma hands `snapshot_date` (@db.Date) to the application as a Date at 00:00 UTC of that day.
    snapshot_date = dt.date(2025, 6, 30)
    as_prisma_gives_it = dt.datetime.combine(snapshot_date, dt.time(0), tzinfo=dt.timezone.utc)
    assert as_prisma_gives_it.astimezone(UTC).date() == snapshot_date  # toISOString().slice(0, 10), getUTCDate()
    assert js_local(as_prisma_gives_it, IST).date() == snapshot_date  # getDate() east of UTC: right by luck
    assert js_local(as_prisma_gives_it, NEW_YORK).date() == snapshot_date - dt.timedelta(days=1)  # west: the day before
