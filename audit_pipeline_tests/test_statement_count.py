"""Regression guard for set-based SQL: the statements a range issues do not grow with its days."""

import datetime as dt

from sqlalchemy import event, text

from audit_pipeline.current_state import update_current_findings
from audit_pipeline.history import update_record_history
from audit_pipeline import tables, writes

from .builder import SourceBuilder, warehouse


def statements_for(engine, days: int) -> list[str]:
    w = warehouse(engine)
    w.tables.prepare()
    issued = []
    listener = lambda conn, cursor, statement, *args: issued.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    first = dt.date(2024, 6, 1)
    last = first + dt.timedelta(days=days - 1)
    try:
        for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot,
                      w.writer.dashboard_snapshot, w.writer.compliance_trend_daily, w.writer.snapshot_change):
            write(first, last)
        w.writer.severity_trend_quarterly(first, last)
        w.writer.legacy_snapshot_diff(first, last)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return issued


def add_tenants(src, first, count):
    for t in range(first, first + count):
        src.tenant(f"t{t}")
        src.observation(f"o{t}", tenant=f"t{t}")
        src.requirement(f"r{t}", tenant=f"t{t}")


def test_statement_count_grows_with_neither_days_nor_tenants(engine):
    src = SourceBuilder(engine)
    tables.legacy_metadata.create_all(engine)  # the old job's table, read by the comparison
    add_tenants(src, 0, 3)
    # Ranges of a few days delete and insert; from writes.BULK_LOAD_DAYS on, a range that holds every
    # row of its table loads it without its indexes (a few more statements, as many for any length).
    night, week = statements_for(engine, 1), statements_for(engine, 7)
    short, long = statements_for(engine, writes.BULK_LOAD_DAYS), statements_for(engine, 120)
    add_tenants(src, 3, 12)
    more_tenants = statements_for(engine, 120)
    assert len(night) == len(week)
    assert len(short) == len(long) == len(more_tenants)
    assert len(long) < 150  # a dozen or so per asset (SQLite adds catalog PRAGMAs), not one per day


def history_update_statements(engine, src, changes: int) -> list[str]:
    """The statements of a history update that reads `changes` new log rows of as many records."""
    w = warehouse(engine)
    for i in range(changes):
        src.log("observation", f"o{i}", "2024-06-05 10:00:00", old={"severity": "HIGH"}, new={"severity": "LOW"})
    issued = []
    listener = lambda conn, cursor, statement, *args: issued.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert update_record_history(w).mode == "update"
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return issued


def test_a_history_update_issues_the_same_statements_for_one_record_or_many(engine):
    src = SourceBuilder(engine)
    add_tenants(src, 0, 30)
    one, many = history_update_statements(engine, src, 1), history_update_statements(engine, src, 30)
    assert len(one) == len(many) < 60


def current_findings_statements(engine, src, changes: int) -> list[str]:
    """The statements of a current-state update that reads `changes` new log rows of as many
    observations, each of which moves to another engagement and starts a chain."""
    w = warehouse(engine)
    update_current_findings(w)  # the first run: a rebuild
    with engine.begin() as conn:
        for i in range(changes):
            conn.execute(text(f"UPDATE observation SET repeat_of_id = 'o{i + 1}', engagement_id = 'e{i}' WHERE id = 'o{i}'"))
    for i in range(changes):
        src.log("observation", f"o{i}", "2024-06-05 10:00:00", new={"repeat_of_id": f"o{i + 1}"})
    issued = []
    listener = lambda conn, cursor, statement, *args: issued.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        update = update_current_findings(w)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert (update.mode, update.observations_touched) == ("update", changes)
    return issued


def test_a_current_findings_update_issues_the_same_statements_for_one_record_or_many(engine):
    src = SourceBuilder(engine)
    add_tenants(src, 0, 31)
    with engine.begin() as conn:  # one tenant: the chains stay within it
        conn.execute(text("UPDATE observation SET tenant_id = 't0'"))
    for i in range(31):
        src.engagement(f"e{i}", tenant="t0")
    one, many = current_findings_statements(engine, src, 1), current_findings_statements(engine, src, 30)
    assert len(one) == len(many) < 60
