"""A write that replaces every row of its table over a long range (a first backfill, a whole history
again) empties the table and loads it without its indexes (writes.BULK_LOAD_DAYS): the same rows as a
delete-then-insert, its primary key and indexes back, and a failure leaves the previous rows.

On both databases (SQLite keeps its primary key during the load: it cannot drop one).
"""

import datetime as dt

import pytest
from sqlalchemy import event, inspect, text

from audit_pipeline import writes

from .builder import SourceBuilder, all_rows, warehouse

FIRST, LAST = dt.date(2024, 5, 1), dt.date(2024, 7, 31)  # 92 days: at least BULK_LOAD_DAYS


def sources(engine) -> SourceBuilder:
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="HIGH", created="2024-05-10 10:00:00")
    src.log("observation", "o1", "2024-06-03 10:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.observation("o2", severity="LOW", created="2024-06-20 10:00:00", closed="2024-07-02 09:00:00")
    src.requirement("r1", status="COMPLIANT")
    return src


def write_all(w, first=FIRST, last=LAST):
    w.writer.severity_snapshot(first, last)
    w.writer.compliance_snapshot(first, last)
    w.writer.snapshot_change(first, last)


def indexes_and_key(engine, table: str) -> tuple:
    found = inspect(engine)
    return (tuple(found.get_pk_constraint(table)["constrained_columns"]),
            sorted(index["name"] for index in found.get_indexes(table)))


def statements_of(engine, run) -> list[str]:
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_whole_table_load_gives_the_rows_of_a_delete_and_insert_and_its_indexes_back(engine, monkeypatch):
    sources(engine)
    w = warehouse(engine)
    write_all(w)
    tables = ("severity_snapshot", "compliance_snapshot", "snapshot_change")
    shape = {table: indexes_and_key(engine, table) for table in tables}
    # Again over the same days: every row of each table is in the range, so each is loaded whole.
    seen = statements_of(engine, lambda: write_all(w))
    assert any(s.startswith("DROP INDEX") and "severity_snapshot_by_day" in s for s in seen)
    loaded = {table: sorted(map(repr, all_rows(engine, table))) for table in tables}
    assert {table: indexes_and_key(engine, table) for table in tables} == shape
    assert shape["severity_snapshot"][0] == ("tenant_id", "snapshot_date") and shape["severity_snapshot"][1]
    # The same days by delete-then-insert.
    monkeypatch.setattr(writes, "BULK_LOAD_DAYS", 10_000)
    seen = statements_of(engine, lambda: write_all(w))
    assert not any(s.startswith("DROP INDEX") for s in seen)
    assert {table: sorted(map(repr, all_rows(engine, table))) for table in tables} == loaded
    assert len(loaded["severity_snapshot"]) == (LAST - FIRST).days + 1


def test_a_range_that_leaves_rows_outside_it_deletes_and_inserts(engine):
    sources(engine)
    w = warehouse(engine)
    write_all(w)
    before = sorted(map(repr, all_rows(engine, "severity_snapshot")))
    seen = statements_of(engine, lambda: w.writer.severity_snapshot(FIRST + dt.timedelta(days=1), LAST))
    assert not any(s.startswith(("DROP INDEX", "TRUNCATE", "ALTER TABLE")) for s in seen)
    assert sorted(map(repr, all_rows(engine, "severity_snapshot"))) == before


def test_a_whole_table_load_that_fails_leaves_the_previous_rows_and_indexes(engine):
    sources(engine)
    w = warehouse(engine)
    write_all(w)
    before = sorted(map(repr, all_rows(engine, "severity_snapshot")))
    shape = indexes_and_key(engine, "severity_snapshot")

    def fail_after_the_load(conn, cursor, statement, *args):
        if statement.lstrip().startswith(("CREATE INDEX", "ALTER TABLE")) and "severity_snapshot" in statement:
            raise RuntimeError("the server went away")

    event.listen(engine, "before_cursor_execute", fail_after_the_load)
    try:
        with pytest.raises(Exception, match="the server went away"):
            w.writer.severity_snapshot(FIRST, LAST)
    finally:
        event.remove(engine, "before_cursor_execute", fail_after_the_load)
    assert sorted(map(repr, all_rows(engine, "severity_snapshot"))) == before
    assert indexes_and_key(engine, "severity_snapshot") == shape
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM severity_snapshot")).scalar() == (LAST - FIRST).days + 1
