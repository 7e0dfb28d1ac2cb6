"""The old cron job compared: its `"DashboardSnapshot"` rows against `dashboard_snapshot`.

The contract: a row of the old job describes the day D with T(D) <= capturedAt < T(D+1), the day
that had ended last when it ran. As T(D) is 00:00 of D+1 in the reporting time zone, that is "the
day before capturedAt's local day". Per tenant and day the earliest row counts (later ones are
re-runs; equal instants are ordered by id); each of the nine metrics that differs from that day's
`dashboard_snapshot` becomes a row, with the tenant's audit_log rows between the day's end and the
capture (T(D) <= changed_at < capturedAt), which can explain it.

Set-based, one statement for any range of days; where the time goes at scale (a few hundred
thousand captures, a million log rows) decides its shape:
- the run's legacy rows are those whose instant lies in [T(first day), T(day after the last)); each
  is joined to its day's pipeline row, and where the two JSON texts show the same numbers (the
  pipeline's spacing rewritten, see `_texts_agree`) nothing is parsed: a JSON parse costs more than
  everything else done per capture;
- the earliest capture of each tenant-day is picked from rows that keep their documents only where
  the texts differ (a narrow sort); those documents are parsed once, equal ones dropped, each
  side's nine values looked up once, and numbers taken out only where the values differ;
- audit_log is read once, and only when something differs: its rows are kept by a lookup of
  (tenant, UTC day of changed_at) in the differing tenant-days' spans (no local day per log row),
  then counted per span with T(D) from the run's calendar.

The old job's table is only ever read: SELECT, never a lock, an index, a temporary object or any DDL
on it. Its name comes from AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE (validated identifiers, always
quoted); values travel as bound parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Connection, DateTime, String, inspect, text
from sqlalchemy.dialects.postgresql import JSONB

from ..calendar import day_end
from ..dialect import Dialect
from .common import CALENDAR
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

BACKSLASH = "'\\'"  # a backslash, as an SQL literal


class LegacyTableError(RuntimeError):
    """The old job's table cannot be compared (another shape, or not readable); one line."""


@dataclass(frozen=True)
class LegacyTable:
    ref: str  # quoted, schema-qualified when configured so: spliced into SQL
    name: str  # as configured, for messages
    # metrics is jsonb (Prisma's Json): its text lists keys by length, never as the pipeline's
    # json does, so comparing texts (see _texts_agree) would only cost; its parse is free.
    metrics_jsonb: bool = False


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
    return LegacyTable(ref=ref, name=shown, metrics_jsonb=isinstance(types["metrics"], JSONB))


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


def _captures(d: Dialect, legacy: LegacyTable) -> str:
    """CTE `captures(legacy_id, tenant_id, captured_at, metrics, snapshot_date)`: the old job's rows
    of the run's days, each with the day it describes."""
    captured = d.instant('"capturedAt"')
    return f"""
    captures AS (
        -- T(D) <= capturedAt < T(D+1): D is the day before the capture's local day
        SELECT "id" AS legacy_id, "tenantId" AS tenant_id, {captured} AS captured_at, "metrics" AS metrics,
               {d.previous_day(d.local_day('"capturedAt"'))} AS snapshot_date
        FROM {legacy.ref}
        WHERE "tenantId" IS NOT NULL
          AND {captured} >= {d.instant(':captures_from')} AND {captured} < {d.instant(':captures_until')}
    )"""


def _earliest_first(d: Dialect) -> str:
    """A window's clause numbering each tenant-day's captures, its earliest first (equal instants by id)."""
    return (f"PARTITION BY {d.bytewise('tenant_id')}, snapshot_date "
            f"ORDER BY captured_at, {d.bytewise('CAST(legacy_id AS TEXT)')}")


