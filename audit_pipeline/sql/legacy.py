"""The old cron job compared: its `"DashboardSnapshot"` rows against `dashboard_snapshot`.

The contract: a row of the old job describes the day D with T(D) <= capturedAt < T(D+1), the day
that had ended last when it ran. As T(D) is 00:00 of D+1 in the reporting time zone, that is "the
day before capturedAt's local day". Per tenant and day the earliest row counts (later ones are
re-runs; equal instants are ordered by id); each of the nine metrics that differs from that day's
`dashboard_snapshot` becomes a row, with the tenant's audit_log rows between the day's end and the
capture (T(D) <= changed_at < capturedAt), which can explain it.

Set-based, a few statements for any range of days: the run's legacy rows are those whose instant
lies in [T(first day), T(day after the last)); a log row between T(D) and a capture of D has the
capture's local day, so the log is joined on (tenant, local day) instead of on a range of instants.

The old job's table is only ever read: SELECT, never a lock, an index, a temporary object or any DDL
on it. Its name comes from AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE (validated identifiers, always
quoted); values travel as bound parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Connection, DateTime, String, inspect, text

from ..calendar import day_end
from ..dialect import Dialect
from ..settings import LEGACY_SNAPSHOT_TABLE_VAR

ONE_DAY = dt.timedelta(days=1)

# The metrics compared, named by their path in the dashboard's JSON (the contract's names).
METRICS: dict[str, tuple[str, ...]] = {
    "healthScore": ("healthScore",),
    "compliance.total": ("compliance", "total"),
    "compliance.compliant": ("compliance", "compliant"),
    "compliance.percentage": ("compliance", "percentage"),
    "severity.total": ("severity", "total"),
    "severity.criticalOpen": ("severity", "criticalOpen"),
    "severity.highOpen": ("severity", "highOpen"),
    "severity.mediumOpen": ("severity", "mediumOpen"),
    "severity.lowOpen": ("severity", "lowOpen"),
}

# The old job's columns (its Prisma model's field names, unmapped), as the contract gives them.
LEGACY_COLUMNS = ("id", "tenantId", "capturedAt", "metrics")

# Run instead of the comparison when there is no legacy table: the days are emptied, nothing added.
NOTHING_TO_COMPARE = "SELECT 0 AS no_legacy_table"

PREVIEW_ROWS = 10


class LegacyTableError(RuntimeError):
    """The old job's table cannot be compared (another shape, or not readable); one line."""


@dataclass(frozen=True)
class LegacyTable:
    ref: str  # quoted, schema-qualified when configured so: spliced into SQL
    name: str  # as configured, for messages


def find_legacy_table(conn: Connection, table: tuple[str | None, str]) -> LegacyTable | None:
    """The old job's table if it exists (None if not); LegacyTableError if it cannot be compared.

    Reads the catalog only. Extra columns are allowed (they are not read); the four of the
    contract must be there, on PostgreSQL with types that can be read: `capturedAt` a timestamp
    (with or without time zone: Prisma's DateTime is without), `metrics` json or jsonb (Prisma's
    Json is jsonb), `tenantId` text.
    """
    schema, name = table
    shown = f"{schema}.{name}" if schema else name
    inspector = inspect(conn)
    if schema and conn.dialect.name == "sqlite" and schema not in inspector.get_schema_names():
        return None  # SQLite: no such attached database, so no such table
    if not inspector.has_table(name, schema=schema):
        return None
    types = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=schema)}
    problems = [f'no column "{column}"' for column in LEGACY_COLUMNS if column not in types]
    if conn.dialect.name == "postgresql":
        expected = {"tenantId": (String, "text"), "capturedAt": (DateTime, "a timestamp"), "metrics": (JSON, "json or jsonb")}
        for column, (kind, wanted) in expected.items():
            if column in types and not isinstance(types[column], kind):
                problems.append(f'"{column}" is {types[column]}, not {wanted}')
    if problems:
        raise LegacyTableError(
            f'the old job\'s table "{shown}" ({LEGACY_SNAPSHOT_TABLE_VAR}) does not have the contract\'s shape '
            f'(id, "tenantId", "capturedAt", metrics): {"; ".join(problems)}. Nothing was compared; the table was not touched'
        )
    preparer = conn.dialect.identifier_preparer
    ref = ".".join(preparer.quote_identifier(part) for part in (schema, name) if part)
    if conn.dialect.name == "postgresql":
        readable = conn.execute(text("SELECT has_table_privilege(:table, 'SELECT')"), {"table": ref}).scalar_one()
        if not readable:
            raise LegacyTableError(
                f'the old job\'s table "{shown}" exists but this role may not read it: GRANT SELECT ON {ref} TO the pipeline\'s role'
            )
    return LegacyTable(ref=ref, name=shown)


