"""The tables the pipeline owns, on one database: their names, their DDL and their locks.

`prepare()` creates missing output tables and refuses to touch an existing one whose columns
differ from the contract (`OutputSchemaError`). Writers of the same output table are serialized by
`lock()` (PostgreSQL: a table lock on that output table only; SQLite: its database lock), so
overlapping runs wait instead of colliding. The writes (writes.py) and the reads (reads.py) both
start from here.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import Connection, Engine, inspect, text

from .dialect import DAY_MAX, DAY_MIN, ENUM_WHITESPACE, PG_SAFE_JSON_FUNCTION, Dialect, PostgresDialect, dialect_for
from .settings import Settings
from .tables import output_metadata

# pg_advisory_xact_lock key that serializes the creation of the output tables and of their indexes
# across processes (`prepare`, and a rebuild that drops indexes while it loads: `drop_indexes`).
PREPARE_LOCK_KEY = 0x41554449545F50  # "AUDIT_P"
# Advisory lock key of the record history: held (exclusive, for the session) while the history is
# brought up to date, taken shared by every transaction that may read it (see `reading_history`).
HISTORY_LOCK_KEY = 0x41554449545F48  # "AUDIT_H"


class OutputSchemaError(RuntimeError):
    """An output table exists with columns that do not match the contract."""


class OutputTables:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.dialect: Dialect = dialect_for(engine)
        self.metadata = output_metadata(settings.output_schema)
        self._prepared = False

    def ref(self, name: str) -> str:
        """The quoted (and schema-qualified) name of an output table, for splicing into SQL."""
        table = self.metadata.tables[self.key(name)]
        return self.engine.dialect.identifier_preparer.format_table(table)

    def key(self, name: str) -> str:
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
                self._lock_ddl(conn)
                schema = self.settings.output_schema
                if schema and schema not in inspect(conn).get_schema_names():
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))  # a validated identifier
            columns, indexes = _catalog(conn, self.settings.output_schema, [t.name for t in self.metadata.sorted_tables])
            existing = self._check_existing_columns(columns)
            self.metadata.create_all(conn, tables=[t for t in self.metadata.sorted_tables if t.name not in existing],
                                     checkfirst=False)
            for table in self.metadata.sorted_tables:  # tables made before an index was added
                if table.name in existing:
                    for index in table.indexes:
                        if index.name not in indexes.get(table.name, set()):
                            index.create(conn)
            if isinstance(self.dialect, PostgresDialect):
                self.dialect.images_are_text = _images_are_text(conn)
        self._prepared = True

    def session_setup(self, conn: Connection) -> None:
        """What every writing transaction runs first: the dialect's settings for statements that
        read and write whole tables, and the JSON function text images need."""
        for setting in self.dialect.bulk_settings:
            conn.execute(text(setting))
        if isinstance(self.dialect, PostgresDialect) and self.dialect.images_are_text:
            conn.exec_driver_sql(PG_SAFE_JSON_FUNCTION)

    def _check_existing_columns(self, columns: dict[str, set[str]]) -> set[str]:
        """The output tables that exist (`columns`: the columns of each); an error if one of them has
        other columns than the contract's."""
        existing = set(columns)
        for table in self.metadata.sorted_tables:
            if table.name not in existing:
                continue
            found = columns[table.name]
            expected = {c.name for c in table.columns}
            if found != expected:
                missing = ", ".join(sorted(expected - found)) or "none"
                unexpected = ", ".join(sorted(found - expected)) or "none"
                raise OutputSchemaError(
                    f"output table {table.name} exists with other columns than the contract's "
                    f"(missing: {missing}; unexpected: {unexpected}); it was left untouched"
                )
        return existing

    @contextlib.contextmanager
    def updating_history(self, conn: Connection):
        """Hold the history's lock on `conn`'s session: no transaction that reads the history
        (`reading_history`) runs meanwhile, and no other update. A rebuild on PostgreSQL writes in
        several transactions at once (history.py); readers must not see it half done."""
        if conn.dialect.name != "postgresql":
            yield  # SQLite: one writer, and the update is one transaction
            return
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": HISTORY_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": HISTORY_LOCK_KEY})
            conn.commit()

    def drop_indexes(self, conn: Connection, name: str) -> None:
        """Drop the indexes of output table `name` (a rebuild loads it without them), under the lock
        `prepare` holds while it creates the indexes it finds missing."""
        self._lock_ddl(conn)
        for index in self.metadata.tables[self.key(name)].indexes:
            index.drop(conn, checkfirst=True)

    def create_indexes(self, conn: Connection, name: str) -> None:
        """Create the indexes of output table `name` that are missing: another process's `prepare`
        may have created them while they were dropped."""
        self._lock_ddl(conn)
        for index in self.metadata.tables[self.key(name)].indexes:
            index.create(conn, checkfirst=True)

    @contextlib.contextmanager
    def loading_without_indexes(self, conn: Connection, name: str):
        """Load output table `name` without its indexes (and, on PostgreSQL, its primary key), then
        build them: for a table emptied and filled again, several times faster than keeping them up
        to date row by row. All in the caller's transaction: no other session ever sees them missing
        (it waits for the table until the commit), and a duplicate key fails it all the same, when
        the primary key is added again."""
        table = self.metadata.tables[self.key(name)]
        target = self.ref(name)
        primary_key = None
        if conn.dialect.name == "postgresql":
            primary_key = conn.execute(text(
                "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:table AS regclass) AND contype = 'p'"
            ), {"table": target}).scalar()
        if primary_key:
            conn.execute(text(f'ALTER TABLE {target} DROP CONSTRAINT "{primary_key}"'))
        for index in table.indexes:
            index.drop(conn)
        yield
        if primary_key:
            columns = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
            conn.execute(text(f'ALTER TABLE {target} ADD CONSTRAINT "{primary_key}" PRIMARY KEY ({columns})'))
        for index in table.indexes:
            index.create(conn)

    def _lock_ddl(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PREPARE_LOCK_KEY})

    def reading_history(self, conn: Connection) -> None:
        """Called first in a transaction that may read the history: wait while it is updated."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": HISTORY_LOCK_KEY})

    def lock(self, conn: Connection, target: str) -> None:
        # Serializes writers of one output table so that overlapping runs wait for each other;
        # readers of the table (the dashboard) are not blocked. Source tables are never locked.
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE"))

    def common_params(self) -> dict:
        """The parameters every statement of `sql/` may use, bound to every write and read."""
        return {
            "tz": self.settings.timezone,
            "ws": ENUM_WHITESPACE,
            "day_min": self.dialect.day_param(DAY_MIN),
            "day_max": self.dialect.day_param(DAY_MAX),
        }


def _catalog(conn: Connection, schema: str | None, names: list[str]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Of the tables `names` that exist in `schema` (None: the connection's): their columns and
    their index names. Every run asks, before its first write: on PostgreSQL two catalog queries
    instead of SQLAlchemy's reflection (a dozen, a tenth of a second of every night)."""
    if conn.dialect.name != "postgresql":
        inspector = inspect(conn)
        existing = sorted(set(inspector.get_table_names(schema=schema)) & set(names))
        if not existing:
            return {}, {}
        columns = inspector.get_multi_columns(schema=schema, filter_names=existing)
        indexes = inspector.get_multi_indexes(schema=schema, filter_names=existing)
        return ({name: {c["name"] for c in columns[(schema, name)]} for name in existing},
                {name: {i["name"] for i in indexes.get((schema, name), [])} for name in existing})
    in_schema = {"schema": schema, "names": names}
    columns: dict[str, set[str]] = {}
    for table, column in conn.execute(text(
        "SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = coalesce(:schema, current_schema()) AND c.relkind IN ('r', 'p') AND c.relname = ANY(:names)"
    ), in_schema):
        columns.setdefault(table, set()).add(column)
    indexes: dict[str, set[str]] = {}
    for table, index in conn.execute(text(
        "SELECT tablename, indexname FROM pg_indexes "
        "WHERE schemaname = coalesce(:schema, current_schema()) AND tablename = ANY(:names)"
    ), in_schema):
        indexes.setdefault(table, set()).add(index)
    return columns, indexes


def _images_are_text(conn: Connection) -> bool:
    """True when audit_log (PostgreSQL, as the connection finds it) keeps its row images in a column
    that is not json/jsonb."""
    types = dict(conn.execute(text(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = to_regclass('audit_log') AND attname IN ('old_data', 'new_data') AND NOT attisdropped"
    )).all())
    return any(types.get(name) not in ("json", "jsonb") for name in ("old_data", "new_data"))
