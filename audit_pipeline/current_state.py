"""Keeps the current-state tables up to date: a night's work is that night's changes.

`repeat_finding` and `engagement_progress` describe the observations as they are now, and the two
checks on repeat links (`repeat_links_across_tenants`, `repeat_link_cycles`) look at the same rows.
Instead of reading every observation each night, they are derived from the pipeline's own copy of
what they read (`current_observation`, indexed by id, repeat_of_id, engagement and tenant; and the
onboarded tenants, `current_onboarded_tenant`), kept up to date like the record history:

- an **update** reads the audit_log rows its log reader has not read yet (`log_reader`: each once,
  whatever order they commit in; its own position, consumer CONSUMER, in `history_log_position`),
  takes the observations they name, reads those live rows by primary key into the copy (a deleted
  one leaves it), and derives again only what they can change (`sql/findings.py` says why that is
  enough): the repeat rows and check flags of the touched observations and of their descendants
  along repeat_of_id, and the repeat rows of tenants whose onboarding changed; in
  engagement_progress, what the touched observations counted before is taken away and what they
  count now added, and the rows of engagements whose own row changed are counted again;
- tenants and engagements are not logged (nor need they be): `tenant` (a few hundred rows) is
  compared whole with the copy of the onboarded ones, `audit_engagement` (a few thousand) with the
  engagement columns engagement_progress already holds. Neither grows with the history;
- a **rebuild** copies every observation and derives everything, with the same statements: on
  request (`full_rebuild`), on the first run, when the reporting time zone changed (`original_date`
  is a day of that zone), when the copy is found empty (dropped) while observations exist, and
  above MAX_UPDATE_ROWS new log rows.

Everything happens in one transaction with the reader's position, under locks of the tables it
writes: a failure leaves the previous state, and two runs never update at once. The checks' offending
rows are read in the same transaction, from the copy's flags (partial indexes), so they describe the
state just written.

A live observation changed without a log row (a fix in SQL with the trigger off, a restore) is not
seen until it is logged again or a rebuild; so is one whose log row the reader gave up. A deleted
observation's children keep, in the copy, the link to it that the source's foreign key sets to null:
a link to a missing observation is followed by nothing, so that is the same (unless the id is used
again, which generated ids are not).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, text

from .dialect import PostgresDialect
from .log_reader import Gap, LogPosition, read_new_rows, start_position
from .sql import findings as sql
from .warehouse import Warehouse

CONSUMER = "current_findings"
# Above this many new log rows, copying every observation again is about as cheap as touching
# them (and it keeps the rows read in one go bounded). Measured at scale 10 (300,000 observations):
# an update of 150,000 log rows (37,000 observations) took as long as a rebuild, 2.4 s; one of
# 60,000, 1.2 s. The longer the history, the dearer a rebuild, so this errs on the side of updates.
MAX_UPDATE_ROWS = 100_000

# How PostgreSQL runs an update's statements (for its transaction only). Each starts from a night's
# few rows (the temporary tables, written first in each join) and reaches the large tables through
# their indexes. Without these the planner, which cannot know how few rows a recursive step or a
# temporary table holds, and reckons one scan of a cached table cheaper than a few thousand index
# lookups, read every observation in six of them: the statements of a night of the demo data took
# 0.7 s instead of 0.2 s at scale 10 (2,300 observations touched), and 1.6 s instead of 0.5 s with
# a history three times as long (5,000). A rebuild reads everything and keeps the planner's choices.
UPDATE_PLANNER_SETTINGS = (
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL join_collapse_limit = 1",
    "SET LOCAL enable_seqscan = off",
)

# The check names (source_checks.py declares them on repeat_finding) and the copy's flag each reads.
CROSS_TENANT_CHECK = "repeat_links_across_tenants"
CYCLE_CHECK = "repeat_link_cycles"

_temporary = MetaData()
_temporary_tables = [
    # Each filled once, without duplicates (from Python, or a UNION).
    *(Table(name, _temporary, Column("id", Text, primary_key=True), prefixes=["TEMPORARY"])
      for name in (sql.TOUCHED, sql.AFFECTED, sql.AFFECTED_ENGAGEMENTS, sql.CHANGED_TENANTS)),
    Table(
        sql.ENGAGEMENT_DELTA, _temporary, Column("engagement_id", Text), Column("tenant_id", Text),
        *(Column(name, Integer, nullable=False) for name in ("observation_count", "open_count", "closed_count")),
        prefixes=["TEMPORARY"],
    ),
]
touched_observations = _temporary_tables[0]


@dataclass(frozen=True)
class FindingsUpdate:
    mode: str  # "rebuild" or "update"
    reason: str
    log_rows_read: int
    observations_touched: int | None  # named by new log rows (None: all of them, a rebuild)
    observations_derived: int | None  # whose repeat row and flags were derived again
    engagements_derived: int | None  # whose row was derived again (the others: their counts adjusted)
    tenants_changed: int | None
    rows: dict[str, int]  # rows of repeat_finding and engagement_progress afterwards
    problems: dict[str, list[tuple]]  # per check name: its offending rows (kind, id, detail), by id
    position: LogPosition
    given_up: tuple[Gap, ...]
    seconds: float


def update_current_findings(
    w: Warehouse, full_rebuild: bool = False, now: float | None = None, max_update_rows: int = MAX_UPDATE_ROWS
) -> FindingsUpdate:
    w.tables.prepare()
    began = time.perf_counter()
    ref = w.tables.ref
    copy, tenants, positions = ref("current_observation"), ref("current_onboarded_tenant"), ref("history_log_position")
    findings, progress = ref("repeat_finding"), ref("engagement_progress")
    params = {**w.tables.common_params(), "sep": sql.PATH_SEPARATOR}
    with w.engine.begin() as conn:
        # The position's table is shared with the record history, which locks it: only this
        # consumer's row is written here, and these locks already keep two updates apart.
        for table in (copy, tenants, findings, progress):
            w.tables.lock(conn, table)
        w.tables.session_setup(conn)
        saved = conn.execute(
            text(f"SELECT position, timezone FROM {positions} WHERE consumer = :consumer"), {"consumer": CONSUMER}
        ).first()
        reason, batch = _rebuild_reason(conn, full_rebuild, saved, w.settings.timezone, copy), None
        if reason is None:
            batch = read_new_rows(conn, LogPosition.from_json(saved.position), "id, table_name, record_id", max_update_rows, now)
            if len(batch.rows) >= max_update_rows:
                reason, batch = f"more than {max_update_rows:,} new log rows", None

        def run(statement: str) -> None:
            conn.execute(text(statement), params)

        copied = {"observations": copy, "onboarded": sql.copied_onboarded(tenants)}
        if batch is None:
            # Taken first: a row committed while the sources are copied is read again next time.
            position, given_up = start_position(conn, now), ()
            _rebuild_copy(conn, w, copy, tenants)
            run(sql.mark_links(w.dialect, copy, only_affected=False))
            for target in (findings, progress):
                run(w.dialect.empty(target))
            run(sql.repeat_finding(w.dialect, findings, **copied))
            run(sql.engagement_progress(w.dialect, progress, **copied))
            touched = derived = engagements = changed_tenants = None
        else:
            position, given_up = batch.position, batch.given_up
            ids = sorted({record for _, table, record in batch.rows if table == "observation" and record is not None})
            _create_temporary(conn, ids)
            if isinstance(w.dialect, PostgresDialect):
                for setting in UPDATE_PLANNER_SETTINGS:
                    conn.execute(text(setting))
            for statement in update_statements(w):
                run(statement)
            derived, engagements, changed_tenants = conn.execute(text(
                f"SELECT (SELECT count(*) FROM {sql.AFFECTED}), (SELECT count(*) FROM {sql.AFFECTED_ENGAGEMENTS}), "
                f"(SELECT count(*) FROM {sql.CHANGED_TENANTS})"
            )).one()
            touched = len(ids)
            _drop_temporary(conn)
        problems = {
            CROSS_TENANT_CHECK: _rows(conn, sql.flagged_cross_tenant_links(copy)),
            CYCLE_CHECK: _rows(conn, sql.flagged_cycles(copy)),
        }
        conn.execute(text(f"DELETE FROM {positions} WHERE consumer = :consumer"), {"consumer": CONSUMER})
        conn.execute(
            text(f"INSERT INTO {positions} (consumer, position, timezone) VALUES (:consumer, :position, :tz)"),
            {"consumer": CONSUMER, "position": position.to_json(), "tz": w.settings.timezone},
        )
        rows = {"repeat_finding": _count(conn, findings), "engagement_progress": _count(conn, progress)}
    return FindingsUpdate(
        "update" if batch is not None else "rebuild", reason or "new log rows", len(batch.rows) if batch else 0,
        touched, derived, engagements, changed_tenants, rows, problems, position, given_up, time.perf_counter() - began,
    )


def update_statements(w: Warehouse) -> list[str]:
    """An update's statements, in order, once TOUCHED holds the observations the new log rows name:
    the same few whatever their number."""
    d, ref = w.dialect, w.tables.ref
    copy, tenants, findings, progress = (
        ref("current_observation"), ref("current_onboarded_tenant"), ref("repeat_finding"), ref("engagement_progress"))
    copied = {"observations": copy, "onboarded": sql.copied_onboarded(tenants)}
    return [
        # The copy: the touched observations' live rows, and what they counted before and after.
        sql.engagement_counts_of_touched(copy, -1),
        sql.delete_touched_observations(copy),
        sql.load_observations(copy, only_touched=True),
        sql.engagement_counts_of_touched(copy, +1),
        sql.changed_tenants(tenants),
        analyze(sql.CHANGED_TENANTS),
        sql.delete_changed_tenants(tenants),
        sql.load_tenants(tenants, only_changed=True),
        # repeat_finding and the flags: the touched observations, their descendants, the changed tenants'.
        sql.affected_observations(copy),
        sql.mark_links(d, copy, only_affected=True),
        sql.delete_affected_findings(findings),
        sql.repeat_finding(d, findings, **copied, only_affected=True),
        # engagement_progress: the touched observations' contributions taken away and added; the
        # engagements whose own row changed (compared before the rows are replaced) counted again.
        sql.changed_engagements(d, progress, tenants),
        analyze(sql.AFFECTED_ENGAGEMENTS),
        sql.apply_engagement_counts(progress),
        sql.delete_affected_engagements(progress),
        sql.engagement_progress(d, progress, **copied, only_affected=True),
    ]


def analyze(table: str) -> str:
    """Statistics of a temporary table that is usually empty: PostgreSQL takes a table that has
    never been analyzed and has no pages for one of ten pages (thousands of rows), and would plan
    the statements that start from it as if it were large. The others are sized from their pages."""
    return f"ANALYZE {table}"


def _rebuild_reason(conn: Connection, requested: bool, saved, timezone: str, copy: str) -> str | None:
    if requested:
        return "full rebuild requested"
    if saved is None:
        return "no copy of the current state yet"
    if saved.timezone != timezone:
        return f"the reporting time zone changed from {saved.timezone} to {timezone}"
    # The copy dropped (and created again, empty) while the position stayed: an update would take
    # every observation for deleted.
    lost = f"SELECT NOT EXISTS (SELECT 1 FROM {copy}) AND EXISTS (SELECT 1 FROM observation)"
    if conn.execute(text(lost)).scalar_one():
        return "the copy of the observations is empty"
    return None


def _rebuild_copy(conn: Connection, w: Warehouse, copy: str, tenants: str) -> None:
    """Copy every observation and onboarded tenant, the copy loaded without its indexes."""
    conn.execute(text(w.dialect.empty(copy)))
    with w.tables.loading_without_indexes(conn, "current_observation"):
        conn.execute(text(sql.load_observations(copy, only_touched=False)))
    conn.execute(text(f"ANALYZE {copy}"))  # the next statements' plans depend on its size
    conn.execute(text(w.dialect.empty(tenants)))
    conn.execute(text(sql.load_tenants(tenants, only_changed=False)))


def _create_temporary(conn: Connection, touched: list[str]) -> None:
    # Created and dropped in the update's transaction: a failed update rolls their creation back
    # with the rest, so none can be left on a pooled connection.
    for table in _temporary_tables:
        table.create(conn, checkfirst=False)
    if touched:
        conn.execute(touched_observations.insert(), [{"id": i} for i in touched])


def _drop_temporary(conn: Connection) -> None:
    for table in _temporary_tables:
        table.drop(conn, checkfirst=False)


def _rows(conn: Connection, query: str) -> list[tuple]:
    return [tuple(row) for row in conn.execute(text(query))]


def _count(conn: Connection, table: str) -> int:
    return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
