"""Instants are read as UTC whatever the column type and the PostgreSQL session's time zone.

Prisma maps `DateTime` to `timestamp(3) without time zone` holding UTC. PostgreSQL turns such a value
into an instant in the session's time zone, so a database whose default is America/New_York would
move every naive instant by four or five hours, and day boundaries with it; and `timezone(zone, x)`
on a naive value takes it as wall-clock time *in* that zone. The history below has instants between
20:30 and 24:00 IST, which the first misreading moves to the next IST day, and between 00:00 and
05:30 IST, which the second moves to the day before.
"""

import datetime as dt

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql

from audit_pipeline import tables
from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import parse_database_url

from .builder import SourceBuilder, create_source_tables, rows, warehouse

# Prisma's DateTime and Json; the contract's timestamptz and json.
PRISMA, CONTRACT = "timestamp(3) without time zone, jsonb", "timestamptz, json"
COLUMN_TYPES = {
    PRISMA: (postgresql.TIMESTAMP(timezone=False, precision=3), postgresql.JSONB()),
    CONTRACT: (postgresql.TIMESTAMP(timezone=True), postgresql.JSON()),
}
RANGE = (dt.date(2024, 6, 8), dt.date(2024, 6, 13))


@pytest.fixture(params=list(COLUMN_TYPES))
def new_york_engine(request, new_york_pg_url):
    engine = create_database_engine(parse_database_url(new_york_pg_url))
    create_source_tables(engine, *COLUMN_TYPES[request.param])
    create_source_tables(engine, *COLUMN_TYPES[request.param], metadata=tables.legacy_metadata)
    engine.column_types = request.param
    yield engine
    engine.dispose()


def test_the_database_defaults_to_new_york_and_the_pipeline_sessions_to_utc(new_york_pg_url):
    plain = create_engine(new_york_pg_url)
    with plain.connect() as conn:
        assert conn.execute(text("SHOW TIME ZONE")).scalar_one() == "America/New_York"
    plain.dispose()
    ours = create_database_engine(parse_database_url(new_york_pg_url))
    with ours.connect() as conn:
        assert conn.execute(text("SHOW TIME ZONE")).scalar_one() == "UTC"
        conn.rollback()  # a rolled-back transaction does not undo it: it was set outside any
    with ours.connect() as conn:
        assert conn.execute(text("SHOW TIME ZONE")).scalar_one() == "UTC"
    ours.dispose()


def test_snapshots_read_either_column_type_as_utc(new_york_engine):
    engine = new_york_engine
    src = SourceBuilder(engine)
    src.tenant("t1", created="2024-06-10 23:30:00")  # 18:00 UTC: in the snapshot of 06-10
    # closed 2024-06-12 02:00 IST (06-11 20:30 UTC): open on 06-10 and 06-11, not on 06-12
    src.observation("o1", severity="CRITICAL", created="2024-06-10 23:30:00", closed="2024-06-12 02:00:00")
    # MEDIUM -> HIGH at 2024-06-11 03:00 IST (06-10 21:30 UTC): MEDIUM as of T(06-10), from the old image
    src.log("observation", "o1", "2024-06-11 03:00:00", old={"severity": "MEDIUM"}, new={"severity": "HIGH"})
    # HIGH -> CRITICAL at 2024-06-11 23:00 IST (17:30 UTC): CRITICAL as of T(06-11)
    src.log("observation", "o1", "2024-06-11 23:00:00", old={"severity": "HIGH"}, new={"severity": "CRITICAL"})
    src.requirement("r1", status="COMPLIANT", created="2024-06-10 22:00:00")  # counts from 06-10
    if engine.column_types == PRISMA:
        with engine.connect() as conn:  # stored as Prisma stores it: the UTC wall-clock time
            stored = conn.execute(text("SELECT CAST(created_at AS text) FROM tenant")).scalar_one()
        assert stored == "2024-06-10 18:00:00"

    w = warehouse(engine)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot, w.writer.dashboard_snapshot):
        write(*RANGE)

    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 9)) == {}
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 10))["t1"] == dict(
        critical_open=0, high_open=0, medium_open=1, low_open=0, open_total=1)
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 11))["t1"]["critical_open"] == 1
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 12))["t1"]["open_total"] == 0
    assert rows(engine, "compliance_snapshot", dt.date(2024, 6, 10))["t1"]["compliant"] == 1
    captured = rows(engine, "dashboard_snapshot", dt.date(2024, 6, 10))["t1"]["captured_at"]
    assert captured == dt.datetime(2024, 6, 10, 18, 30, tzinfo=dt.timezone.utc)  # T(06-10)


def test_the_legacy_comparison_reads_either_column_type_as_utc(new_york_engine):
    from . import test_legacy

    engine = new_york_engine
    test_legacy.history(engine)
    test_legacy.add_legacy_rows(engine)  # into the table made above, with these column types
    if engine.column_types == PRISMA:
        with engine.connect() as conn:
            stored = conn.execute(text('SELECT CAST("capturedAt" AS text) FROM "DashboardSnapshot" WHERE id = \'D\'')).scalar_one()
        assert stored == "2024-06-10 19:30:00"  # 2024-06-11 01:00 IST, as UTC wall-clock time
    warehouse(engine).writer.legacy_snapshot_diff(*test_legacy.RANGE)
    test_legacy.assert_expected_rows(engine)
