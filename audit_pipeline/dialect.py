"""The one SQL dialect layer: the few expressions that SQLite and PostgreSQL spell differently.

Every query in `sql/` is written once and asks this module for those fragments. The fragments
are built from code-defined column names only; values always travel as bound parameters (`:tz`,
`:ws`, ...), never inside the SQL text.

SQLite has no time zones and no timestamp type: instants are text. Two small Python functions,
registered on every SQLite connection, turn such text into a UTC instant (for ordering) and into the
local day in the reporting time zone (for day arithmetic). PostgreSQL does both natively.

PostgreSQL instants may be `timestamptz` or, as Prisma makes every `DateTime`, `timestamp(3) without
time zone` holding UTC. Every instant is cast to timestamptz before it is compared or converted to a
local day: a no-op for timestamptz, and for a naive column a reading in the session's time zone,
which `use_utc_sessions` makes UTC on every connection. So both column types are read as UTC
instants, whatever the server's, database's or role's time zone.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, event

from .calendar import local_date, parse_instant

# Characters trimmed from enum values before they are compared (the contract: "trimming spaces";
# tabs and line breaks are stray spaces too).
ENUM_WHITESPACE = " \t\r\n"

# Stand-ins for -infinity and +infinity in day arithmetic, valid dates on both databases.
DAY_MIN = dt.date(1, 1, 1)
DAY_MAX = dt.date(9999, 12, 31)


class Dialect:
    """SQL fragments for one database. Arguments are SQL expressions written in code."""

    name: str

    def instant(self, expr: str) -> str:
        """An instant that orders correctly."""
        raise NotImplementedError

    def local_day(self, expr: str) -> str:
        """The day (in the reporting time zone, bound as :tz) on which an instant falls."""
        raise NotImplementedError

    # Reading one field of a JSON row image takes three steps, so that the image is parsed once:
    # json_field() extracts it (in a CTE marked `materialized`), json_present() and json_value()
    # read the extracted column (in the next).

    # Put after `AS` in a CTE whose expressions must be computed once per row. PostgreSQL inlines a
    # CTE that is read once, and would then parse an image once for every reference to its field.
    materialized = ""
    # Put after `AS` in a CTE read more than once that is cheaper to compute again than to store:
    # PostgreSQL would otherwise write it out once (to disk, past work_mem) and read it back.
    inlined = ""

    def json_field(self, column: str, field: str) -> str:
        """The image's `field`, in whatever form json_present/json_value read."""
        raise NotImplementedError

    def json_present(self, extracted: str, field: str) -> str:
        """True when the image is a JSON object with key `field` (whatever its value, null included)."""
        raise NotImplementedError

    def json_value(self, extracted: str, field: str) -> str:
        """The field's value as text; NULL when absent or JSON null."""
        raise NotImplementedError

    def json_object(self, *pairs: tuple[str, str]) -> str:
        raise NotImplementedError

    def trim_ws(self, expr: str) -> str:
        """`expr` without leading and trailing ENUM_WHITESPACE (bound as :ws)."""
        raise NotImplementedError

    def greatest(self, *exprs: str) -> str:
        raise NotImplementedError

    def least(self, *exprs: str) -> str:
        raise NotImplementedError

    def find(self, haystack: str, needle: str) -> str:
        """1-based position of `needle` in `haystack`, 0 when absent."""
        raise NotImplementedError

    def same(self, a: str, b: str) -> str:
        """True when `a` and `b` are equal or both null (each operand written once, so that an
        expensive expression is not evaluated twice)."""
        raise NotImplementedError

    def next_day(self, day: str) -> str:
        """The day after `day`."""
        raise NotImplementedError

    def previous_day(self, day: str) -> str:
        """The day before a day expression (calendar arithmetic: no time zone involved)."""
        raise NotImplementedError

    def as_day(self, param: str) -> str:
        """A bound day parameter where its type must be known (a recursive CTE's first row)."""
        return param

    def empty(self, table: str) -> str:
        """A statement that empties one of the pipeline's own tables, inside a transaction."""
        return f"DELETE FROM {table}"

    # Statements run first in every transaction of the pipeline that reads or writes whole tables.
    bulk_settings: tuple[str, ...] = ()

    # Whether a FULL JOIN of two large row sets is hashed (PostgreSQL), not nested loops (SQLite).
    hashes_full_joins = False

    def normalized_enum(self, expr: str) -> str:
        return f"upper({self.trim_ws(expr)})"

    def day_param(self, day: dt.date):
        """A date as it is bound for comparison with the day expressions above."""
        return day

    def instant_param(self, instant: dt.datetime):
        return instant


    # Numbers inside a JSON document (the dashboard's metrics): json_document() reads a column once
    # (in a CTE), json_number() takes one number out of the result by its path of keys.

    def json_document(self, column: str) -> str:
        """The column's JSON in the form json_number reads; NULL when it is not JSON."""
        raise NotImplementedError

    def json_number(self, document: str, path: tuple[str, ...]) -> str:
        """The JSON number at `path` (keys written in code), as a number; NULL when absent or not a
        number (a string, a boolean, JSON null)."""
        raise NotImplementedError


