"""Property-based differential test: random small messy histories, SQL against the reference.

Hypothesis builds histories with every messy case of the contract (instants at and one second
before IST midnight, ties in changed_at, partial and non-object images, JSON null values, unknown
and oddly cased enums, closed before created, deleted records, repeat cycles and cross-tenant
links, tenants created mid-range or not onboarded) and an old job's "DashboardSnapshot" rows (captures at
and around midnight and 01:00, re-runs, ties, tenants the pipeline does not have, metrics missing,
null, strings, booleans or not an object), and asserts that every output row of the SQL
implementation equals the plain-Python reference's, on SQLite and on PostgreSQL, and on PostgreSQL
again with Prisma's column types (timestamp(3) holding UTC, jsonb) and a New York session default.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql

from audit_pipeline import tables
from audit_pipeline.calendar import days
from audit_pipeline.current_state import CROSS_TENANT_CHECK, CYCLE_CHECK, update_current_findings
from audit_pipeline.output_checks import change_identity_problems
from audit_pipeline.history import update_record_history
from audit_pipeline.sql import findings as findings_sql

from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import load_settings, parse_database_url
from audit_pipeline.warehouse import Warehouse

from .builder import IST, all_rows, change_rows, create_source_tables, rows, warehouse
from .reference import HISTORY_TABLES, Reference, load_legacy, load_source
from .reference import history as reference_history

FIRST, LAST = dt.date(2024, 6, 1), dt.date(2024, 6, 6)
EXAMPLES = int(os.environ.get("AUDIT_PIPELINE_HYPOTHESIS_EXAMPLES", "200"))
# Every instant the histories hold lies in FIRST-2..FIRST+7 (local days): the reference reads the
# record history off these days, outside which nothing changes.
HISTORY_WINDOW = (FIRST - dt.timedelta(days=3), FIRST + dt.timedelta(days=9))

SEVERITY_VALUES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", " high ", "Critical", "low\t", "INFO", "", None]
STATUS_VALUES = ["COMPLIANT", "NON_COMPLIANT", "PARTIALLY_COMPLIANT", "NOT_APPLICABLE", " compliant", "Not_Applicable ", "PENDING", None]
IDS = ["a", "b", "c", "d'1", "é", "f"]
LEGACY_IDS = ["a", "B", "é", "x'1", "10", "9", "ä"]
# Values the old job may have written: counts, percentages and scores, and what is not a number.
METRIC_VALUES = [0, 0, 1, 2, 3, 50, 50.0, 66.67, 75, 100, 72.5, 97.5, None, "1", True]


def _instants():
    """Instants around the range's midnights (exact, one second before) and in between."""
    midnights = [dt.datetime.combine(FIRST + dt.timedelta(days=k), dt.time(0), tzinfo=IST) for k in range(-1, 8)]
    exact = st.sampled_from(midnights)
    before = exact.map(lambda m: m - dt.timedelta(seconds=1))
    between = st.builds(lambda m, s: m + dt.timedelta(seconds=s), st.sampled_from(midnights), st.integers(1, 86_399))
    return st.one_of(exact, before, between).map(lambda t: t.astimezone(dt.timezone.utc))


INSTANT = _instants()


MIDNIGHTS_OF_RANGE = [dt.datetime.combine(FIRST + dt.timedelta(days=k), dt.time(0), tzinfo=IST) for k in range(0, 7)]


def _captures():
    """When the old job ran: mostly about 01:00 IST, else any of the instants above."""
    about_one = st.builds(lambda m, s: (m + dt.timedelta(hours=1, seconds=s)).astimezone(dt.timezone.utc),
                          st.sampled_from(MIDNIGHTS_OF_RANGE), st.integers(-300, 300))
    return st.one_of(about_one, about_one, INSTANT)


# Log rows: also between a midnight and the old job's run at about 01:00, where they explain it.
LOG_INSTANT = st.one_of(INSTANT, st.builds(lambda m, s: (m + dt.timedelta(seconds=s)).astimezone(dt.timezone.utc),
                                           st.sampled_from(MIDNIGHTS_OF_RANGE), st.integers(1, 3599)))


