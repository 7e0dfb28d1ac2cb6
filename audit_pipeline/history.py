"""Keeps the record history up to date: a night's work is that night's new log rows.

An update reads the audit_log rows its log reader has not read yet (`log_reader`: none skipped,
whatever order they commit in), parses them into `history_log_value`, and re-derives the history of
the records they touch, nothing else. A rebuild parses the whole log and derives every record. Both
run in one transaction with the reader's position, under a lock of the history's tables: the history
and its position always agree, and two runs never update it at once.

A rebuild happens on request (`full_rebuild`), on the first run, when the reporting time zone changed
(the history's days are that zone's days), and when the backlog of new rows is so large that a
rebuild is the cheaper way.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Column, Connection, MetaData, Table, Text, text

from .log_reader import Gap, LogPosition, read_new_rows, start_position
from .sql import history as sql
from .sql.checks import history_problems
from .tables import LOG_ID
from .warehouse import Warehouse

CONSUMER = "record_history"
# Kept in the position's JSON beside the log reader's fields: each history table's row count.
ROWS = "rows"
# Above this many new log rows, parsing the whole log again is cheaper than touching records one set
# at a time (and keeps the rows read in one go bounded).
MAX_UPDATE_ROWS = 200_000

_temporary = MetaData()
new_log_ids = Table(sql.NEW_LOG_IDS, _temporary, Column("id", LOG_ID, primary_key=True), prefixes=["TEMPORARY"])
touched_records = Table(
    sql.TOUCHED_RECORDS, _temporary, Column("record_table", Text, primary_key=True),
    Column("record_id", Text, primary_key=True), prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class HistoryUpdate:
    mode: str  # "rebuild" or "update"
    reason: str
    log_rows_read: int
    records_derived: int | None  # records whose history was derived (None: all of them, a rebuild)
    rows: dict[str, int]  # rows of each history table afterwards
    problems: dict[str, list[tuple]]  # per history table: its runs that break its shape, among those derived
    position: LogPosition
    given_up: tuple[Gap, ...]
    seconds: float


def update_record_history(w: Warehouse, full_rebuild: bool = False, now: float | None = None) -> HistoryUpdate:
    w.tables.prepare()
    began = time.perf_counter()
    log_values, positions = w.tables.ref("history_log_value"), w.tables.ref("history_log_position")
    histories = {kind: w.tables.ref(kind.history) for kind in sql.KINDS}
    params = w.tables.common_params()
    with w.engine.connect() as conn, w.tables.updating_history(conn):
        with conn.begin():
            for table in (positions, log_values, *histories.values()):
                w.tables.lock(conn, table)
            w.tables.session_setup(conn)
            saved = conn.execute(
                text(f"SELECT position, timezone FROM {positions} WHERE consumer = :consumer"), {"consumer": CONSUMER}
            ).first()
            reason, batch = _rebuild_reason(full_rebuild, saved, w.settings.timezone), None
            if reason is None:
                batch = read_new_rows(conn, LogPosition.from_json(saved.position), "id, table_name, record_id", MAX_UPDATE_ROWS, now)
                if len(batch.rows) >= MAX_UPDATE_ROWS:
                    reason, batch = f"more than {MAX_UPDATE_ROWS:,} new log rows", None
            if batch is not None:
                position, given_up = batch.position, batch.given_up
                records, rows, problems = _update(conn, w, batch, saved.position, histories, log_values, params)
                log_rows = len(batch.rows)
            else:
                position, given_up, records = start_position(conn, now), (), None
                if w.writer.concurrent_writes == 1:
                    rows, problems, log_rows = _rebuild(conn, w, histories, log_values, params)
            if batch is not None or w.writer.concurrent_writes == 1:
                _save_position(conn, positions, position, rows, w.settings.timezone)
        if batch is None and w.writer.concurrent_writes > 1:
            rows, problems, log_rows = _rebuild_at_once(conn, w, histories, log_values, positions, params)
            with conn.begin():
                _save_position(conn, positions, position, rows, w.settings.timezone)
    return HistoryUpdate(
        "update" if batch is not None else "rebuild", reason or "new log rows", log_rows, records, rows,
        problems, position, given_up, time.perf_counter() - began,
    )


def _update(conn: Connection, w: Warehouse, batch, saved_position: str, histories: dict, log_values: str, params: dict):
    """The new log rows parsed, and the history of the records they touch derived again."""
    problems = {kind.history: [] for kind in sql.KINDS}
    touched = {(table, record) for _, table, record in batch.rows if table in {k.log_table for k in sql.KINDS}}
    # Each table's rows are counted once, then kept up to date with the runs of the touched
    # records: counting a whole history every night would cost what the history holds.
    rows = _saved_rows(saved_position) or {kind.history: _count(conn, target) for kind, target in histories.items()}
    if touched:
        _fill_temporary(conn, batch.ids, touched)
        conn.execute(text(sql.load_log_values(w.dialect, log_values, only_new=True)), params)
        for kind, target in histories.items():
            count_touched = text(f"SELECT count(*) FROM {target} WHERE {sql.touched_runs(kind)}")
            rows[kind.history] -= conn.execute(count_touched).scalar_one()
            conn.execute(text(sql.delete_touched_history(kind, target)))
            conn.execute(text(sql.insert_history(w.dialect, kind, target, log_values, only_touched=True)), params)
            rows[kind.history] += conn.execute(count_touched).scalar_one()
        problems = _problems(conn, w, histories, only_touched=True)
        _drop_temporary(conn)
    return len(touched), rows, problems


def _rebuild(conn: Connection, w: Warehouse, histories: dict, log_values: str, params: dict):
    """The whole log parsed and every record derived, in the caller's transaction (one writer)."""
    _empty(conn, w, histories, log_values)
    conn.execute(text(sql.load_log_values(w.dialect, log_values, only_new=False)), params)
    conn.execute(text(f"ANALYZE {log_values}"))  # the derivation's plans depend on its size
    rows, problems = {}, {}
    for kind, target in histories.items():
        rows[kind.history], problems[kind.history] = _derive(conn, w, kind, target, log_values, params)
    w.tables.create_indexes(conn, "history_log_value")
    return rows, problems, _count(conn, log_values)


