"""The pipeline's reads of one database: the asset checks' queries, the late-correction sensor's
new log rows, and the old cron job's table.

Every read goes through `read_connection`, which takes no SQLite write lock, so reads never wait
for (or block) the writes of writes.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Callable, Iterator
from dataclasses import replace

from sqlalchemy import bindparam, text

from .sql import legacy, log as log_sql
from .sql.common import day_span
from .calendar import parse_day, parse_instant
from .corrections import LogRow
from .dialect import read_connection
from .log_reader import LogBatch, LogPosition, read_new_rows, start_position
from .output_tables import OutputTables


class Reader:
    def __init__(self, tables: OutputTables):
        self.tables = tables

    # --- reads for the asset checks --------------------------------------------------------------

    def find(self, sql: str, **params) -> list[tuple]:
        """Rows of a read-only query (the checks' queries), with the common parameters bound."""
        with self.reads() as find:
            return find(sql, **params)

    @contextlib.contextmanager
    def reads(self, settings: tuple[str, ...] = ()) -> Iterator[Callable[..., list[tuple]]]:
        """find(sql, **params) for several reads in one read-only transaction (one state of the
        tables), after the history's updates and with the bulk settings (sorts in memory, no JIT)
        and `settings`."""
        self.tables.prepare()
        with read_connection(self.tables.engine) as conn, conn.begin():
            self.tables.reading_history(conn)
            for setting in (*self.tables.dialect.bulk_settings, *settings):
                conn.execute(text(setting))
            yield lambda sql, **params: [tuple(row) for row in conn.execute(text(sql), {**self.tables.common_params(), **params})]

    def day_span(self, table: str) -> tuple[dt.date, dt.date] | None:
        """The first and last day the daily output table `table` holds; None when it is empty."""
        first, last = self.find(day_span(self.tables.ref(table)))[0]
        return None if first is None else (parse_day(first), parse_day(last))

    # --- reads for the late-correction sensor ---------------------------------------------------

    def start_log_position(self) -> LogPosition:
        with read_connection(self.tables.engine) as conn:
            return start_position(conn)

    def read_log_rows(self, position: LogPosition, limit: int) -> LogBatch:
        """New audit_log rows after `position` (see log_reader), as LogRows with parsed images."""
        with read_connection(self.tables.engine) as conn:
            batch = read_new_rows(conn, position, log_sql.LOG_ROW_COLUMNS, limit)
        rows = [
            LogRow(id, table_name, record_id, action or "", _lenient_json(old), _lenient_json(new), parse_instant(changed_at))
            for id, table_name, record_id, action, old, new, changed_at in batch.rows
        ]
        return replace(batch, rows=rows)

    def created_at(self, records: set[tuple[str, str]]) -> dict[tuple[str, str], dt.datetime]:
        """The live created_at of these (table, id) records, for tenants, observations and requirements."""
        found = {}
        with read_connection(self.tables.engine) as conn:
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
        with read_connection(self.tables.engine) as conn:
            return legacy.find_legacy_table(conn, self.tables.settings.legacy_snapshot_table)


def _lenient_json(value):
    """A JSON image as Python; invalid JSON becomes a string, which (not being an object) has no fields."""
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