def _legacy_metrics():
    value = st.sampled_from(METRIC_VALUES)
    group = lambda *keys: st.one_of(  # noqa: E731
        st.fixed_dictionaries({k: value for k in keys}),
        st.fixed_dictionaries({}, optional={k: value for k in keys}),
        value,  # not an object
    )
    document = st.fixed_dictionaries(
        {"healthScore": value,
         "compliance": group("total", "compliant", "percentage"),
         "severity": group("total", "criticalOpen", "highOpen", "mediumOpen", "lowOpen")},
    )
    return st.one_of(document, document, st.none(), st.sampled_from([[1, 2], "text", 5]))


def _image(field: str, values: list):
    value = st.sampled_from(values)
    return st.one_of(
        st.none(),
        st.builds(lambda v: {field: v}, value),  # the field, maybe JSON null
        st.builds(lambda v: {field: v, "title": "x"}, value),
        st.just({"title": "only other columns"}),
        st.sampled_from(["not an object", [field, "HIGH"], 42]),
    )


@st.composite
def histories(draw):
    tenant_ids = draw(st.lists(st.sampled_from(["t1", "t2", "t'3"]), min_size=1, max_size=3, unique=True))
    tenants = [
        dict(id=t, name=f"Bank {t}", onboarding_completed=draw(st.sampled_from([True, True, False, None])),
             created_at=draw(st.one_of(INSTANT, st.just(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)))))
        for t in tenant_ids
    ]
    engagement_ids = draw(st.lists(st.sampled_from(["e1", "e2"]), max_size=2, unique=True))
    engagements = [dict(id=e, tenant_id=draw(st.sampled_from(tenant_ids)), name=f"E {e}", status=draw(st.sampled_from(["OPEN", " open"])),
                        start_date=FIRST, end_date=LAST) for e in engagement_ids]
    obs_ids = draw(st.lists(st.sampled_from(IDS), max_size=6, unique=True))
    observations = []
    for o in obs_ids:
        created = draw(INSTANT)
        closed = draw(st.one_of(st.none(), INSTANT))
        observations.append(dict(
            id=o, tenant_id=draw(st.sampled_from(tenant_ids)), title=f"F {o}", severity=draw(st.sampled_from(SEVERITY_VALUES)),
            status=draw(st.sampled_from(["OPEN", "CLOSED", " closed"])), created_at=created, closed_at=closed,
            due_date=None, assigned_to=None, engagement_id=draw(st.one_of(st.none(), st.sampled_from(engagement_ids))) if engagement_ids else None,
            repeat_of_id=None,
        ))
    links = {o: draw(st.one_of(st.none(), st.sampled_from(obs_ids))) for o in obs_ids}
    req_ids = draw(st.lists(st.sampled_from(["r1", "r2", "r3", "r4"]), max_size=4, unique=True))
    requirements = [dict(id=r, tenant_id=draw(st.sampled_from(tenant_ids)), title=f"R {r}", status=draw(st.sampled_from(STATUS_VALUES)),
                         created_at=draw(INSTANT)) for r in req_ids]
    log = []
    for i in range(draw(st.integers(0, 12))):
        table = draw(st.sampled_from(["observation", "compliance_requirement"]))
        field, values, known = (("severity", SEVERITY_VALUES, obs_ids) if table == "observation" else ("status", STATUS_VALUES, req_ids))
        log.append(dict(
            id=i + 1, table_name=table,
            record_id=draw(st.sampled_from(known + ["deleted"])) if known else "deleted",
            action=draw(st.sampled_from(["INSERT", "UPDATE", "DELETE"])),
            old_data=draw(_image(field, values)), new_data=draw(_image(field, values)),
            changed_at=draw(LOG_INSTANT),
            tenant_id=draw(st.sampled_from(tenant_ids + [None])),
        ))
    legacy = [
        dict(id=legacy_id, tenantId=draw(st.sampled_from(tenant_ids + ["ghost", None])),
             capturedAt=draw(_captures()) if draw(st.sampled_from([True] * 9 + [False])) else None,
             metrics=draw(_legacy_metrics()))
        for legacy_id in draw(st.lists(st.sampled_from(LEGACY_IDS), min_size=1, max_size=7, unique=True))
    ]
    # Changes just before some captures (at the capture itself: not before it), in any table of the tenant.
    for row in legacy:
        if row["capturedAt"] is not None and draw(st.booleans()):
            log.append(dict(id=len(log) + 1, tenant_id=row["tenantId"], table_name="audit_engagement", record_id="e1",
                            action="UPDATE", old_data={"status": "OPEN"}, new_data={"status": "CLOSED"},
                            changed_at=row["capturedAt"] - dt.timedelta(seconds=draw(st.sampled_from([0, 1, 600, 3600, 7200])))))
    return dict(tenants=tenants, engagements=engagements, observations=observations, requirements=requirements, log=log, links=links,
                legacy=legacy)


