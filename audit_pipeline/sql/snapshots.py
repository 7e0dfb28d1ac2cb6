"""The daily snapshots, counted from the record history.

Each history run of a tenant in the day's snapshot, cut to the run's range, becomes +1 on its first
day and -1 on the day after its last; per (tenant, day) the steps are summed by category, and running
sums over a (tenant x day) grid give every day's counts. Linear in (history rows overlapping the
range + tenants x days); a one-day run reads only the runs open on that day.
"""

from __future__ import annotations

from ..dialect import Dialect
from .common import CALENDAR, SEVERITIES, onboarded_tenants, percent_x100, running_counts, tenant_day_grid


# What each count column counts, as a condition on a place's value (`{v}`): the contract's rules,
# shared with the check that holds the snapshots and snapshot_change together (sql/checks.py).
SEVERITY_COUNTS = {**{f"{sev.lower()}_open": f"{{v}} = '{sev}'" for sev in SEVERITIES}, "open_total": "1 = 1"}
# A status that is not NOT_APPLICABLE counts in `total`, an unknown or missing one included.
COMPLIANCE_COUNTS = {"total": "{v} IS NULL OR {v} <> 'NOT_APPLICABLE'", "compliant": "{v} = 'COMPLIANT'"}


def counted(counts: dict[str, str], value: str) -> dict[str, str]:
    """`counts`' conditions on the value expression `value`."""
    return {column: condition.format(v=value) for column, condition in counts.items()}


def _runs(d: Dialect, history: str, value_column: str) -> str:
    """CTEs `starting(tenant_id, day, value, n)` and `ending(...)`: of the history runs of onboarded
    tenants, cut to the days they are in the snapshots and to the run's range, how many start and
    how many end on each day, per value.

    A run that overlaps the range counts from its first day in it (its tenant's first day if later);
    one that ends inside the range stops counting on its end day. The runs are counted by their cut
    days and value before they meet the tenants: a night reads every run open that day (every
    requirement ever created) and groups them into a few rows per tenant, which the join then reads
    (twice as fast on a night as joining every run; some 15% slower over a whole history, where the
    grouping reduces little). Runs that end are found by the index on valid_to, not by reading every
    open run again.
    """
    return f"""
    starting AS (
        SELECT r.tenant_id, {d.greatest('r.day', 't.first_day')} AS day, r.value, sum(r.n) AS n
        FROM (
            SELECT tenant_id, {d.greatest('valid_from', ':range_start')} AS day,
                   {d.least('coalesce(valid_to, :day_max)', ':range_after')} AS end_day, {value_column} AS value,
                   count(*) AS n
            FROM {history}
            WHERE valid_from < :range_after AND (valid_to IS NULL OR valid_to > :range_start)
            GROUP BY 1, 2, 3, 4
        ) AS r
        JOIN onboarded t ON t.id = r.tenant_id
        WHERE {d.greatest('r.day', 't.first_day')} < r.end_day
        GROUP BY r.tenant_id, {d.greatest('r.day', 't.first_day')}, r.value
    ),
    ending AS (
        -- few on a night, and mostly one per (tenant, day, value) over a long range: not grouped
        SELECT h.tenant_id, h.valid_to AS day, h.{value_column} AS value, 1 AS n
        FROM {history} h JOIN onboarded t ON t.id = h.tenant_id
        WHERE h.valid_to > :range_start AND h.valid_to < :range_after
          AND {d.greatest('h.valid_from', 't.first_day', ':range_start')} < h.valid_to
    )"""


def _steps(categories: dict[str, str]) -> str:
    """CTE `steps(tenant_id, day, <category>...)`: per tenant and day, how each count changes (the
    runs of the category starting that day, less those ending). `categories` maps a column name to
    the condition under which a run's value counts in it."""
    sums = ",\n".join(
        f"               sum(CASE WHEN {condition} THEN n ELSE 0 END) AS {name}" for name, condition in categories.items()
    )
    return f"""
    steps AS (
        SELECT tenant_id, day,
{sums}
        FROM (
            SELECT tenant_id, day, value, n FROM starting
            UNION ALL
            SELECT tenant_id, day, value, -n FROM ending
        ) AS signed
        GROUP BY tenant_id, day
    )"""