def _texts_agree(d: Dialect, legacy_metrics: str, pipeline_metrics: str) -> str:
    """True only when the two documents' texts show that all nine numbers agree, without parsing
    either (a JSON parse costs more than everything else per capture).

    The pipeline's text (`"key" : value`, as PostgreSQL's json_build_object writes it) is rewritten
    to the spacing `"key": value` of jsonb's text and Python's json.dumps (the demo's old job), and
    compared with the old job's text byte for byte. Sound whatever the texts hold: without a backslash every `"`
    delimits a string, so the rewrite only drops a space outside strings or the first space of a
    string that begins with " : ", and such a string contains a colon before and after, so it is
    none of the metrics' keys; every key, number and nesting reads the same. Equal texts then hold
    equal numbers. Any other difference (spacing, key order, 50 against 50.0, no pipeline row)
    leaves it false, and the documents are parsed and compared number by number: a fast path only.
    """
    pipeline_text = f"CAST({pipeline_metrics} AS TEXT)"
    no_backslash = f"{d.find(pipeline_text, BACKSLASH)} = 0"
    return f"""({no_backslash} AND CAST({legacy_metrics} AS TEXT) = replace({pipeline_text}, '" : ', '": '))"""


def _utc_day(d: Dialect, instant: str) -> str:
    """The day of an instant in the session's time zone (UTC: `use_utc_sessions`; SQLite's instants
    are UTC text): far cheaper than a day in the reporting time zone. Only a join key, computed the
    same way on both sides: any zone whose days are shorter than 48 h would give the same counts.
    """
    if d.name == "postgresql":
        return f"CAST({d.instant(instant)} AS date)"
    return f"date({d.instant(instant)})"


def _computed_once(d: Dialect) -> str:
    """Ends a subquery whose columns must be computed once per row: PostgreSQL (and SQLite) would
    otherwise merge it into the query around it and compute an expression again for each reference."""
    return "OFFSET 0" if d.name == "postgresql" else "LIMIT -1 OFFSET 0"


def _value(d: Dialect, document: str, path: tuple[str, ...]) -> str:
    """What _number_of reads a metric from: on PostgreSQL the jsonb value at `path` (a lookup by
    key, cheap; equal values are the same number or none on both sides), on SQLite the number."""
    if d.name != "postgresql":
        return d.json_number(document, path)
    return document + "".join(f" -> '{key}'" for key in path)


def _number_of(d: Dialect, value: str) -> str:
    """The number a _value holds (d.json_number's): a jsonb number cast to numeric is the same
    value, with the same scale, as its text read as numeric."""
    if d.name != "postgresql":
        return value
    return f"CASE WHEN jsonb_typeof({value}) = 'number' THEN CAST({value} AS numeric) END"