@pytest.fixture
def prisma_engine(new_york_pg_url):
    """PostgreSQL with Prisma's column types (DateTime: timestamp(3) holding UTC, Json: jsonb), in a
    database whose sessions default to America/New_York."""
    engine = create_database_engine(parse_database_url(new_york_pg_url))
    prisma_types = (postgresql.TIMESTAMP(timezone=False, precision=3), postgresql.JSONB())
    create_source_tables(engine, *prisma_types)
    create_source_tables(engine, *prisma_types, metadata=tables.legacy_metadata)
    yield engine
    engine.dispose()


def load(engine, history):
    """Replace the source tables' rows with `history` (children first, repeat links last)."""
    tables.source_metadata.create_all(engine)
    tables.legacy_metadata.create_all(engine)
    t = tables
    with engine.begin() as conn:
        conn.execute(t.observation.update().values(repeat_of_id=None))
        for table in (t.audit_log, t.compliance_requirement, t.observation, t.audit_engagement, t.tenant,
                      t.legacy_dashboard_snapshot):
            conn.execute(delete(table))
        for table, key in ((t.tenant, "tenants"), (t.audit_engagement, "engagements"), (t.observation, "observations"),
                           (t.compliance_requirement, "requirements"), (t.audit_log, "log"),
                           (t.legacy_dashboard_snapshot, "legacy")):
            if history[key]:
                conn.execute(insert(table), history[key])
        for o, parent in history["links"].items():
            if parent is not None:
                conn.execute(t.observation.update().where(t.observation.c.id == o).values(repeat_of_id=parent))


def compute(engine):
    w = warehouse(engine)
    for step in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot,
                 w.writer.dashboard_snapshot, w.writer.compliance_trend_daily, w.writer.snapshot_change):
        step(FIRST, LAST)
    w.writer.severity_trend_quarterly(FIRST, LAST)
    # Rebuilt: the pipeline's copy of the observations may hold the previous example's.
    assert update_current_findings(w, full_rebuild=True).mode == "rebuild"
    w.writer.legacy_snapshot_diff(FIRST, LAST)


def check_current_state(engine, ref: Reference, update=None) -> None:
    """repeat_finding and engagement_progress against the reference; the repeat-link checks as the
    update read them (from its copy) against today's queries on the source table."""
    assert rows(engine, "repeat_finding", key="observation_id") == ref.repeat_findings()
    assert rows(engine, "engagement_progress", key="engagement_id") == ref.engagement_progress()
    w = Warehouse(engine, load_settings({}))
    update = update or update_current_findings(w)  # nothing new: the checks read from the copy
    assert update.problems[CROSS_TENANT_CHECK] == w.reader.find(findings_sql.cross_tenant_repeat_links())
    assert update.problems[CYCLE_CHECK] == w.reader.find(findings_sql.repeat_cycles(w.dialect), sep=findings_sql.PATH_SEPARATOR)


def legacy_diff(engine, first=FIRST, last=LAST) -> dict:
    """legacy_snapshot_diff's rows of first..last as the reference gives them: numbers as Decimals,
    captured_at an aware instant."""
    out = {}
    for r in all_rows(engine, "legacy_snapshot_diff"):
        if not first <= r["snapshot_date"] <= last:
            continue
        captured = r["captured_at"]
        captured = dt.datetime.fromisoformat(captured) if isinstance(captured, str) else captured
        out[(r["tenant_id"], r["snapshot_date"], r["metric"])] = (
            captured if captured.tzinfo else captured.replace(tzinfo=dt.timezone.utc),
            r["legacy_value"], r["pipeline_value"], r["log_rows_between"])
    return out


