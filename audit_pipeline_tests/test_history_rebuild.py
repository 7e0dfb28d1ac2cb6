"""The record history's rebuild and its lock: readers never see a history half written.

On PostgreSQL a rebuild parses and derives the two kinds at once, in transactions of their own
(history.py), under the history's lock (OutputTables.updating_history); on SQLite it is one
transaction. Either way a reader waits for it or sees the whole previous history, and a rebuild that
fails half-way is done again by the next run.
"""

import datetime as dt
import threading

import pytest
from sqlalchemy import text

from audit_pipeline import history
from audit_pipeline.dialect import PostgresDialect
from audit_pipeline.history import update_record_history
from audit_pipeline.settings import load_settings
from audit_pipeline.warehouse import Warehouse

from .builder import SourceBuilder, all_rows, rows, warehouse

DAY = dt.date(2024, 6, 5)


def sources(engine) -> SourceBuilder:
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="HIGH", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-03 10:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.requirement("r1", status="COMPLIANT")
    return src


def histories(engine) -> dict:
    return {table: sorted(map(repr, all_rows(engine, table))) for table in ("observation_history", "requirement_history")}


def saved_position(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT position FROM history_log_position WHERE consumer = 'record_history'")).scalar()


def test_a_rebuild_that_fails_half_way_is_done_again_by_the_next_run(engine, monkeypatch):
    sources(engine)
    w = warehouse(engine)
    before = histories(engine)
    derive = history._derive

    def failing(conn, w, kind, *args):
        if kind.history == "requirement_history":
            raise RuntimeError("the server went away")
        return derive(conn, w, kind, *args)

    monkeypatch.setattr(history, "_derive", failing)
    with pytest.raises(RuntimeError, match="went away"):
        update_record_history(w, full_rebuild=True)
    if engine.dialect.name == "sqlite":
        # One transaction: the previous history and its position are as they were.
        assert histories(engine) == before and saved_position(engine) is not None
    else:
        # Several transactions: the position is gone, so no update builds on a half-written history.
        assert saved_position(engine) is None
    monkeypatch.setattr(history, "_derive", derive)
    update = update_record_history(w)
    assert (update.mode, update.reason) == (("update", "new log rows") if engine.dialect.name == "sqlite"
                                            else ("rebuild", "no history yet"))
    assert histories(engine) == before
    assert update.rows == {table: len(all_rows(engine, table)) for table in ("observation_history", "requirement_history")}


@pytest.mark.postgres
def test_readers_wait_while_the_history_is_updated(pg_databases):
    from audit_pipeline.resources import create_database_engine
    from audit_pipeline.settings import parse_database_url

    engine = create_database_engine(parse_database_url(pg_databases.create()))
    try:
        sources(engine)
        w = warehouse(engine)
        done = threading.Event()

        def read():
            w.writer.severity_snapshot(DAY, DAY)
            done.set()

        with engine.connect() as conn, w.tables.updating_history(conn):
            reader = threading.Thread(target=read)
            reader.start()
            assert not done.wait(1.5)  # the snapshot's transaction waits for the history
        reader.join(10)
        assert done.is_set()
        assert rows(engine, "severity_snapshot", DAY)["t1"]["high_open"] == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_process_starting_during_a_rebuild_does_not_break_it(pg_databases, monkeypatch):
    # A rebuild drops the indexes of the parsed log and of the histories while it loads them; a run
    # starting meanwhile creates the indexes it finds missing (OutputTables.prepare). The rebuild must
    # finish all the same.
    from audit_pipeline.resources import create_database_engine
    from audit_pipeline.settings import parse_database_url

    engine = create_database_engine(parse_database_url(pg_databases.create()))
    try:
        sources(engine)
        w = warehouse(engine)
        update_record_history(w)
        before = histories(engine)
        derive = history._derive

        def another_run_starts_first(conn, *args):
            Warehouse(engine, load_settings({})).tables.prepare()  # a new process: its own tables object
            return derive(conn, *args)

        monkeypatch.setattr(history, "_derive", another_run_starts_first)
        update = update_record_history(w, full_rebuild=True)
        assert isinstance(w.dialect, PostgresDialect) and w.writer.concurrent_writes > 1  # the rebuild at once
        assert update.mode == "rebuild" and histories(engine) == before
        with engine.connect() as conn:
            found = set(conn.execute(text("SELECT indexname FROM pg_indexes")).scalars())
        assert {"history_log_value_by_log_id", "history_log_value_by_record", "observation_history_by_valid_to",
                "observation_history_by_valid_from", "requirement_history_by_valid_to",
                "requirement_history_by_valid_from"} <= found
    finally:
        engine.dispose()