def window_params(d: Dialect, tz: ZoneInfo, start: dt.date, end: dt.date) -> dict:
    """:captures_from and :captures_until, T(start) and T(end + 1): the instants between which the
    old job's rows describe the days start..end (and the log rows that can explain them lie)."""
    return {
        "captures_from": d.instant_param(day_end(start, tz)),
        "captures_until": d.instant_param(day_end(end + ONE_DAY, tz)),
    }


def range_params(d: Dialect, start: dt.date, end: dt.date) -> dict:
    """:range_start and :range_after, as `TableWriter._replace_days` binds them, for the reads below."""
    return {"range_start": d.day_param(start), "range_after": d.day_param(end + ONE_DAY)}


def _ranked_captures(d: Dialect, legacy: LegacyTable) -> str:
    """CTEs ending in `ranked(legacy_id, tenant_id, captured_at, metrics, capture_day, snapshot_date,
    pick, legacy_rows)`: the old job's rows of the run's days, pick = 1 for the earliest of each
    tenant and day, legacy_rows how many it has (more than one: re-runs)."""
    captured = d.instant('"capturedAt"')
    tenant_day = f"PARTITION BY {d.bytewise('tenant_id')}, snapshot_date"
    return f"""
    in_window AS (
        SELECT "id" AS legacy_id, "tenantId" AS tenant_id, {captured} AS captured_at, "metrics" AS metrics
        FROM {legacy.ref}
        WHERE "tenantId" IS NOT NULL
          AND {captured} >= {d.instant(':captures_from')} AND {captured} < {d.instant(':captures_until')}
    ),
    captures AS (
        -- T(D) <= capturedAt < T(D+1): D is the day before the capture's local day
        SELECT legacy_id, tenant_id, captured_at, metrics,
               {d.local_day('captured_at')} AS capture_day,
               {d.previous_day(d.local_day('captured_at'))} AS snapshot_date
        FROM in_window
    ),
    ranked AS (
        SELECT captures.*,
               row_number() OVER ({tenant_day} ORDER BY captured_at, {d.bytewise('CAST(legacy_id AS TEXT)')}) AS pick,
               count(*) OVER ({tenant_day}) AS legacy_rows
        FROM captures
    )"""


def _metric_value(d: Dialect, document: str) -> str:
    branches = " ".join(f"WHEN '{metric}' THEN {d.json_number(document, path)}" for metric, path in METRICS.items())
    return f"CASE m.metric {branches} END"


def snapshot_diff(d: Dialect, target: str, dashboard: str, legacy: LegacyTable | None) -> str:
    """Replace-by-insert of legacy_snapshot_diff for the run's days (binds the range and window_params)."""
    if legacy is None:
        return NOTHING_TO_COMPARE
    metric_names = ", ".join(f"('{metric}')" for metric in METRICS)
    return f"""
    WITH {_ranked_captures(d, legacy)},
    earliest AS (SELECT * FROM ranked WHERE pick = 1),
    compared AS {d.materialized} (
        -- each JSON document read once here, then nine numbers taken out of it
        SELECT e.tenant_id, e.snapshot_date, e.capture_day, e.captured_at,
               {d.json_document('e.metrics')} AS legacy_metrics, {d.json_document('p.metrics')} AS pipeline_metrics
        FROM earliest e
        LEFT JOIN {dashboard} p ON p.tenant_id = e.tenant_id AND p.snapshot_date = e.snapshot_date
    ),
    metric_names (metric) AS (VALUES {metric_names}),
    differing AS {d.materialized} (
        SELECT * FROM (
            SELECT c.tenant_id, c.snapshot_date, c.capture_day, c.captured_at, m.metric,
                   {_metric_value(d, 'c.legacy_metrics')} AS legacy_value,
                   {_metric_value(d, 'c.pipeline_metrics')} AS pipeline_value
            FROM compared c CROSS JOIN metric_names m
        ) AS pairs
        WHERE NOT {d.same('legacy_value', 'pipeline_value')}
    ),
    log_in_window AS {d.materialized} (
        -- audit_log has no index the pipeline may add: read once (only its rows of the window
        -- are kept), not once per tenant-day
        SELECT tenant_id, {d.instant('changed_at')} AS changed_at, {d.local_day('changed_at')} AS c_day
        FROM audit_log
        WHERE tenant_id IS NOT NULL
          AND {d.instant('changed_at')} >= {d.instant(':captures_from')}
          AND {d.instant('changed_at')} < {d.instant(':captures_until')}
    ),
    log_between AS (
        -- T(D) <= changed_at < capturedAt: on the capture's local day (D+1), before it; counted
        -- only where something differs
        SELECT x.tenant_id, x.snapshot_date, count(*) AS log_rows
        FROM (SELECT DISTINCT tenant_id, snapshot_date, capture_day, captured_at FROM differing) AS x
        JOIN log_in_window l ON l.tenant_id = x.tenant_id AND l.c_day = x.capture_day AND l.changed_at < x.captured_at
        GROUP BY x.tenant_id, x.snapshot_date
    )
    INSERT INTO {target} (tenant_id, snapshot_date, captured_at, metric, legacy_value, pipeline_value, log_rows_between)
    SELECT x.tenant_id, x.snapshot_date, x.captured_at, x.metric, x.legacy_value, x.pipeline_value, coalesce(b.log_rows, 0)
    FROM differing x
    LEFT JOIN log_between b ON b.tenant_id = x.tenant_id AND b.snapshot_date = x.snapshot_date
    """