def snapshot_diff(d: Dialect, target: str, dashboard: str, legacy: LegacyTable | None) -> str:
    """Replace-by-insert of legacy_snapshot_diff for the run's days (binds the range and window_params)."""
    if legacy is None:
        return NOTHING_TO_COMPARE
    once = _computed_once(d)
    values = ",\n                       ".join(
        f"{_value(d, side, path)} AS {side}{i}" for side in "lp" for i, path in enumerate(METRICS.values()))
    metric_names = ", ".join(f"({i}, '{metric}')" for i, metric in enumerate(METRICS))
    pick = lambda side: "CASE m.position " + " ".join(  # noqa: E731
        f"WHEN {i} THEN n.{side}{i}" for i in range(len(METRICS))) + " END"
    agree = "1 = 0" if legacy.metrics_jsonb else _texts_agree(d, "c.metrics", "p.metrics")
    log_day = _utc_day(d, "s.day_end")
    changed_at = d.instant("l.changed_at")
    return f"""
    WITH {_captures(d, legacy)},
    ranked AS (
        -- every capture next to its day's pipeline row (re-runs too: the earliest is picked after,
        -- from rows that keep their documents only where the texts differ: a narrow sort). Each
        -- level computes its columns once (the text comparison is the costly one).
        SELECT kept.*, row_number() OVER ({_earliest_first(d)}) AS pick
        FROM (
            SELECT legacy_id, tenant_id, snapshot_date, captured_at,
                   CASE WHEN agrees = 1 THEN NULL ELSE legacy_metrics END AS legacy_metrics,
                   CASE WHEN agrees = 1 THEN NULL ELSE pipeline_metrics END AS pipeline_metrics
            FROM (
                SELECT c.legacy_id, c.tenant_id, c.snapshot_date, c.captured_at,
                       c.metrics AS legacy_metrics, p.metrics AS pipeline_metrics,
                       CASE WHEN {agree} THEN 1 ELSE 0 END AS agrees
                FROM captures c
                LEFT JOIN {dashboard} p ON p.tenant_id = c.tenant_id AND p.snapshot_date = c.snapshot_date
                     AND p.snapshot_date >= :range_start AND p.snapshot_date < :range_after
                {once}
            ) AS paired
            {once}
        ) AS kept
    ),
    documents AS (
        -- the earliest capture of each tenant-day whose texts differ (both documents missing:
        -- nothing differs), each document parsed once; equal documents hold equal numbers
        SELECT * FROM (
            SELECT tenant_id, snapshot_date, captured_at,
                   {d.json_document('legacy_metrics')} AS l, {d.json_document('pipeline_metrics')} AS p
            FROM ranked
            WHERE pick = 1 AND (legacy_metrics IS NOT NULL OR pipeline_metrics IS NOT NULL)
            {once}
        ) AS parsed
        WHERE NOT {d.same('l', 'p')}
    ),
    metric_names (position, metric) AS (VALUES {metric_names}),
    differing AS {d.materialized} (
        -- each side's nine values looked up once per document, then one row per metric whose
        -- values differ, the numbers taken out of those only
        SELECT * FROM (
            SELECT n.tenant_id, n.snapshot_date, n.captured_at, m.metric,
                   {_number_of(d, pick('l'))} AS legacy_value, {_number_of(d, pick('p'))} AS pipeline_value
            FROM (
                SELECT tenant_id, snapshot_date, captured_at,
                       {values}
                FROM documents
                {once}
            ) AS n
            CROSS JOIN metric_names m
            WHERE NOT {d.same(pick('l'), pick('p'))}
            {once}
        ) AS pairs
        WHERE NOT {d.same('legacy_value', 'pipeline_value')}
    ),
    spans AS (
        -- where something differs, the tenant's log rows with T(D) <= changed_at < capturedAt can
        -- explain it (T(D) from the run's calendar), on the (at most three) UTC days they touch:
        -- a span is shorter than a day of the reporting time zone
        SELECT s.tenant_id, s.snapshot_date, s.captured_at, cal.day_end, {_utc_day(d, 'cal.day_end')} AS first_day
        FROM (SELECT DISTINCT tenant_id, snapshot_date, captured_at FROM differing) AS s
        JOIN {CALENDAR} cal ON cal.day = s.snapshot_date
    ),
    span_days AS {d.materialized} (
        SELECT tenant_id, snapshot_date, captured_at, day_end, first_day AS log_day FROM spans
        UNION ALL
        SELECT tenant_id, snapshot_date, captured_at, day_end, {d.next_day('first_day')} FROM spans
        WHERE {d.next_day('first_day')} <= {_utc_day(d, 'captured_at')}
        UNION ALL
        SELECT tenant_id, snapshot_date, captured_at, day_end, {d.next_day(d.next_day('first_day'))} FROM spans
        WHERE {d.next_day(d.next_day('first_day'))} <= {_utc_day(d, 'captured_at')}
    ),
    candidates AS (
        -- audit_log has no index the pipeline may add: one pass, keeping the rows of a span's
        -- tenant and UTC day (cheap to compute, unlike the local day). A lookup in the spans'
        -- set, not a join: PostgreSQL could turn a join around and hash the million log rows.
        SELECT l.tenant_id, {changed_at} AS changed_at, {_utc_day(d, 'l.changed_at')} AS log_day
        FROM audit_log l
        WHERE EXISTS (SELECT 1 FROM span_days)
          AND {changed_at} >= {d.instant(':captures_from')} AND {changed_at} < {d.instant(':captures_until')}
          AND ((l.tenant_id, {_utc_day(d, 'l.changed_at')}) IN (SELECT tenant_id, log_day FROM span_days)) IS TRUE
    ),
    log_between AS (
        SELECT s.tenant_id, s.snapshot_date, count(*) AS log_rows
        FROM span_days s
        JOIN candidates l ON l.tenant_id = s.tenant_id AND l.log_day = s.log_day
        WHERE l.changed_at >= {d.instant('s.day_end')} AND l.changed_at < s.captured_at
        GROUP BY s.tenant_id, s.snapshot_date
    )
    INSERT INTO {target} (tenant_id, snapshot_date, captured_at, metric, legacy_value, pipeline_value, log_rows_between)
    SELECT x.tenant_id, x.snapshot_date, x.captured_at, x.metric, x.legacy_value, x.pipeline_value, coalesce(b.log_rows, 0)
    FROM differing x
    LEFT JOIN log_between b ON b.tenant_id = x.tenant_id AND b.snapshot_date = x.snapshot_date
    """


