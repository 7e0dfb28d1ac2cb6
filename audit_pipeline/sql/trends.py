"""The dashboard's trend widgets: daily compliance with its change and 7-day average, and the
severity trend by fiscal quarter."""

from __future__ import annotations

from ..dialect import Dialect
from .common import CALENDAR, PREVIEW_ROWS, percent_x100


def compliance_trend_daily(d: Dialect, target: str, compliance: str) -> str:
    """Binds :window_start (six days before :range_start)."""
    pct = f"CASE WHEN cs.total > 0 THEN {percent_x100(d, 'cs.compliant', 'cs.total')} END"
    per_tenant = f"PARTITION BY {d.bytewise('tenant_id')} ORDER BY day_no"
    week = f"{per_tenant} RANGE BETWEEN 6 PRECEDING AND CURRENT ROW"
    return f"""
    WITH daily AS (
        SELECT cs.tenant_id, cs.snapshot_date, cal.day_no, {pct} AS pct
        FROM {compliance} cs JOIN {CALENDAR} cal ON cal.day = cs.snapshot_date
        WHERE cs.snapshot_date >= :window_start AND cs.snapshot_date < :range_after
    ),
    trend AS (
        SELECT tenant_id, snapshot_date, day_no, pct,
               lag(pct) OVER ({per_tenant}) AS previous_pct,
               lag(day_no) OVER ({per_tenant}) AS previous_day_no,
               CAST(sum(pct) OVER ({week}) AS BIGINT) AS week_sum,
               count(pct) OVER ({week}) AS week_count
        FROM daily
    )
    INSERT INTO {target} (tenant_id, snapshot_date, compliance_percentage, change_1d, rolling_7d_avg)
    SELECT tenant_id, snapshot_date, pct / 100.0,
           CASE WHEN previous_day_no = day_no - 1 THEN (pct - previous_pct) / 100.0 END,
           CASE WHEN week_count > 0 THEN ((2 * week_sum + week_count) / (2 * week_count)) / 100.0 END
    FROM trend
    WHERE snapshot_date >= :range_start
    """


def severity_trend_quarterly(d: Dialect, target: str, severity: str) -> str:
    """The rows of the quarters from :range_start to the day before :range_after (whole quarters:
    the calendar holds their days), each from the latest snapshot of its quarter."""
    # The latest day per tenant and quarter is found on narrow rows (a hash aggregate); only those
    # few snapshots are then read whole, instead of sorting every snapshot row.
    return f"""
    WITH latest AS (
        SELECT s.tenant_id, cal.fiscal_year, cal.fiscal_quarter, max(s.snapshot_date) AS as_of_date
        FROM {severity} s JOIN {CALENDAR} cal ON cal.day = s.snapshot_date
        WHERE s.snapshot_date >= :range_start AND s.snapshot_date < :range_after
        GROUP BY s.tenant_id, cal.fiscal_year, cal.fiscal_quarter
    )
    INSERT INTO {target} (tenant_id, fiscal_year, fiscal_quarter, quarter_label, quarter_start,
                          quarter_end, as_of_date, critical_open, high_open, medium_open, low_open)
    SELECT l.tenant_id, l.fiscal_year, l.fiscal_quarter, cal.quarter_label, cal.quarter_start, cal.quarter_end,
           l.as_of_date, s.critical_open, s.high_open, s.medium_open, s.low_open
    FROM latest l
    JOIN {severity} s ON s.tenant_id = l.tenant_id AND s.snapshot_date = l.as_of_date
    JOIN {CALENDAR} cal ON cal.day = l.as_of_date
    -- Redundant, but it keeps the planner from hashing the whole table: it cannot know that
    -- `latest` holds a row per tenant and quarter, not per snapshot (one night: 0.17 -> 0.02 s).
    WHERE s.snapshot_date >= :range_start AND s.snapshot_date < :range_after
    """


def latest_quarter_preview(table: str) -> str:
    return f"""
    SELECT tenant_id, quarter_label, as_of_date, critical_open, high_open, medium_open, low_open FROM (
        SELECT t.*, row_number() OVER (PARTITION BY tenant_id ORDER BY fiscal_year DESC, fiscal_quarter DESC) AS pick
        FROM {table} t
    ) AS latest
    WHERE pick = 1
    ORDER BY tenant_id
    LIMIT {PREVIEW_ROWS}
    """


def compliance_trend_preview(table: str) -> str:
    """Binds :day."""
    return f"""
    SELECT tenant_id, snapshot_date, compliance_percentage, change_1d, rolling_7d_avg FROM {table}
    WHERE snapshot_date = :day
    ORDER BY tenant_id
    LIMIT {PREVIEW_ROWS}
    """
