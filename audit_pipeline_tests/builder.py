"""Hand-built source histories for tests: instants are written as IST wall-clock text."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, text

from audit_pipeline import tables
from audit_pipeline.settings import load_settings
from audit_pipeline.history import update_record_history
from audit_pipeline.warehouse import Warehouse

IST = ZoneInfo("Asia/Kolkata")


def ist(text_value: str | None) -> dt.datetime | None:
    """'2024-06-10 23:59:59' in IST, as an aware UTC instant (how SQLite must receive it)."""
    if text_value is None:
        return None
    return dt.datetime.fromisoformat(text_value).replace(tzinfo=IST).astimezone(dt.timezone.utc)


class SourceBuilder:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._log_id = 0
        tables.source_metadata.create_all(engine)

    def _insert(self, table, **row):
        with self.engine.begin() as conn:
            conn.execute(insert(table), [row])

    def tenant(self, id="t1", created="2024-01-01 10:00:00", onboarded=True, name=None):
        self._insert(tables.tenant, id=id, name=name or f"Bank {id}", onboarding_completed=onboarded, created_at=ist(created))
        return id

    def engagement(self, id, tenant="t1", name="Engagement", status="IN_PROGRESS"):
        self._insert(tables.audit_engagement, id=id, tenant_id=tenant, name=name, status=status,
                     start_date=dt.date(2024, 4, 1), end_date=dt.date(2024, 6, 30))
        return id

    def observation(self, id, tenant="t1", severity="HIGH", created="2024-05-01 10:00:00", closed=None,
                    status="OPEN", repeat_of=None, engagement=None, title=None):
        self._insert(tables.observation, id=id, tenant_id=tenant, title=title or f"Finding {id}", severity=severity,
                     status=status, created_at=ist(created), closed_at=ist(closed), due_date=None, assigned_to=None,
                     engagement_id=engagement, repeat_of_id=None)
        if repeat_of is not None:
            self.link(id, repeat_of)
        return id

    def link(self, id, repeat_of):
        with self.engine.begin() as conn:
            conn.execute(tables.observation.update().where(tables.observation.c.id == id).values(repeat_of_id=repeat_of))

    def requirement(self, id, tenant="t1", status="COMPLIANT", created="2024-05-01 10:00:00"):
        self._insert(tables.compliance_requirement, id=id, tenant_id=tenant, title=f"Requirement {id}",
                     status=status, created_at=ist(created))
        return id

    def log(self, table, record_id, at, old=None, new=None, action="UPDATE", tenant="t1", raw=False):
        """One audit_log row. With raw=True, old/new are stored as given text (SQLite only)."""
        self._log_id += 1
        if raw:
            with self.engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO audit_log (id, tenant_id, table_name, record_id, action, old_data, new_data, changed_at) "
                         "VALUES (:id, :tenant, :table, :record, :action, :old, :new, :at)"),
                    dict(id=self._log_id, tenant=tenant, table=table, record=record_id, action=action,
                         old=old, new=new, at=ist(at).strftime("%Y-%m-%d %H:%M:%S.%f")),
                )
            return
        self._insert(tables.audit_log, id=self._log_id, tenant_id=tenant, table_name=table, record_id=record_id,
                     action=action, old_data=old, new_data=new, changed_at=ist(at))


def warehouse(engine: Engine, **env) -> Warehouse:
    """A warehouse on the sources as they are now: its record history rebuilt first (tests write live
    rows without log rows, like rows written before the audit trigger existed)."""
    w = Warehouse(engine, load_settings(env))
    update_record_history(w, full_rebuild=True)
    return w


def number(value):
    """A numeric column's value as a Decimal, whatever the database returned."""
    if value is None:
        return None
    return Decimal(str(value))


DATE_COLUMNS = ("snapshot_date", "original_date", "as_of_date", "quarter_start", "quarter_end", "valid_from", "valid_to")


def all_rows(engine: Engine, table: str, day: dt.date | None = None) -> list[dict]:
    """Output rows with numbers as Decimals (or ints), dates as dates and JSON parsed, whatever the database."""
    sql = f"SELECT * FROM {table}" + (" WHERE snapshot_date = :day" if day else "")
    params = {"day": day.isoformat() if engine.dialect.name == "sqlite" else day} if day else {}
    out = []
    with engine.connect() as conn:
        for r in conn.execute(text(sql), params):
            row = {}
            for k, v in r._mapping.items():
                if isinstance(v, (float, Decimal)):
                    v = number(v)
                elif k == "metrics" and isinstance(v, str):
                    v = json.loads(v, parse_float=Decimal)
                elif k in DATE_COLUMNS and isinstance(v, str):
                    v = dt.date.fromisoformat(v)
                row[k] = v
            out.append(row)
    return out


def rows(engine: Engine, table: str, day: dt.date | None = None, key: str = "tenant_id") -> dict:
    """all_rows by `key` (one day's rows without their snapshot_date when `day` is given)."""
    out = {}
    for row in all_rows(engine, table, day):
        if day:
            row.pop("snapshot_date")
        out[row.pop(key)] = row
    return out


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def sqlite_engine(path) -> Engine:
    from audit_pipeline.resources import create_database_engine
    from sqlalchemy.engine import URL

    return create_database_engine(URL.create("sqlite", database=str(path)))


def create_source_tables(engine: Engine, instant_type, json_type=None, metadata=tables.source_metadata) -> None:
    """The source tables (or those of `metadata`) with every instant column of `instant_type` and
    every JSON column of `json_type`: Prisma's `DateTime` is `timestamp(3) without time zone` holding
    UTC, its `Json` is jsonb."""
    from sqlalchemy import JSON, DateTime, MetaData

    copies = MetaData()
    for table in metadata.sorted_tables:
        copy = table.to_metadata(copies)
        for column in copy.columns:
            if isinstance(column.type, DateTime):
                column.type = instant_type
            elif json_type is not None and isinstance(column.type, JSON):
                column.type = json_type
    copies.create_all(engine)
def change_rows(engine: Engine, day: dt.date | None = None) -> dict[tuple, dict]:
    """snapshot_change by (tenant, record table, record id) for one day, or by (day, tenant, record
    table, record id) for all of them."""
    out = {}
    for row in all_rows(engine, "snapshot_change", day):
        key = (row.pop("tenant_id"), row.pop("record_table"), row.pop("record_id"))
        snapshot_date = row.pop("snapshot_date")
        out[key if day else (snapshot_date, *key)] = row
    return out


@contextlib.contextmanager
def instance_at(home):
    """The Dagster instance in the directory `home`, opened as its processes open it: with
    DAGSTER_HOME naming it (the local instance's event log keeps its files there)."""
    import dagster as dg

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if saved is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = saved
