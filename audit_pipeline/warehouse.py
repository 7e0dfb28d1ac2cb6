"""Runs the SQL of `sql/` against one database: the pipeline's only writer.

Every write replaces a range of days (or a whole table) inside one transaction: delete, then
insert-select. A re-run therefore replaces, never duplicates, and a failure leaves the previous rows
as they were. Writers of the same output table are serialized (PostgreSQL: a table lock on that
output table only; SQLite: its database lock), so overlapping runs wait instead of colliding.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, replace
from typing import Callable

from sqlalchemy import JSON, Column, Connection, Date, DateTime, Engine, Integer, MetaData, Table, Text, bindparam, inspect, text

from .sql import changes, findings, log as log_sql, snapshots, trends
from .sql.common import CALENDAR
from .calendar import day_end, days, fiscal_quarter, parse_instant
from .corrections import LogRow
from .log_reader import LogBatch, LogPosition, read_new_rows, start_position
from .dialect import DAY_MAX, DAY_MIN, ENUM_WHITESPACE, PG_SAFE_JSON_FUNCTION, Dialect, PostgresDialect, dialect_for
from .dialect import read_connection  # reads take no SQLite write lock
from .settings import Settings
from .sql import legacy
from .tables import output_metadata

# Separates observation ids on a repeat chain's path: a control character no id contains.
PATH_SEPARATOR = "\x1f"

# pg_advisory_xact_lock key that serializes the creation of the output tables across processes.
PREPARE_LOCK_KEY = 0x41554449545F50  # "AUDIT_P"

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


class OutputSchemaError(RuntimeError):
    """An output table exists with columns that do not match the contract."""


class Warehouse:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.dialect: Dialect = dialect_for(engine)
        self.metadata = output_metadata(settings.output_schema)
        self._prepared = False

    @property
    def concurrent_writes(self) -> int:
        """How many independent writes of a run may go at once: one per core of the machine this
        project is sized for on PostgreSQL; one on SQLite, which has one writer at a time."""
        return 1 if self.engine.dialect.name == "sqlite" else 2

    # --- output tables ---------------------------------------------------------------------------

    def table_ref(self, name: str) -> str:
        """The quoted (and schema-qualified) name of an output table, for splicing into SQL."""
        table = self.metadata.tables[self.table_key(name)]
        return self.engine.dialect.identifier_preparer.format_table(table)

    def table_key(self, name: str) -> str:
        """The key of an output table in `self.metadata`."""
        schema = self.settings.output_schema
        return f"{schema}.{name}" if schema else name

    def prepare(self) -> None:
        """Create missing output tables; refuse to touch an existing one whose columns differ.

        Idempotent and cheap after the first call. Every write calls it before building its SQL,
        because the SQL depends on what it finds (see `_images_are_text`).
        """
        if self._prepared:
            return
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two runs starting at once must not both try to create the tables.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PREPARE_LOCK_KEY})
                schema = self.settings.output_schema
                if schema and schema not in inspect(conn).get_schema_names():
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))  # a validated identifier
            self._check_existing_columns(conn)
            self.metadata.create_all(conn, checkfirst=True)
            for table in self.metadata.sorted_tables:  # tables made before an index was added
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            if isinstance(self.dialect, PostgresDialect):
                self.dialect.images_are_text = _images_are_text(conn)
        self._prepared = True

    def session_setup(self, conn: Connection) -> None:
        if isinstance(self.dialect, PostgresDialect) and self.dialect.images_are_text:
            conn.exec_driver_sql(PG_SAFE_JSON_FUNCTION)

    def _check_existing_columns(self, conn: Connection) -> None:
        inspector = inspect(conn)
        schema = self.settings.output_schema
        existing = set(inspector.get_table_names(schema=schema))
        for table in self.metadata.sorted_tables:
            if table.name not in existing:
                continue
            found = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
            expected = {c.name for c in table.columns}
            if found != expected:
                missing = ", ".join(sorted(expected - found)) or "none"
                unexpected = ", ".join(sorted(found - expected)) or "none"
                raise OutputSchemaError(
                    f"output table {table.name} exists with other columns than the contract's "
                    f"(missing: {missing}; unexpected: {unexpected}); it was left untouched"
                )

    # --- daily tables ----------------------------------------------------------------------------

    def write_severity_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        sql = snapshots.severity_snapshot(self.dialect, self.table_ref("severity_snapshot"), self.table_ref("observation_history"))
        return self._replace_days("severity_snapshot", sql, start, end)

    def write_compliance_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        sql = snapshots.compliance_snapshot(self.dialect, self.table_ref("compliance_snapshot"), self.table_ref("requirement_history"))
        return self._replace_days("compliance_snapshot", sql, start, end)

    def write_health_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        sql = snapshots.health_snapshot(
            self.dialect,
            self.table_ref("health_snapshot"),
            self.table_ref("severity_snapshot"),
            self.table_ref("compliance_snapshot"),
        )
        return self._replace_days("health_snapshot", sql, start, end)

    def write_dashboard_snapshot(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        sql = snapshots.dashboard_snapshot(
            self.dialect,
            self.table_ref("dashboard_snapshot"),
            self.table_ref("severity_snapshot"),
            self.table_ref("compliance_snapshot"),
            self.table_ref("health_snapshot"),
        )
        return self._replace_days("dashboard_snapshot", sql, start, end)

    def write_compliance_trend_daily(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        sql = trends.compliance_trend_daily(
            self.dialect, self.table_ref("compliance_trend_daily"), self.table_ref("compliance_snapshot")
        )
        window_start = start - dt.timedelta(days=6)
        return self._replace_days(
            "compliance_trend_daily", sql, start, end, window_start=self.dialect.day_param(window_start)
        )

    def write_snapshot_change(self, start: dt.date, end: dt.date) -> WriteResult:
        self.prepare()
        histories = {name: self.table_ref(name) for name in ("observation_history", "requirement_history")}
        sql = changes.snapshot_change(self.dialect, self.table_ref("snapshot_change"), histories)
        return self._replace_days("snapshot_change", sql, start, end)

    # --- whole tables ----------------------------------------------------------------------------

    def write_severity_trend_quarterly(self) -> WriteResult:
        self.prepare()
        sql = trends.severity_trend_quarterly(
            self.dialect, self.table_ref("severity_trend_quarterly"), self.table_ref("severity_snapshot")
        )

        def calendar_span(conn: Connection) -> tuple[dt.date, dt.date] | None:
            first, last = conn.execute(
                text(f"SELECT min(snapshot_date), max(snapshot_date) FROM {self.table_ref('severity_snapshot')}")
            ).one()
            if first is None:
                return None
            return _as_date(first), _as_date(last)

        return self._replace_all("severity_trend_quarterly", sql, calendar_span=calendar_span)

    def write_repeat_finding(self) -> WriteResult:
        self.prepare()
        sql = findings.repeat_finding(self.dialect, self.table_ref("repeat_finding"))
        return self._replace_all("repeat_finding", sql, sep=PATH_SEPARATOR)

    def write_engagement_progress(self) -> WriteResult:
        self.prepare()
        sql = findings.engagement_progress(self.dialect, self.table_ref("engagement_progress"))
        return self._replace_all("engagement_progress", sql)

    # --- reads for the asset checks --------------------------------------------------------------

    def find(self, sql: str, **params) -> list[tuple]:
        """Rows of a read-only query (the checks' queries), with the common parameters bound."""
        self.prepare()
        with read_connection(self.engine) as conn:
            return [tuple(row) for row in conn.execute(text(sql), {**self.common_params(), **params})]

    # --- reads for the late-correction sensor ---------------------------------------------------

    def start_log_position(self) -> LogPosition:
        with read_connection(self.engine) as conn:
            return start_position(conn)

    def read_log_rows(self, position: LogPosition, limit: int) -> LogBatch:
        """New audit_log rows after `position` (see log_reader), as LogRows with parsed images."""
        with read_connection(self.engine) as conn:
            batch = read_new_rows(conn, position, log_sql.LOG_ROW_COLUMNS, limit)
        rows = [
            LogRow(id, table_name, record_id, action or "", _lenient_json(old), _lenient_json(new), parse_instant(changed_at))
            for id, table_name, record_id, action, old, new, changed_at in batch.rows
        ]
        return replace(batch, rows=rows)

    def created_at(self, records: set[tuple[str, str]]) -> dict[tuple[str, str], dt.datetime]:
        """The live created_at of these (table, id) records, for tenants, observations and requirements."""
        found = {}
        with read_connection(self.engine) as conn:
            for table in ("tenant", "observation", "compliance_requirement"):
                ids = sorted(record_id for t, record_id in records if t == table)
                for chunk in range(0, len(ids), 1000):
                    sql = text(log_sql.created_at(table)).bindparams(bindparam("ids", expanding=True))
                    for id, created in conn.execute(sql, {"ids": ids[chunk:chunk + 1000]}):
                        found[(table, id)] = parse_instant(created)
        return found

    # --- the old cron job, compared ----------------------------------------------------------------

    def legacy_snapshot_table(self) -> legacy.LegacyTable | None:
        """The old job's table, None when it does not exist; LegacyTableError when it cannot be compared."""
        with read_connection(self.engine) as conn:
            return legacy.find_legacy_table(conn, self.settings.legacy_snapshot_table)

    def write_legacy_snapshot_diff(self, start: dt.date, end: dt.date) -> WriteResult:
        """Without the old job's table, the days are emptied: there is nothing to compare."""
        self.prepare()
        sql = legacy.snapshot_diff(
            self.dialect, self.table_ref("legacy_snapshot_diff"), self.table_ref("dashboard_snapshot"), self.legacy_snapshot_table()
        )
        window = legacy.window_params(self.dialect, self.settings.tz, start, end)
        return self._replace_days("legacy_snapshot_diff", sql, start, end, **window)

    # --- the two write patterns ------------------------------------------------------------------

    def common_params(self) -> dict:
        return {
            "tz": self.settings.timezone,
            "ws": ENUM_WHITESPACE,
            "day_min": self.dialect.day_param(DAY_MIN),
            "day_max": self.dialect.day_param(DAY_MAX),
        }

    def _replace_days(self, name: str, sql: str, start: dt.date, end: dt.date, **params) -> WriteResult:
        if end < start:
            raise ValueError(f"empty range of days: {start}..{end}")
        self.prepare()
        began = time.perf_counter()
        target = self.table_ref(name)
        bounds = {
            "range_start": self.dialect.day_param(start),
            "range_after": self.dialect.day_param(end + dt.timedelta(days=1)),
        }
        with self.engine.begin() as conn:
            self.lock(conn, target)
            self.session_setup(conn)
            self._fill_calendar(conn, start - dt.timedelta(days=6), end)
            conn.execute(
                text(f"DELETE FROM {target} WHERE snapshot_date >= :range_start AND snapshot_date < :range_after"),
                bounds,
            )
            conn.execute(text(sql), {**self.common_params(), **bounds, **params})
            # Counted, not taken from rowcount: SQLite reports -1 for a WITH ... INSERT.
            rows, tenants = conn.execute(
                text(
                    f"SELECT count(*), count(DISTINCT tenant_id) FROM {target} "
                    "WHERE snapshot_date >= :range_start AND snapshot_date < :range_after"
                ),
                bounds,
            ).one()
            self._drop_calendar(conn)
        return WriteResult(name, rows, tenants, (end - start).days + 1, time.perf_counter() - began)

    def _replace_all(
        self,
        name: str,
        sql: str,
        calendar_span: Callable[[Connection], tuple[dt.date, dt.date] | None] | None = None,
        **params,
    ) -> WriteResult:
        self.prepare()
        began = time.perf_counter()
        target = self.table_ref(name)
        with self.engine.begin() as conn:
            self.lock(conn, target)
            span = calendar_span(conn) if calendar_span else None
            conn.execute(text(f"DELETE FROM {target}"))
            if calendar_span is None or span is not None:
                if span:
                    self._fill_calendar(conn, *span)
                conn.execute(text(sql), {**self.common_params(), **params})
            rows, tenants = conn.execute(text(f"SELECT count(*), count(DISTINCT tenant_id) FROM {target}")).one()
            if span:
                self._drop_calendar(conn)
        return WriteResult(name, rows, tenants, 0, time.perf_counter() - began)

    def lock(self, conn: Connection, target: str) -> None:
        # Serializes writers of one output table so that overlapping runs wait for each other;
        # readers of the table (the dashboard) are not blocked. Source tables are never locked.
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE"))

    def _fill_calendar(self, conn: Connection, first: dt.date, last: dt.date) -> None:
        calendar_table.drop(conn, checkfirst=True)
        calendar_table.create(conn)
        tz, start_month = self.settings.tz, self.settings.fiscal_year_start_month
        rows = []
        for day in days(first, last):
            quarter = fiscal_quarter(day, start_month)
            rows.append(
                {
                    "day": self.dialect.day_param(day),
                    "day_no": day.toordinal(),
                    "day_end": self.dialect.instant_param(day_end(day, tz)),
                    "fiscal_year": quarter.fiscal_year,
                    "fiscal_quarter": quarter.quarter,
                    "quarter_label": quarter.label,
                    "quarter_start": self.dialect.day_param(quarter.start),
                    "quarter_end": self.dialect.day_param(quarter.end),
                }
            )
        columns = ", ".join(rows[0])
        values = ", ".join(f":{c}" for c in rows[0])
        # One executemany, not a statement per day.
        conn.execute(text(f"INSERT INTO {CALENDAR} ({columns}) VALUES ({values})"), rows)

    def _drop_calendar(self, conn: Connection) -> None:
        calendar_table.drop(conn, checkfirst=True)


def _images_are_text(conn: Connection) -> bool:
    """True when audit_log keeps its row images in a column that is not json/jsonb."""
    columns = {c["name"]: c["type"] for c in inspect(conn).get_columns("audit_log")}
    return any(not isinstance(columns.get(name), JSON) for name in ("old_data", "new_data"))


def _lenient_json(value):
    """A JSON image as Python; invalid JSON becomes a string, which (not being an object) has no fields."""
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