# --- what the team reads: reads of a run's days (bind range_params and window_params) ---------------

IN_RANGE = "snapshot_date >= :range_start AND snapshot_date < :range_after"


def comparison_by_day(d: Dialect, legacy: LegacyTable, dashboard: str, diff: str) -> str:
    """Per day: tenant-days compared, matching, differing, explained by the log, with re-runs, that
    the pipeline does not have, and pipeline tenant-days without any legacy row."""
    return f"""
    WITH {_ranked_captures(d, legacy)},
    legacy_days AS (SELECT tenant_id, snapshot_date, legacy_rows FROM ranked WHERE pick = 1),
    pipeline AS (SELECT tenant_id, snapshot_date FROM {dashboard} WHERE {IN_RANGE}),
    differing AS (
        SELECT tenant_id, snapshot_date, max(log_rows_between) AS log_rows
        FROM {diff} WHERE {IN_RANGE} GROUP BY tenant_id, snapshot_date
    ),
    tenant_days AS (
        SELECT l.snapshot_date, l.legacy_rows,
               CASE WHEN p.tenant_id IS NULL THEN 0 ELSE 1 END AS in_pipeline,
               CASE WHEN x.tenant_id IS NULL THEN 0 ELSE 1 END AS differs,
               coalesce(x.log_rows, 0) AS log_rows
        FROM legacy_days l
        LEFT JOIN pipeline p ON p.tenant_id = l.tenant_id AND p.snapshot_date = l.snapshot_date
        LEFT JOIN differing x ON x.tenant_id = l.tenant_id AND x.snapshot_date = l.snapshot_date
        UNION ALL
        SELECT p.snapshot_date, 0, 1, 0, 0
        FROM pipeline p
        LEFT JOIN legacy_days l ON l.tenant_id = p.tenant_id AND l.snapshot_date = p.snapshot_date
        WHERE l.tenant_id IS NULL
    )
    SELECT snapshot_date,
           sum(CASE WHEN legacy_rows > 0 THEN 1 ELSE 0 END) AS compared,
           sum(CASE WHEN legacy_rows > 0 AND in_pipeline = 1 AND differs = 0 THEN 1 ELSE 0 END) AS matching,
           sum(differs) AS differing,
           sum(CASE WHEN differs = 1 AND log_rows > 0 THEN 1 ELSE 0 END) AS explained,
           sum(CASE WHEN legacy_rows > 1 THEN 1 ELSE 0 END) AS reruns,
           sum(CASE WHEN legacy_rows > 0 AND in_pipeline = 0 THEN 1 ELSE 0 END) AS not_in_pipeline,
           sum(CASE WHEN legacy_rows = 0 THEN 1 ELSE 0 END) AS without_legacy_row
    FROM tenant_days
    GROUP BY snapshot_date
    ORDER BY snapshot_date
    """


def capture_span(d: Dialect, legacy: LegacyTable) -> str:
    """The old job's first and last capture over its whole table (when it ran at all)."""
    captured = d.instant('"capturedAt"')
    return f'SELECT min({captured}), max({captured}) FROM {legacy.ref} WHERE "tenantId" IS NOT NULL'


def differences_by_metric(diff: str) -> str:
    return f"""
    SELECT metric, count(*), sum(CASE WHEN log_rows_between > 0 THEN 1 ELSE 0 END)
    FROM {diff} WHERE {IN_RANGE}
    GROUP BY metric ORDER BY metric
    """


def largest_unexplained(diff: str) -> str:
    """The differences no log row explains: the largest first, then those with a missing side."""
    return f"""
    SELECT snapshot_date, tenant_id, metric, legacy_value, pipeline_value FROM {diff}
    WHERE {IN_RANGE} AND log_rows_between = 0
    ORDER BY CASE WHEN legacy_value IS NULL OR pipeline_value IS NULL THEN 1 ELSE 0 END,
             abs(legacy_value - pipeline_value) DESC, snapshot_date DESC, tenant_id, metric
    LIMIT {PREVIEW_ROWS}
    """