def _rebuild_at_once(conn: Connection, w: Warehouse, histories: dict, log_values: str, positions: str, params: dict):
    """A rebuild on several connections at once (transactions of their own): the log parsed in
    parts, then each kind's history derived, and the parsed log's indexes built by whichever
    connection is free first (only updates read them). The position is deleted first and saved
    last, so a failure half-way leaves "no history yet" (the next run rebuilds); the caller's lock
    on the history keeps every reader out until it is done (OutputTables.updating_history)."""
    with conn.begin():
        conn.execute(text(f"DELETE FROM {positions} WHERE consumer = :consumer"), {"consumer": CONSUMER})
        _empty(conn, w, histories, log_values)

    def in_transaction(work):
        with w.engine.begin() as worker:
            w.tables.session_setup(worker)
            return work(worker)

    parts = w.writer.concurrent_writes
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="audit-history") as pool:
        # Parts by log id, not by kind: the observations' rows are most of the log.
        loads = [pool.submit(in_transaction, lambda c, part=part: c.execute(
            text(sql.load_log_values(w.dialect, log_values, only_new=False, part=(part, parts))), params)) for part in range(parts)]
        for load in loads:
            load.result()
        with conn.begin():
            conn.execute(text(f"ANALYZE {log_values}"))  # the derivation's plans depend on its size
        derived = {kind: pool.submit(in_transaction, lambda c, kind=kind, target=target: _derive(c, w, kind, target, log_values, params))
                   for kind, target in histories.items()}
        indexed = pool.submit(in_transaction, lambda c: w.tables.create_indexes(c, "history_log_value"))
        results = {kind.history: future.result() for kind, future in derived.items()}
        indexed.result()
    with conn.begin():
        log_rows = _count(conn, log_values)
    return {table: rows for table, (rows, _) in results.items()}, {table: found for table, (_, found) in results.items()}, log_rows


def _empty(conn: Connection, w: Warehouse, histories: dict, log_values: str) -> None:
    """The parsed log and the histories emptied and their indexes dropped: loading a table and then
    indexing it is several times faster than keeping its indexes up to date row by row."""
    for table in (log_values, *histories.values()):
        conn.execute(text(w.dialect.empty(table)))
    for kind in histories:
        w.tables.drop_indexes(conn, kind.history)
    w.tables.drop_indexes(conn, "history_log_value")


def _derive(conn: Connection, w: Warehouse, kind, target: str, log_values: str, params: dict) -> tuple[int, list[tuple]]:
    """Every record of `kind` derived into its (empty) history, then indexed; its row count and its
    check's problems."""
    conn.execute(text(sql.insert_history(w.dialect, kind, target, log_values, only_touched=False)), params)
    problems = [tuple(row) for row in conn.execute(text(history_problems(w.dialect, target, kind.id_column, kind.value_column)), params)]
    rows = _count(conn, target)
    w.tables.create_indexes(conn, kind.history)  # last: it holds prepare's lock until the commit
    conn.execute(text(f"ANALYZE {target}"))  # the snapshots' plans read its new size
    return rows, problems


def _save_position(conn: Connection, positions: str, position: LogPosition, rows: dict, timezone: str) -> None:
    conn.execute(text(f"DELETE FROM {positions} WHERE consumer = :consumer"), {"consumer": CONSUMER})
    conn.execute(
        text(f"INSERT INTO {positions} (consumer, position, timezone) VALUES (:consumer, :position, :tz)"),
        {"consumer": CONSUMER, "position": json.dumps({**json.loads(position.to_json()), ROWS: rows}), "tz": timezone},
    )


def _rebuild_reason(requested: bool, saved, timezone: str) -> str | None:
    if requested:
        return "full rebuild requested"
    if saved is None:
        return "no history yet"
    if saved.timezone != timezone:
        return f"the reporting time zone changed from {saved.timezone} to {timezone}"
    return None


def _problems(conn: Connection, w: Warehouse, histories: dict, only_touched: bool) -> dict[str, list[tuple]]:
    """The history's check, on the records just derived (a night's few, or all after a rebuild)."""
    out = {}
    for kind, target in histories.items():
        records = sql.touched(kind) if only_touched else None
        query = history_problems(w.dialect, target, kind.id_column, kind.value_column, records)
        out[kind.history] = [tuple(row) for row in conn.execute(text(query), w.tables.common_params())]
    return out


def _fill_temporary(conn: Connection, ids: list[int], touched: set[tuple[str, str]]) -> None:
    for table in (new_log_ids, touched_records):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    conn.execute(new_log_ids.insert(), [{"id": i} for i in ids])
    conn.execute(touched_records.insert(), [{"record_table": t, "record_id": r} for t, r in sorted(touched)])


def _drop_temporary(conn: Connection) -> None:
    for table in (new_log_ids, touched_records):
        table.drop(conn, checkfirst=True)


def _saved_rows(position: str) -> dict[str, int] | None:
    """The history tables' row counts the last update left beside its log position (None: not kept)."""
    rows = json.loads(position).get(ROWS) if position.lstrip().startswith("{") else None
    return dict(rows) if rows else None


def _count(conn: Connection, table: str) -> int:
    return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