# For an audit_log whose images are stored in a text column (not json/jsonb): invalid JSON reads as
# "no image" instead of failing the statement. Session-local (pg_temp), so nothing is created in
# the application's schemas; needs only the TEMP privilege every role has by default.
PG_SAFE_JSON_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.audit_pipeline_json(value text) RETURNS json
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RETURN value::json;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$
"""


class PostgresDialect(Dialect):
    name = "postgresql"

    materialized = "MATERIALIZED"
    inlined = "NOT MATERIALIZED"
    hashes_full_joins = True

    def __init__(self, images_are_text: bool = False):
        self.images_are_text = images_are_text

    def _image(self, column: str) -> str:
        return f"pg_temp.audit_pipeline_json({column})" if self.images_are_text else column

    def instant(self, expr: str) -> str:
        # A no-op on timestamptz (PostgreSQL adds no cast between equal types); a naive timestamp
        # is read in the session's time zone, UTC (see use_utc_sessions).
        return f"CAST({expr} AS timestamptz)"

    def local_day(self, expr: str) -> str:
        # timezone(zone, timestamp) would take a naive value as wall-clock time *in* that zone:
        # the cast first makes it an instant.
        return f"CAST(timezone(CAST(:tz AS text), {self.instant(expr)}) AS date)"

    def json_field(self, column: str, field: str) -> str:
        # `->` yields SQL NULL for a missing key and for non-objects (arrays, scalars), but JSON
        # null for a key that is present with a null value: exactly "has that field".
        return f"({self._image(column)} -> '{field}')"

    def json_present(self, extracted: str, field: str) -> str:
        return f"({extracted} IS NOT NULL)"

    def json_value(self, extracted: str, field: str) -> str:
        return f"({extracted} #>> '{{}}')"  # the JSON value as text: unquoted string, NULL for null

    def json_object(self, *pairs: tuple[str, str]) -> str:
        return "json_build_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def trim_ws(self, expr: str) -> str:
        return f"btrim({expr}, CAST(:ws AS text))"

    def bytewise(self, expr: str) -> str:
        """`expr` compared byte by byte, for window partitions on ids: the same groups as the
        database's collation (equal means equal bytes), sorted several times faster."""
        return f'{expr} COLLATE "C"'

    def greatest(self, *exprs: str) -> str:
        return f"GREATEST({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"LEAST({', '.join(exprs)})"

    def find(self, haystack: str, needle: str) -> str:
        return f"strpos({haystack}, {needle})"

    def same(self, a: str, b: str) -> str:
        return f"({a} IS NOT DISTINCT FROM {b})"

    def next_day(self, day: str) -> str:
        return f"CAST({day} + 1 AS date)"

    def previous_day(self, day: str) -> str:
        return f"CAST({day} - 1 AS date)"

    def as_day(self, param: str) -> str:
        return f"CAST({param} AS date)"

    def empty(self, table: str) -> str:
        # Transactional, and leaves no dead rows for the statements after it to read past.
        return f"TRUNCATE {table}"

    bulk_settings = (
        # Sorts of a million rows (a whole history) fit in memory instead of spilling to disk (a
        # limit, not an allocation: a night's statements use a few MB); JIT
        # compiles each big statement for about a second and saves nothing on them.
        "SET LOCAL work_mem = '256MB'",
        "SET LOCAL jit = off",
    )

    def json_document(self, column: str) -> str:
        # jsonb is parsed once; every json operator would parse a json value again.
        return f"CAST({column} AS jsonb)"

    def json_number(self, document: str, path: tuple[str, ...]) -> str:
        keys = "{" + ",".join(path) + "}"
        return f"CASE WHEN jsonb_typeof({document} #> '{keys}') = 'number' THEN CAST({document} #>> '{keys}' AS numeric) END"