def history_rows(engine, table: str) -> dict[tuple, dict]:
    """A history table keyed by (record id, valid_from)."""
    id_column = HISTORY_TABLES[table][2]
    return {(row.pop(id_column), row.pop("valid_from")): row for row in all_rows(engine, table)}


def as_numbers(metrics):
    if isinstance(metrics, dict):
        return {k: as_numbers(v) for k, v in metrics.items()}
    return metrics if metrics is None or isinstance(metrics, int) else float(metrics)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_sql_equals_reference(engine, history):
    check_against_reference(engine, history)


@settings(max_examples=max(EXAMPLES // 4, 1), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_sql_equals_reference_with_prisma_column_types(prisma_engine, history):
    check_against_reference(prisma_engine, history)


def check_against_reference(engine, history):
    load(engine, history)
    compute(engine)
    ref = Reference(load_source(engine), first_day=FIRST)
    for day in days(FIRST, LAST):
        assert rows(engine, "severity_snapshot", day) == ref.severity(day), day
        assert rows(engine, "compliance_snapshot", day) == ref.compliance(day), day
        assert rows(engine, "health_snapshot", day) == ref.health(day), day
        assert {t: as_numbers(r["metrics"]) for t, r in rows(engine, "dashboard_snapshot", day).items()} == {
            t: as_numbers(r["metrics"]) for t, r in ref.dashboard(day).items()}, day
        assert rows(engine, "compliance_trend_daily", day) == ref.compliance_trend(day), day
        assert change_rows(engine, day) == ref.snapshot_change(day), day
    # The whole range lies in one fiscal quarter: one row per tenant, as of the last day.
    latest = ref.severity(LAST)
    quarterly = rows(engine, "severity_trend_quarterly")
    assert {t: (r["as_of_date"], r["critical_open"], r["high_open"], r["medium_open"], r["low_open"]) for t, r in quarterly.items()} == {
        t: (LAST, c["critical_open"], c["high_open"], c["medium_open"], c["low_open"]) for t, c in latest.items()}
    check_current_state(engine, ref)
    for table in HISTORY_TABLES:
        assert history_rows(engine, table) == reference_history(ref, table, *HISTORY_WINDOW), table
    legacy = load_legacy(engine)
    expected = ref.legacy_snapshot_diff(legacy, FIRST, LAST)
    assert legacy_diff(engine) == expected
    # What the examples covered (pytest --hypothesis-show-statistics).
    event(f"legacy differences: {'some' if expected else 'none'}")
    event(f"a difference explained by the log: {any(v[3] for v in expected.values())}")
    event(f"a difference the pipeline has no row for: {any(v[2] is None for v in expected.values())}")

    # The snapshots' counts follow from the day before's and the day's changes (the consistency check).
    w = warehouse(engine)
    assert change_identity_problems(w, (FIRST, LAST)) == []

    # Narrow runs read only the log rows that can matter to their days: the same answers. The first
    # day of each is compared with the day before it by the rules, materialized or not.
    for first, last in ((dt.date(2024, 6, 3), dt.date(2024, 6, 4)), (LAST, LAST), (FIRST, FIRST)):
        w.writer.severity_snapshot(first, last)
        w.writer.compliance_snapshot(first, last)
        w.writer.snapshot_change(first, last)
        for day in days(first, last):
            assert rows(engine, "severity_snapshot", day) == ref.severity(day), (first, last, day)
            assert rows(engine, "compliance_snapshot", day) == ref.compliance(day), (first, last, day)
            assert change_rows(engine, day) == ref.snapshot_change(day), (first, last, day)
        w.writer.legacy_snapshot_diff(first, last)
        assert legacy_diff(engine, first, last) == ref.legacy_snapshot_diff(legacy, first, last), (first, last)


# --- the record history kept up to date: incremental updates equal a full rebuild ---------------------


@st.composite
def later_changes(draw, base):
    """Batches of new audit_log rows after `base`'s (backdated or not), each maybe changing its live
    row as the application would, and some ids held back to commit one batch later (out of order)."""
    records = [("observation", o["id"]) for o in base["observations"]] + [
        ("compliance_requirement", r["id"]) for r in base["requirements"]] + [("observation", "deleted")]
    next_id = len(base["log"]) + 1
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        batch = []
        for _ in range(draw(st.integers(0, 5))):
            table, record = draw(st.sampled_from(records))
            field, values = ("severity", SEVERITY_VALUES) if table == "observation" else ("status", STATUS_VALUES)
            new = draw(_image(field, values))
            live = {}
            if record != "deleted" and isinstance(new, dict) and field in new and draw(st.booleans()):
                live[field] = new[field]  # the application's update of the live row, logged by this row
            if table == "observation" and record != "deleted" and draw(st.booleans()):
                closed = draw(st.one_of(st.none(), INSTANT))
                live["closed_at"] = closed
                new = {**(new if isinstance(new, dict) else {}), "closed_at": closed and closed.isoformat()}
            row = dict(id=next_id, tenant_id="t1", table_name=table, record_id=record, action="UPDATE",
                       old_data=draw(_image(field, values)), new_data=new, changed_at=draw(INSTANT))
            batch.append((row, live, draw(st.booleans()) and draw(st.booleans())))  # held back?
            next_id += 1
        batches.append(batch)
    return batches


def apply(engine, rows_and_live):
    t = tables
    with engine.begin() as conn:
        for row, live in rows_and_live:
            conn.execute(insert(t.audit_log), [row])
            table = t.observation if row["table_name"] == "observation" else t.compliance_requirement
            if live:
                conn.execute(table.update().where(table.c.id == row["record_id"]).values(**live))


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_history_updates_equal_a_full_rebuild(engine, data):
    base = data.draw(histories())
    load(engine, base)
    w = warehouse(engine)  # the history rebuilt, its log position at the end of the log
    held = []
    for batch in data.draw(later_changes(base)):
        now = [(row, live) for row, live, hold in batch if not hold]
        apply(engine, held + now)
        held = [(row, live) for row, live, hold in batch if hold]
        update = update_record_history(w)
        assert update.mode == "update"
        # The row counts kept from night to night (never counted whole) are the tables' counts.
        assert update.rows == {table: len(all_rows(engine, table)) for table in HISTORY_TABLES}
    apply(engine, held)
    update_record_history(w)
    updated = {table: history_rows(engine, table) for table in HISTORY_TABLES}
    assert update_record_history(w, full_rebuild=True).mode == "rebuild"
    rebuilt = {table: history_rows(engine, table) for table in HISTORY_TABLES}
    assert updated == rebuilt
    ref = Reference(load_source(engine), first_day=FIRST)
    assert rebuilt == {table: reference_history(ref, table, *HISTORY_WINDOW) for table in HISTORY_TABLES}


# --- the current-state tables kept up to date: incremental updates equal a full rebuild ---------------

NEW_OBSERVATIONS = ["n1", "n2", "n3"]
CHAIN_IDS = ["a", "b", "c", "d'1", "é", "f", "g", "h", "i"]


@st.composite
def current_states(draw):
    """Sources for the current-state tables: mostly onboarded tenants, engagements, and observations
    whose links mostly lead to an earlier one (chains, up to the whole list), now and then to any
    (cycles, other tenants). No log: the tables read the live rows."""
    tenants = [dict(id=t, name=f"Bank {t}", onboarding_completed=draw(st.sampled_from([True, True, True, False, None])),
                    created_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)) for t in ("t1", "t2", "t'3")]
    engagements = [dict(id=e, tenant_id=draw(st.sampled_from(["t1", "t1", "t2"])), name=f"E {e}", status="OPEN",
                        start_date=FIRST, end_date=LAST) for e in ("e1", "e2")]
    ids = CHAIN_IDS[:draw(st.integers(2, len(CHAIN_IDS)))]
    observations = [dict(id=o, tenant_id=draw(st.sampled_from(["t1", "t1", "t1", "t2", "t'3"])), title=f"F {o}",
                         severity=draw(st.sampled_from(SEVERITY_VALUES)), status="OPEN", created_at=draw(INSTANT),
                         closed_at=draw(st.one_of(st.none(), INSTANT)), due_date=None, assigned_to=None,
                         engagement_id=draw(st.sampled_from([None, "e1", "e2"])), repeat_of_id=None) for o in ids]
    links = {o: draw(st.one_of(st.none(), st.sampled_from(ids[:i] or ids), st.sampled_from(ids[:i] or ids), st.sampled_from(ids)))
             for i, o in enumerate(ids)}
    return dict(tenants=tenants, engagements=engagements, observations=observations, requirements=[], log=[], links=links,
                legacy=[])
TITLES = ["F x", "F y", None]
STATUSES = ["OPEN", "CLOSED", " closed", None]


@st.composite
def later_current_changes(draw, base):
    """Batches of changes after `base`: observations updated (any column the current-state tables
    read: repeat_of_id, engagement_id, tenant_id, closed_at, title, status, severity), inserted and
    deleted, each with its audit_log row (some held back to commit a batch later, out of id order);
    and tenants (onboarding flipped, created, deleted) and engagements (renamed, moved to another
    tenant, created, deleted) changed without a log row, as the application does."""
    observations = [o["id"] for o in base["observations"]] + NEW_OBSERVATIONS
    tenants = [t["id"] for t in base["tenants"]] + ["t4"]
    engagements = [e["id"] for e in base["engagements"]] + ["e3"]
    columns = {
        "repeat_of_id": st.one_of(st.none(), st.sampled_from(observations), st.sampled_from(observations)),
        "engagement_id": st.one_of(st.none(), st.sampled_from(engagements)),
        "tenant_id": st.one_of(st.sampled_from(tenants), st.sampled_from(tenants), st.none()),
        "closed_at": st.one_of(st.none(), INSTANT),
        "title": st.sampled_from(TITLES),
        "status": st.sampled_from(STATUSES),
        "severity": st.sampled_from(SEVERITY_VALUES),
    }
    next_id = len(base["log"]) + 1
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        batch = []
        for _ in range(draw(st.integers(0, 8))):
            kind = draw(st.sampled_from(["update", "update", "update", "insert", "delete", "tenant", "tenant", "engagement"]))
            if kind in ("update", "insert", "delete"):
                record = draw(st.sampled_from(observations))
                values = {c: draw(v) for c, v in columns.items() if kind != "delete" and draw(st.booleans())}
                log = dict(id=next_id, tenant_id="t1", table_name="observation", record_id=record, action=kind.upper(),
                           old_data=None, new_data={c: v and str(v) for c, v in values.items()} or None, changed_at=draw(INSTANT))
                next_id += 1
                batch.append(((kind, record, values), log, draw(st.booleans()) and draw(st.booleans())))
            elif kind == "tenant":
                change = draw(st.sampled_from(["onboarding", "onboarding", "create", "delete"]))
                batch.append(((f"tenant {change}", draw(st.sampled_from(tenants)),
                               draw(st.sampled_from([True, False, None]))), None, False))
            else:
                change = draw(st.sampled_from(["name", "status", "move", "create", "delete"]))
                batch.append(((f"engagement {change}", draw(st.sampled_from(engagements)),
                               draw(st.sampled_from(tenants))), None, False))
        batches.append(batch)
    return batches


def apply_current_changes(engine, changes, gone: set) -> None:
    """Apply one batch's changes and insert their log rows, in one transaction. References are only
    made to rows that exist (PostgreSQL enforces the foreign keys; a deleted parent's children get a
    null link there and keep a dangling one on SQLite, which means the same). An id once deleted is
    never used again (`gone`), as generated ids are not."""
    t = tables
    with engine.begin() as conn:
        def exists(table, id_) -> bool:
            return id_ is not None and conn.execute(select(table.c.id).where(table.c.id == id_)).first() is not None

        def referenced(tenant) -> bool:
            return any(conn.execute(select(table.c.id).where(table.c.tenant_id == tenant)).first()
                       for table in (t.observation, t.audit_engagement, t.compliance_requirement))

        for (kind, record, value), log, _ in changes:
            if log is not None:
                conn.execute(insert(t.audit_log), [log])
            if kind in ("update", "insert"):
                values = {c: v for c, v in value.items() if v is None or c not in REFERENCES or exists(REFERENCES[c], v)}
                if kind == "update" and values and exists(t.observation, record):
                    conn.execute(t.observation.update().where(t.observation.c.id == record).values(**values))
                elif kind == "insert" and not exists(t.observation, record) and record not in gone:
                    row = dict(id=record, tenant_id="t1" if exists(t.tenant, "t1") else None, title="F new",
                               severity="HIGH", status="OPEN", created_at=dt.datetime(2024, 6, 2, tzinfo=dt.timezone.utc),
                               closed_at=None, due_date=None, assigned_to=None, engagement_id=None, repeat_of_id=None)
                    conn.execute(insert(t.observation), [{**row, **values}])
            elif kind == "delete" and exists(t.observation, record):
                conn.execute(delete(t.observation).where(t.observation.c.id == record))
                gone.add(record)
            elif kind == "tenant onboarding" and exists(t.tenant, record):
                conn.execute(t.tenant.update().where(t.tenant.c.id == record).values(onboarding_completed=value))
            elif kind == "tenant create" and not exists(t.tenant, record):
                conn.execute(insert(t.tenant), [dict(id=record, name=f"Bank {record}", onboarding_completed=value,
                                                     created_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))])
            elif kind == "tenant delete" and exists(t.tenant, record) and not referenced(record):
                conn.execute(delete(t.tenant).where(t.tenant.c.id == record))
            elif kind.startswith("engagement"):
                e = t.audit_engagement
                if kind == "engagement create" and not exists(e, record) and record not in gone and exists(t.tenant, value):
                    conn.execute(insert(e), [dict(id=record, tenant_id=value, name=f"E {record}", status="OPEN",
                                                  start_date=FIRST, end_date=LAST)])
                elif kind == "engagement delete" and exists(e, record):
                    conn.execute(delete(e).where(e.c.id == record))
                    gone.add(record)
                elif kind not in ("engagement create", "engagement delete") and exists(e, record):
                    change = {"engagement name": dict(name=f"E {record} renamed"), "engagement status": dict(status=" closed"),
                              "engagement move": dict(tenant_id=value) if exists(t.tenant, value) else {}}[kind]
                    if change:
                        conn.execute(e.update().where(e.c.id == record).values(**change))


