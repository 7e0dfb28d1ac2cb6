"""The writes of the output tables: runs the SQL of `sql/` against one database, the pipeline's only writer.

`TableWriter` has one method per daily output table, named after it (the current-state tables are
current_state.py's). Every write replaces a range of days (`_replace_days`) inside one transaction:
delete, then insert-select (a long range that holds every row of its table: empty the table, load it
without its indexes, build them; `BULK_LOAD_DAYS`). A re-run therefore replaces, never duplicates,
and a failure leaves the previous rows as they were. Each write locks its output table first
(`OutputTables.lock`), so overlapping runs wait instead of colliding. Day boundaries and fiscal
quarters come from Python, joined as a temporary calendar table (`calendar_table`) that lives for
one write's transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, replace

from sqlalchemy import Column, Connection, Date, DateTime, Integer, MetaData, Table, Text, text

from .sql import changes, legacy, snapshots, trends
from .sql.common import CALENDAR
from .calendar import day_end, days, fiscal_quarter
from .output_tables import OutputTables
from .reads import Reader

# A write of this many rows or more refreshes its table's statistics.
ANALYZE_AFTER_ROWS = 50_000
# A write of this many days or more that replaces every row of its table (a first backfill, a whole
# history again) empties it and loads it without its indexes. It then holds the table exclusively
# (readers wait for its commit), which a night's write never does.
BULK_LOAD_DAYS = 28

_calendar_metadata = MetaData()
calendar_table = Table(
    CALENDAR,
    _calendar_metadata,
    Column("day", Date, primary_key=True),
    Column("day_no", Integer, nullable=False),
    Column("day_end", DateTime(timezone=True), nullable=False),
    Column("fiscal_year", Integer, nullable=False),
    Column("fiscal_quarter", Integer, nullable=False),
    Column("quarter_label", Text, nullable=False),
    Column("quarter_start", Date, nullable=False),
    Column("quarter_end", Date, nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    tenants: int
    days: int
    seconds: float


class TableWriter:
    def __init__(self, tables: OutputTables):
        self.tables = tables

    @property
    def concurrent_writes(self) -> int:
        """How many independent writes of a run may go at once: one per core of the machine this
        project is sized for on PostgreSQL; one on SQLite, which has one writer at a time."""
        return 1 if self.tables.engine.dialect.name == "sqlite" else 2

    # --- daily tables ----------------------------------------------------------------------------

    def severity_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        sql = snapshots.severity_snapshot(t.dialect, t.ref("severity_snapshot"), t.ref("observation_history"))
        return self._replace_days("severity_snapshot", sql, start, end)

    def compliance_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        sql = snapshots.compliance_snapshot(t.dialect, t.ref("compliance_snapshot"), t.ref("requirement_history"))
        return self._replace_days("compliance_snapshot", sql, start, end)

    def health_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        sql = snapshots.health_snapshot(
            t.dialect,
            t.ref("health_snapshot"),
            t.ref("severity_snapshot"),
            t.ref("compliance_snapshot"),
        )
        return self._replace_days("health_snapshot", sql, start, end)

    def dashboard_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        sql = snapshots.dashboard_snapshot(
            t.dialect,
            t.ref("dashboard_snapshot"),
            t.ref("severity_snapshot"),
            t.ref("compliance_snapshot"),
            t.ref("health_snapshot"),
        )
        return self._replace_days("dashboard_snapshot", sql, start, end)

    def compliance_trend_daily(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        sql = trends.compliance_trend_daily(t.dialect, t.ref("compliance_trend_daily"), t.ref("compliance_snapshot"))
        window_start = start - dt.timedelta(days=6)
        return self._replace_days(
            "compliance_trend_daily", sql, start, end, window_start=t.dialect.day_param(window_start)
        )

    def snapshot_change(self, start: dt.date, end: dt.date) -> WriteResult:
        t = self.tables
        t.prepare()
        histories = {name: t.ref(name) for name in ("observation_history", "requirement_history")}
        sql = changes.snapshot_change(t.dialect, t.ref("snapshot_change"), histories)
        return self._replace_days("snapshot_change", sql, start, end)

    def legacy_snapshot_diff(self, start: dt.date, end: dt.date) -> WriteResult:
        """The old cron job's table compared with `dashboard_snapshot`. Without the old job's table,
        the days are emptied: there is nothing to compare."""
        t = self.tables
        t.prepare()
        old_table = Reader(t).legacy_snapshot_table()
        sql = legacy.snapshot_diff(t.dialect, t.ref("legacy_snapshot_diff"), t.ref("dashboard_snapshot"), old_table)
        window = legacy.window_params(t.dialect, t.settings.tz, start, end)
        return self._replace_days("legacy_snapshot_diff", sql, start, end, **window)

    # --- whole tables ----------------------------------------------------------------------------

    def severity_trend_quarterly(self, start: dt.date, end: dt.date) -> WriteResult:
        """The rows of the fiscal quarters that start..end fall in, from every snapshot of those
        quarters (a quarter's row is its latest snapshot's, which may lie outside the run's days)."""
        t = self.tables
        t.prepare()
        sql = trends.severity_trend_quarterly(t.dialect, t.ref("severity_trend_quarterly"), t.ref("severity_snapshot"))
        month = t.settings.fiscal_year_start_month
        first, last = fiscal_quarter(start, month).start, fiscal_quarter(end, month).end
        result = self._replace_days("severity_trend_quarterly", sql, first, last, day_column="quarter_start")
        return replace(result, days=(end - start).days + 1)

    # --- the two write patterns ------------------------------------------------------------------

    def _replace_days(
        self, name: str, sql: str, start: dt.date, end: dt.date, day_column: str = "snapshot_date", **params
    ) -> WriteResult:
        """Replace the rows of `start..end` (by `day_column`) with those `sql` inserts."""
        if end < start:
            raise ValueError(f"empty range of days: {start}..{end}")
        t = self.tables
        t.prepare()
        began = time.perf_counter()
        target = t.ref(name)
        bounds = {
            "range_start": t.dialect.day_param(start),
            "range_after": t.dialect.day_param(end + dt.timedelta(days=1)),
        }
        with t.engine.begin() as conn:
            t.reading_history(conn)  # before the table's lock: not held while an update runs
            t.lock(conn, target)
            t.session_setup(conn)
            self._fill_calendar(conn, start - dt.timedelta(days=6), end)
            in_range = f"{day_column} >= :range_start AND {day_column} < :range_after"
            if (end - start).days + 1 >= BULK_LOAD_DAYS and not conn.execute(
                text(f"SELECT 1 FROM {target} WHERE NOT ({in_range}) LIMIT 1"), bounds
            ).first():
                # Nothing outside the range: emptied (no dead rows left in the indexes) and loaded.
                conn.execute(text(t.dialect.empty(target)))
                loading = t.loading_without_indexes(conn, name)
            else:
                conn.execute(text(f"DELETE FROM {target} WHERE {in_range}"), bounds)
                loading = contextlib.nullcontext()
            with loading:
                conn.execute(text(sql), {**t.common_params(), **bounds, **params})
            # Counted, not taken from rowcount: SQLite reports -1 for a WITH ... INSERT.
            rows, tenants = conn.execute(
                text(f"SELECT count(*), count(DISTINCT tenant_id) FROM {target} WHERE {in_range}"), bounds
            ).one()
            if rows >= ANALYZE_AFTER_ROWS:
                # A long range rewrites much of the table: the statements that read it next (the
                # same run's downstream writes and checks) are planned on its new size.
                conn.execute(text(f"ANALYZE {target}"))
            self._drop_calendar(conn)
        return WriteResult(name, rows, tenants, (end - start).days + 1, time.perf_counter() - began)

    # --- the temporary calendar table ------------------------------------------------------------

    def _fill_calendar(self, conn: Connection, first: dt.date, last: dt.date) -> None:
        calendar_table.drop(conn, checkfirst=True)
        calendar_table.create(conn)
        dialect, settings = self.tables.dialect, self.tables.settings
        tz, start_month = settings.tz, settings.fiscal_year_start_month
        rows = []
        for day in days(first, last):
            quarter = fiscal_quarter(day, start_month)
            rows.append(
                {
                    "day": dialect.day_param(day),
                    "day_no": day.toordinal(),
                    "day_end": dialect.instant_param(day_end(day, tz)),
                    "fiscal_year": quarter.fiscal_year,
                    "fiscal_quarter": quarter.quarter,
                    "quarter_label": quarter.label,
                    "quarter_start": dialect.day_param(quarter.start),
                    "quarter_end": dialect.day_param(quarter.end),
                }
            )
        columns = ", ".join(rows[0])
        values = ", ".join(f":{c}" for c in rows[0])
        # One executemany, not a statement per day.
        conn.execute(text(f"INSERT INTO {CALENDAR} ({columns}) VALUES ({values})"), rows)

    def _drop_calendar(self, conn: Connection) -> None:
        calendar_table.drop(conn, checkfirst=True)