class SqliteDialect(Dialect):
    name = "sqlite"

    def bytewise(self, expr: str) -> str:
        return expr  # BINARY, SQLite's default collation

    def instant(self, expr: str) -> str:
        return f"audit_utc_instant({expr})"

    def local_day(self, expr: str) -> str:
        return f"audit_local_day({expr}, :tz)"

    def _valid_json(self, column: str) -> str:
        # json_* functions raise on malformed text; treat it as "no field".
        return f"CASE WHEN json_valid({column}) THEN {column} END"

    def json_field(self, column: str, field: str) -> str:
        return self._valid_json(column)  # the whole valid image; SQLite reads fields from it

    def json_present(self, extracted: str, field: str) -> str:
        return f"(json_type({extracted}, '$.\"{field}\"') IS NOT NULL)"

    def json_value(self, extracted: str, field: str) -> str:
        # A nested object or array comes back as JSON text, like PostgreSQL's; a number as text.
        return f"CAST(json_extract({extracted}, '$.\"{field}\"') AS TEXT)"

    def json_object(self, *pairs: tuple[str, str]) -> str:
        return "json_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs) + ")"

    def trim_ws(self, expr: str) -> str:
        return f"trim({expr}, :ws)"

    def greatest(self, *exprs: str) -> str:
        return f"max({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"min({', '.join(exprs)})"

    def find(self, haystack: str, needle: str) -> str:
        return f"instr({haystack}, {needle})"

    def same(self, a: str, b: str) -> str:
        return f"({a} IS {b})"

    def next_day(self, day: str) -> str:
        return f"date({day}, '+1 day')"

    def json_document(self, column: str) -> str:
        return self._valid_json(column)

    def json_number(self, document: str, path: tuple[str, ...]) -> str:
        keys = "$" + "".join(f'."{key}"' for key in path)
        return f"CASE WHEN json_type({document}, '{keys}') IN ('integer', 'real') THEN json_extract({document}, '{keys}') END"


    def previous_day(self, day: str) -> str:
        return f"date({day}, '-1 day')"

    def day_param(self, day: dt.date):
        return day.isoformat()

    def instant_param(self, instant: dt.datetime):
        return sqlite_instant_text(instant)


def dialect_for(engine_or_name) -> Dialect:
    name = engine_or_name if isinstance(engine_or_name, str) else engine_or_name.dialect.name
    if name == "postgresql":
        return PostgresDialect()
    if name == "sqlite":
        return SqliteDialect()
    raise ValueError(f"unsupported database: {name}")


# --- SQLite: instants stored as text -------------------------------------------------------------


def sqlite_instant_text(instant: dt.datetime) -> str:
    """How an instant is stored in SQLite: UTC, ISO 8601, explicit offset."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(dt.timezone.utc).isoformat(sep=" ")


# Naive text is UTC, as SQLAlchemy writes it. Cached: a log holds many repeated instants.
_parse_instant = lru_cache(maxsize=200_000)(parse_instant)


def _utc_instant(value) -> str | None:
    if value is None:
        return None
    parsed = _parse_instant(str(value))
    return None if parsed is None else parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_day(value, tz_name: str) -> str | None:
    if value is None:
        return None
    parsed = _parse_instant(str(value))
    return None if parsed is None else local_date(parsed, _zone(tz_name)).isoformat()


def register_sqlite_functions(dbapi_connection: sqlite3.Connection) -> None:
    dbapi_connection.create_function("audit_utc_instant", 1, _utc_instant, deterministic=True)
    dbapi_connection.create_function("audit_local_day", 2, _local_day, deterministic=True)


def use_utc_sessions(engine: Engine) -> None:
    """Every PostgreSQL session of `engine` runs in UTC, so that a `timestamp without time zone`
    column holding UTC (Prisma's `DateTime`) is read as the instant it means.

    PostgreSQL converts such a value to timestamptz in the session's time zone, which comes from the
    server, the database or the role (`ALTER DATABASE ... SET timezone`) and may be anything. Set on
    connect, not in the URL's `options`, which would replace an operator's own options.
    """
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect", insert=True)
    def _utc_session(dbapi_connection, _record):
        # Outside any transaction, so that a later rollback cannot undo it (SQLAlchemy's recipe).
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.autocommit = autocommit
# Execution option of a connection whose transactions only read (see `read_connection`).
READS_ONLY = "audit_pipeline_reads_only"


def read_connection(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite its transactions take no write lock, so a sensor tick
    or a check never waits for a backfill's writes. (PostgreSQL: an ordinary connection.)"""
    return engine.connect().execution_options(**{READS_ONLY: True})


def install_sqlite_functions(engine: Engine) -> None:
    """Register the functions above and make SQLite transactions real.

    Python's sqlite3 driver opens a transaction lazily, before the first INSERT/UPDATE/DELETE only, so
    DDL and reads before it run outside any transaction. Taking control (SQLAlchemy's documented
    recipe) makes each `engine.begin()` block one transaction. A transaction that writes begins
    IMMEDIATE: it takes the write lock at its start, so a second writer waits (busy timeout) instead
    of failing half-way when it first writes after reading. A transaction on a `read_connection`
    begins DEFERRED and, in WAL mode, reads the last committed state without waiting for a writer,
    nor making one wait.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        # Persistent in the file; a no-op once set (and "memory" for an in-memory database).
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        register_sqlite_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READS_ONLY) else "BEGIN IMMEDIATE")