def _daily_counts(d: Dialect, history: str, value_column: str, counts: dict[str, str]) -> str:
    """CTEs ending in `counts(tenant_id, day, <count>...)`: every tenant and day of the run, with
    `counts`' columns counted from the history's runs."""
    categories = counted(counts, "value")
    return f"""
    {onboarded_tenants(d)},
    {_runs(d, history, value_column)},
    {_steps(categories)},
    {tenant_day_grid()},
    counts AS ({running_counts(d, list(categories))}
    )"""


def severity_snapshot(d: Dialect, target: str, history: str) -> str:
    """Replace-by-insert of severity_snapshot for the days of the run, from observation_history."""
    return f"""
    WITH {_daily_counts(d, history, 'severity', SEVERITY_COUNTS)}
    INSERT INTO {target} (tenant_id, snapshot_date, critical_open, high_open, medium_open, low_open, open_total)
    SELECT tenant_id, day, critical_open, high_open, medium_open, low_open, open_total FROM counts
    """


def compliance_snapshot(d: Dialect, target: str, history: str) -> str:
    """Replace-by-insert of compliance_snapshot for the days of the run, from requirement_history."""
    return f"""
    WITH {_daily_counts(d, history, 'status', COMPLIANCE_COUNTS)}
    INSERT INTO {target} (tenant_id, snapshot_date, total, compliant, percentage)
    SELECT tenant_id, day, total, compliant,
           CASE WHEN total > 0 THEN {percent_x100(d, 'compliant', 'total')} / 100.0 END
    FROM counts
    """


def health_snapshot(d: Dialect, target: str, severity: str, compliance: str) -> str:
    # In integer hundredths (scores) and tenths (health): exact, half-up rounding on both databases.
    severity_score = d.greatest("0", "100 - (10 * s.critical_open + 5 * s.high_open + 2 * s.medium_open + s.low_open)")
    compliance_x100 = f"CASE WHEN c.total > 0 THEN {percent_x100(d, 'c.compliant', 'c.total')} ELSE 10000 END"
    return f"""
    WITH scores AS (
        SELECT s.tenant_id, s.snapshot_date,
               {severity_score} AS severity_score,
               {compliance_x100} AS compliance_x100
        FROM {severity} s
        JOIN {compliance} c ON c.tenant_id = s.tenant_id AND c.snapshot_date = s.snapshot_date
        WHERE s.snapshot_date >= :range_start AND s.snapshot_date < :range_after
    )
    INSERT INTO {target} (tenant_id, snapshot_date, severity_score, compliance_score, health_score)
    SELECT tenant_id, snapshot_date, severity_score, compliance_x100 / 100.0,
           ((compliance_x100 + 100 * severity_score + 10) / 20) / 10.0
    FROM scores
    """


def dashboard_snapshot(d: Dialect, target: str, severity: str, compliance: str, health: str) -> str:
    metrics = d.json_object(
        ("healthScore", "h.health_score"),
        ("compliance", d.json_object(("total", "c.total"), ("compliant", "c.compliant"), ("percentage", "c.percentage"))),
        (
            "severity",
            d.json_object(
                ("total", "s.open_total"),
                ("criticalOpen", "s.critical_open"),
                ("highOpen", "s.high_open"),
                ("mediumOpen", "s.medium_open"),
                ("lowOpen", "s.low_open"),
            ),
        ),
    )
    return f"""
    INSERT INTO {target} (tenant_id, snapshot_date, captured_at, metrics)
    SELECT h.tenant_id, h.snapshot_date, cal.day_end, {metrics}
    FROM {health} h
    JOIN {severity} s ON s.tenant_id = h.tenant_id AND s.snapshot_date = h.snapshot_date
    JOIN {compliance} c ON c.tenant_id = h.tenant_id AND c.snapshot_date = h.snapshot_date
    JOIN {CALENDAR} cal ON cal.day = h.snapshot_date
    WHERE h.snapshot_date >= :range_start AND h.snapshot_date < :range_after
    """