REFERENCES = {"repeat_of_id": tables.observation, "engagement_id": tables.audit_engagement, "tenant_id": tables.tenant}


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_current_findings_updates_equal_a_full_rebuild(engine, data):
    base = data.draw(st.one_of(current_states(), histories()))
    load(engine, base)
    w = warehouse(engine)
    assert update_current_findings(w, full_rebuild=True).mode == "rebuild"
    held, gone = [], set()
    for batch in data.draw(later_current_changes(base)):
        apply_current_changes(engine, held + [c for c in batch if not c[2]], gone)
        held = [c for c in batch if c[2]]
        update = update_current_findings(w)
        # (The first observations after none: the copy is empty, which is also how a dropped copy
        # looks, and so rebuilt; cheap, as there is nothing else.)
        assert update.mode == "update" or update.reason == "the copy of the observations is empty"
        if update.mode == "update":  # what the examples covered (pytest --hypothesis-show-statistics)
            event(f"descendants derived: {update.observations_derived > update.observations_touched}")
            event(f"tenants changed: {update.tenants_changed > 0}; engagements recounted: {update.engagements_derived > 0}")
            event(f"repeat rows: {update.rows['repeat_finding'] > 0}; on a cycle: {bool(update.problems[CYCLE_CHECK])}; "
                  f"across tenants: {bool(update.problems[CROSS_TENANT_CHECK])}")
        # After each batch (its held-back rows not yet committed): the sources as they are now.
        check_current_state(engine, Reference(load_source(engine), first_day=FIRST), update)
    apply_current_changes(engine, held, gone)
    update_current_findings(w)
    updated = {table: all_rows(engine, table) for table in ("repeat_finding", "engagement_progress")}
    assert update_current_findings(w, full_rebuild=True).mode == "rebuild"
    rebuilt = {table: all_rows(engine, table) for table in ("repeat_finding", "engagement_progress")}
    assert {t: sorted(r, key=str) for t, r in updated.items()} == {t: sorted(r, key=str) for t, r in rebuilt.items()}
    check_current_state(engine, Reference(load_source(engine), first_day=FIRST))
