"""Fragments shared by the families: tenants of a day, day grids, steps and running sums, rounding."""

from __future__ import annotations

from ..dialect import Dialect

CALENDAR = "audit_pipeline_calendar"  # temporary table, one row per day (see writes.py)

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")

PREVIEW_ROWS = 10


def day_span(table: str) -> str:
    """The first and last day a daily table holds."""
    return f"SELECT min(snapshot_date), max(snapshot_date) FROM {table}"


def percent_x100(d: Dialect, compliant: str, total: str) -> str:
    """100 * compliant / total in hundredths, rounded half up, in integer arithmetic.

    Exact on both databases (no binary floating point), for total > 0.
    """
    return f"((CAST(20000 AS BIGINT) * ({compliant}) + ({total})) / (2 * ({total})))"


def onboarded_tenants(d: Dialect) -> str:
    """CTE `onboarded(id, first_day)`: tenants in the snapshots of every day from first_day on."""
    return f"""
    onboarded AS (
        SELECT id, {d.local_day('created_at')} AS first_day
        FROM tenant
        WHERE onboarding_completed IS TRUE AND created_at IS NOT NULL
    )"""


def tenant_day_grid() -> str:
    """CTE `grid(tenant_id, day)`: every tenant of every day of the run."""
    return f"""
    grid AS (
        SELECT t.id AS tenant_id, c.day
        FROM onboarded t JOIN {CALENDAR} c ON c.day >= t.first_day
        WHERE c.day >= :range_start AND c.day < :range_after
    )"""


def running_counts(d: Dialect, columns: list[str]) -> str:
    """Every grid day's counts: the running sums of the steps up to that day."""
    sums = ",\n".join(
        f"           CAST(sum(coalesce(s.{c}, 0)) OVER per_tenant AS INTEGER) AS {c}" for c in columns
    )
    return f"""
    SELECT g.tenant_id, g.day,
{sums}
    FROM grid g LEFT JOIN steps s ON s.tenant_id = g.tenant_id AND s.day = g.day
    WINDOW per_tenant AS (PARTITION BY {d.bytewise('g.tenant_id')} ORDER BY g.day ROWS UNBOUNDED PRECEDING)"""