# --- what the team reads: reads of a run's days (bind range_params and window_params) ---------------

IN_RANGE = "snapshot_date >= :range_start AND snapshot_date < :range_after"


def report_settings(d: Dialect) -> tuple[str, ...]:
    """Run first in the transaction of a run's reads (beside the bulk settings): on PostgreSQL no
    parallel workers: the tenant-days are spread over all of them, so each worker's partial grouping
    reduces nothing and the leader groups everything again (twice the time, measured)."""
    return ("SET LOCAL max_parallel_workers_per_gather = 0",) if d.name == "postgresql" else ()


def comparison_by_day(d: Dialect, legacy: LegacyTable, dashboard: str, diff: str) -> str:
    """Per day: tenant-days compared, matching, differing, explained by the log, with re-runs, that
    the pipeline does not have, and pipeline tenant-days without any legacy row.

    One grouping by tenant and day of the three sources' rows (the old job's captures, the
    pipeline's snapshots, the differences written), instead of joining them: each is read once,
    and nothing is sorted. A tenant-day with only differences (the old job's table changed since
    they were written) counts nowhere, as if joined to the captures."""
    return f"""
    WITH {_captures(d, legacy)},
    tenant_days AS (
        SELECT snapshot_date, sum(legacy_rows) AS legacy_rows, max(in_pipeline) AS in_pipeline,
               max(differs) AS differs, max(explained) AS explained
        FROM (
            SELECT tenant_id, snapshot_date, 1 AS legacy_rows, 0 AS in_pipeline, 0 AS differs, 0 AS explained
            FROM captures
            UNION ALL
            SELECT tenant_id, snapshot_date, 0, 1, 0, 0 FROM {dashboard} WHERE {IN_RANGE}
            UNION ALL
            SELECT tenant_id, snapshot_date, 0, 0, 1, CASE WHEN log_rows_between > 0 THEN 1 ELSE 0 END
            FROM {diff} WHERE {IN_RANGE}
        ) AS sources
        GROUP BY tenant_id, snapshot_date
    )
    SELECT snapshot_date,
           sum(CASE WHEN legacy_rows > 0 THEN 1 ELSE 0 END) AS compared,
           sum(CASE WHEN legacy_rows > 0 AND in_pipeline = 1 AND differs = 0 THEN 1 ELSE 0 END) AS matching,
           sum(CASE WHEN legacy_rows > 0 AND differs = 1 THEN 1 ELSE 0 END) AS differing,
           sum(CASE WHEN legacy_rows > 0 AND differs = 1 AND explained = 1 THEN 1 ELSE 0 END) AS explained,
           sum(CASE WHEN legacy_rows > 1 THEN 1 ELSE 0 END) AS reruns,
           sum(CASE WHEN legacy_rows > 0 AND in_pipeline = 0 THEN 1 ELSE 0 END) AS not_in_pipeline,
           sum(CASE WHEN legacy_rows = 0 THEN 1 ELSE 0 END) AS without_legacy_row
    FROM tenant_days
    WHERE legacy_rows > 0 OR in_pipeline = 1
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
