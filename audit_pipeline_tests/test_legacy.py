"""legacy_snapshot_diff on hand-built old-job rows, on SQLite and PostgreSQL (both URL forms).

T(D) is 00:00 IST of D+1; an old-job row describes the day D with T(D) <= capturedAt < T(D+1). The
pipeline's metrics for the days 06-10..06-13 are worked out in `history`; each legacy row's expected
differences next to it.
"""

import datetime as dt
import hashlib
import re
from decimal import Decimal

import pytest
from sqlalchemy import insert, text

from audit_pipeline import tables
from audit_pipeline.sql.legacy import LegacyTableError

from .builder import SourceBuilder, all_rows, count, ist, warehouse

RANGE = (dt.date(2024, 6, 10), dt.date(2024, 6, 13))
D10, D11, D12, D13 = (dt.date(2024, 6, d) for d in (10, 11, 12, 13))

# t1 on 06-10..06-12: o1 HIGH open; r1 COMPLIANT, r2 NON_COMPLIANT: 50 %; health 0.5*50 + 0.5*95
T1 = {"healthScore": 72.5, "compliance": {"total": 2, "compliant": 1, "percentage": 50},
      "severity": {"total": 1, "criticalOpen": 0, "highOpen": 1, "mediumOpen": 0, "lowOpen": 0}}
# t2: r3 COMPLIANT, no observation: 100 and 100
T2 = {"healthScore": 100, "compliance": {"total": 1, "compliant": 1, "percentage": 100},
      "severity": {"total": 0, "criticalOpen": 0, "highOpen": 0, "mediumOpen": 0, "lowOpen": 0}}


def metrics(base, **changes):
    """`base` with some metrics changed, named by their path: metrics(T1, **{"severity.total": 2})."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = out
        for key in parents:
            target = target[key]
        target[leaf] = value
    return out


def history(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.observation("o1", tenant="t1", severity="HIGH", created="2024-06-01 10:00:00", closed="2024-06-13 09:00:00")
    src.requirement("r1", tenant="t1", status="COMPLIANT")
    src.requirement("r2", tenant="t1", status="NON_COMPLIANT")
    src.requirement("r3", tenant="t2", status="COMPLIANT")
    # audit_log rows, by tenant; only those with T(D) <= changed_at < capturedAt count
    src.log("observation", "o1", "2024-06-11 00:00:00", old={"status": "OPEN"}, new={"status": "IN_PROGRESS"})  # = A's capture: not before it
    src.log("observation", "o1", "2024-06-12 00:30:00", old={"title": "a"}, new={"title": "b"})  # t1's, in B1's window
    src.log("observation", "o1", "2024-06-13 09:00:00", old={"status": "IN_PROGRESS"}, new={"status": "CLOSED"})  # explains C
    src.log("compliance_requirement", "r3", "2024-06-11 01:00:00", old={"title": "a"}, new={"title": "b"}, tenant="t2")  # = D's capture
    src.log("compliance_requirement", "r3", "2024-06-11 23:59:59", old={"title": "b"}, new={"title": "c"}, tenant="t2")  # before T(06-11)
    src.log("compliance_requirement", "r3", "2024-06-12 00:00:00", old={"title": "c"}, new={"title": "d"}, tenant="t2")  # = T(06-11): counts for E
    w = warehouse(engine)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot, w.writer.dashboard_snapshot):
        write(*RANGE)


LEGACY_ROWS = [
    # t1, 06-10: captured exactly at T(06-10); two numbers off and the only log row is at the capture itself
    ("A", "t1", "2024-06-11 00:00:00", metrics(T1, **{"severity.highOpen": 2, "severity.total": 2})),
    # t1, 06-11: the first run agrees (50.0 and 72.50 are the same numbers); the re-run, with a lower id, is ignored
    ("legacy-2", "t1", "2024-06-12 01:00:00", metrics(T1, **{"healthScore": 72.50, "compliance.percentage": 50.0})),
    ("legacy-1", "t1", "2024-06-12 10:00:00", metrics(T1, **{"healthScore": 10, "severity.total": 9})),
    # t1, 06-12: captured at 23:59:59 of 06-13, after o1 closed at 09:00: explained by that log row
    ("C", "t1", "2024-06-13 23:59:59", metrics(T1, **{"healthScore": 75, "severity.total": 0, "severity.highOpen": 0})),
    # t1, 06-13: none (a missed night); before and after the range: not compared
    ("before", "t1", "2024-06-10 23:59:59", metrics(T1, healthScore=1)),
    ("after", "t1", "2024-06-15 01:00:00", metrics(T1, healthScore=1)),
    # t2, 06-10: a critical finding the pipeline never saw, no log row before the capture
    ("D", "t2", "2024-06-11 01:00:00", metrics(T2, **{"healthScore": 95, "severity.total": 1, "severity.criticalOpen": 1})),
    # t2, 06-11: one log row of t2 at T(06-11) counts; t1's row at 00:30 does not
    ("E", "t2", "2024-06-12 01:00:00", metrics(T2, **{"healthScore": 50, "compliance.compliant": 0, "compliance.percentage": 0})),
    # t2, 06-12: a string and a boolean are not numbers
    ("G", "t2", "2024-06-13 01:00:00", metrics(T2, **{"healthScore": "100", "severity.lowOpen": True})),
    # a tenant the pipeline does not have: every metric but the null percentage differs
    ("F", "gone", "2024-06-11 01:00:00", {"healthScore": 80, "compliance": {"total": 0, "compliant": 0, "percentage": None},
                                          "severity": {"total": 2, "criticalOpen": 0, "highOpen": 2, "mediumOpen": 0, "lowOpen": 0}}),
]

UTC = dt.timezone.utc
EXPECTED = {
    # (tenant, day, metric): (captured_at UTC, legacy_value, pipeline_value, log_rows_between)
    ("t1", D10, "severity.highOpen"): (dt.datetime(2024, 6, 10, 18, 30, tzinfo=UTC), 2, 1, 0),
    ("t1", D10, "severity.total"): (dt.datetime(2024, 6, 10, 18, 30, tzinfo=UTC), 2, 1, 0),
    ("t1", D12, "healthScore"): (dt.datetime(2024, 6, 13, 18, 29, 59, tzinfo=UTC), 75, Decimal("72.5"), 1),
    ("t1", D12, "severity.total"): (dt.datetime(2024, 6, 13, 18, 29, 59, tzinfo=UTC), 0, 1, 1),
    ("t1", D12, "severity.highOpen"): (dt.datetime(2024, 6, 13, 18, 29, 59, tzinfo=UTC), 0, 1, 1),
    ("t2", D10, "healthScore"): (dt.datetime(2024, 6, 10, 19, 30, tzinfo=UTC), 95, 100, 0),
    ("t2", D10, "severity.total"): (dt.datetime(2024, 6, 10, 19, 30, tzinfo=UTC), 1, 0, 0),
    ("t2", D10, "severity.criticalOpen"): (dt.datetime(2024, 6, 10, 19, 30, tzinfo=UTC), 1, 0, 0),
    ("t2", D11, "healthScore"): (dt.datetime(2024, 6, 11, 19, 30, tzinfo=UTC), 50, 100, 1),
    ("t2", D11, "compliance.compliant"): (dt.datetime(2024, 6, 11, 19, 30, tzinfo=UTC), 0, 1, 1),
    ("t2", D11, "compliance.percentage"): (dt.datetime(2024, 6, 11, 19, 30, tzinfo=UTC), 0, 100, 1),
    ("t2", D12, "healthScore"): (dt.datetime(2024, 6, 12, 19, 30, tzinfo=UTC), None, 100, 0),
    ("t2", D12, "severity.lowOpen"): (dt.datetime(2024, 6, 12, 19, 30, tzinfo=UTC), None, 0, 0),
    **{("gone", D10, metric): (dt.datetime(2024, 6, 10, 19, 30, tzinfo=UTC), value, None, 0) for metric, value in {
        "healthScore": 80, "compliance.total": 0, "compliance.compliant": 0, "severity.total": 2,
        "severity.criticalOpen": 0, "severity.highOpen": 2, "severity.mediumOpen": 0, "severity.lowOpen": 0}.items()},
}


def add_legacy_rows(engine, rows=LEGACY_ROWS):
    tables.legacy_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(tables.legacy_dashboard_snapshot),
                     [dict(id=id, tenantId=tenant, capturedAt=ist(at), metrics=m) for id, tenant, at, m in rows])


def instant(value):
    if isinstance(value, str):  # SQLite: UTC text
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def diff_rows(engine) -> dict:
    return {
        (r["tenant_id"], r["snapshot_date"], r["metric"]):
            (instant(r["captured_at"]), r["legacy_value"], r["pipeline_value"], r["log_rows_between"])
        for r in all_rows(engine, "legacy_snapshot_diff")
    }


def assert_expected_rows(engine):
    got = diff_rows(engine)
    assert set(got) == set(EXPECTED)
    for key, (captured, legacy_value, pipeline_value, log_rows) in EXPECTED.items():
        number = lambda v: None if v is None else Decimal(str(v))  # noqa: E731
        assert got[key] == (captured, number(legacy_value), number(pipeline_value), log_rows), key


def legacy_fingerprint(engine) -> tuple:
    """The old job's table, byte for byte: its rows (and, on PostgreSQL, their row versions) and
    its definition (columns, constraints, indexes, triggers, comments, privileges)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text('SELECT id, typeof("tenantId"), "tenantId", typeof("capturedAt"), "capturedAt", '
                                     'typeof(metrics), metrics FROM "DashboardSnapshot" ORDER BY id')).all()
            ddl = conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'DashboardSnapshot' ORDER BY name")).all()
        else:
            rows = conn.execute(text('SELECT t.id, t::text, t.xmin::text FROM "DashboardSnapshot" t ORDER BY t.id')).all()
            ddl = conn.execute(text("""
                SELECT (SELECT string_agg(concat_ws(' ', column_name, data_type, datetime_precision, is_nullable, column_default), ', ' ORDER BY ordinal_position)
                        FROM information_schema.columns WHERE table_name = 'DashboardSnapshot'),
                       (SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY conname) FROM pg_constraint WHERE conrelid = c.oid),
                       (SELECT string_agg(indexdef, ', ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'DashboardSnapshot'),
                       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid),
                       obj_description(c.oid), c.relacl::text, c.relowner, c.relfilenode
                FROM pg_class c WHERE c.oid = '"DashboardSnapshot"'::regclass
            """)).all()
    return hashlib.sha256(repr((rows, ddl)).encode()).hexdigest(), len(rows)


def test_each_rule_of_the_comparison(engine):
    history(engine)
    add_legacy_rows(engine)
    before = legacy_fingerprint(engine)
    statements = []
    from sqlalchemy import event

    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    warehouse(engine).writer.legacy_snapshot_diff(*RANGE)
    event.remove(engine, "before_cursor_execute", listener)

    assert_expected_rows(engine)

    # The old job's table is only read: unchanged, and no statement writes, alters or locks it.
    assert legacy_fingerprint(engine) == before
    touching = [s for s in statements if "DashboardSnapshot" in s]
    assert touching and not [s for s in touching if re.search(
        r'\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|ALTER|DROP|CREATE|LOCK|TRUNCATE|COMMENT\s+ON|GRANT)\b[^;]*?"DashboardSnapshot"', s, re.I)]


def test_a_capture_whose_text_shows_the_pipelines_numbers_is_no_difference(engine):
    """The write compares texts before it parses anything: the pipeline's own text, and the same in
    the old job's spacing ("key": value), are no difference; one number changed in that spacing is."""
    history(engine)
    with engine.connect() as conn:
        stored = dict(conn.execute(text(
            "SELECT tenant_id, CAST(metrics AS TEXT) FROM dashboard_snapshot WHERE snapshot_date = :day"),
            {"day": D10 if engine.dialect.name == "postgresql" else D10.isoformat()}).all())
    spaced = {tenant: document.replace('" : ', '": ') for tenant, document in stored.items()}
    changed = re.sub(r'"highOpen":( ?)1,', r'"highOpen":\g<1>3,', spaced["t1"])
    assert changed != spaced["t1"]
    tables.legacy_metadata.create_all(engine)
    with engine.begin() as conn:
        for id, tenant, at, document in [("as-stored", "t1", "2024-06-11 01:00:00", stored["t1"]),
                                          ("old-spacing", "t2", "2024-06-11 01:00:00", spaced["t2"]),
                                          ("one-changed", "t1", "2024-06-12 01:00:00", changed)]:
            conn.execute(text('INSERT INTO "DashboardSnapshot" (id, "tenantId", "capturedAt", metrics) VALUES (:id, :tenant, :at, :m)'),
                         dict(id=id, tenant=tenant, at=ist(at), m=document))
    warehouse(engine).writer.legacy_snapshot_diff(D10, D11)
    # 06-11's pipeline row is 06-10's (nothing changed in between): only highOpen differs, and the
    # total it is part of does not (the old job's text says 1 there)
    assert {key: value[1:3] for key, value in diff_rows(engine).items()} == {
        ("t1", D11, "severity.highOpen"): (Decimal(3), Decimal(1))}


def test_a_rerun_replaces_and_a_narrower_range_gives_the_same_rows(engine):
    history(engine)
    add_legacy_rows(engine)
    w = warehouse(engine)
    w.writer.legacy_snapshot_diff(*RANGE)
    first = diff_rows(engine)
    w.writer.legacy_snapshot_diff(*RANGE)
    assert diff_rows(engine) == first and count(engine, "legacy_snapshot_diff") == len(EXPECTED)
    w.writer.legacy_snapshot_diff(D11, D12)  # its window: T(06-11) <= capturedAt < T(06-13)
    assert diff_rows(engine) == first


def test_without_the_legacy_table_nothing_is_compared_and_its_days_are_emptied(engine):
    history(engine)
    add_legacy_rows(engine)
    w = warehouse(engine)
    w.writer.legacy_snapshot_diff(*RANGE)
    assert count(engine, "legacy_snapshot_diff") == len(EXPECTED)
    with engine.begin() as conn:  # the application's team drops it after the cutover
        conn.execute(text('DROP TABLE "DashboardSnapshot"'))
    assert w.reader.legacy_snapshot_table() is None
    result = w.writer.legacy_snapshot_diff(D10, D11)
    assert result.rows == 0
    assert {k[1] for k in diff_rows(engine)} == {D12}  # 06-10 and 06-11 replaced by nothing


@pytest.mark.parametrize("ddl, problem", [
    ('CREATE TABLE "DashboardSnapshot" (id text PRIMARY KEY, tenant_id text, captured_at timestamp, metrics json)',
     'no column "tenantId"; no column "capturedAt"'),
    ('CREATE TABLE "DashboardSnapshot" (id text PRIMARY KEY, "tenantId" text, "capturedAt" integer, metrics text)',
     '"capturedAt" is INTEGER, not a timestamp; "metrics" is TEXT, not json or jsonb'),
])
def test_a_legacy_table_of_another_shape_stops_with_one_line_and_changes_nothing(engine, ddl, problem):
    history(engine)
    add_legacy_rows(engine)
    w = warehouse(engine)
    w.writer.legacy_snapshot_diff(*RANGE)
    with engine.begin() as conn:
        conn.execute(text('DROP TABLE "DashboardSnapshot"'))
        conn.execute(text(ddl))
    before = legacy_fingerprint(engine)
    if "integer" in ddl and engine.dialect.name == "sqlite":
        problem = None  # SQLite has no column types to hold against it: all four columns are there
    if problem is None:
        w.writer.legacy_snapshot_diff(*RANGE)
        assert count(engine, "legacy_snapshot_diff") == 0  # an empty table compares nothing
        return
    with pytest.raises(LegacyTableError) as raised:
        w.writer.legacy_snapshot_diff(*RANGE)
    message = str(raised.value)
    assert "\n" not in message and '"DashboardSnapshot"' in message and problem in message
    assert "AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE" in message
    assert count(engine, "legacy_snapshot_diff") == len(EXPECTED)  # the last comparison stays
    assert legacy_fingerprint(engine) == before


def test_the_table_name_comes_from_the_setting_and_is_validated(engine):
    history(engine)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE "OldSnapshots" (id text PRIMARY KEY, "tenantId" text, "capturedAt" timestamp, metrics json)'))
        conn.execute(text('INSERT INTO "OldSnapshots" VALUES (:id, :tenant, :at, :m)'),
                     dict(id="x", tenant="t2", at=ist("2024-06-11 01:00:00").replace(tzinfo=None), m='{"healthScore": 99}'))
    w = warehouse(engine, AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE="OldSnapshots")
    w.writer.legacy_snapshot_diff(*RANGE)
    rows = diff_rows(engine)
    assert rows[("t2", D10, "healthScore")][1:] == (Decimal(99), Decimal(100), 0)
    assert len(rows) == 9  # the other eight are absent from its JSON: null against a number
    from audit_pipeline.settings import SettingsError

    with pytest.raises(SettingsError, match="AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE"):
        warehouse(engine, AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE='x"; DROP TABLE tenant; --')


def test_postgres_schema_qualified_name_and_a_role_that_may_not_read_it(pg_databases):
    from sqlalchemy.engine import make_url

    from audit_pipeline.resources import create_database_engine
    from audit_pipeline.settings import load_settings, parse_database_url
    from audit_pipeline.warehouse import Warehouse

    from .conftest import ADMIN_URL

    url = pg_databases.create()
    engine = create_database_engine(parse_database_url(url))
    history(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA app"))
        conn.execute(text('CREATE TABLE app."DashboardSnapshot" (id text PRIMARY KEY, "tenantId" text, "capturedAt" timestamptz, metrics jsonb)'))
        conn.execute(text('INSERT INTO app."DashboardSnapshot" VALUES (\'x\', \'t2\', \'2024-06-11 01:00+05:30\', \'{"healthScore": 99}\')'))
    assert warehouse(engine).reader.legacy_snapshot_table() is None  # not on the search path
    w = warehouse(engine, AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE="app.DashboardSnapshot")
    w.writer.legacy_snapshot_diff(*RANGE)
    assert diff_rows(engine)[("t2", D10, "healthScore")][1:] == (Decimal(99), Decimal(100), 0)

    role = f"no_legacy_{make_url(url).database[-8:]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA app TO {role}"))
    try:
        role_engine = create_database_engine(parse_database_url(make_url(url).set(username=role).render_as_string(hide_password=False)))
        with pytest.raises(LegacyTableError, match=r'may not read it: GRANT SELECT ON "app"."DashboardSnapshot"'):
            # A bare warehouse: the role may not write the pipeline's tables, and need not to read this one.
            Warehouse(role_engine, load_settings({"AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE": "app.DashboardSnapshot"})).reader.legacy_snapshot_table()
        role_engine.dispose()
    finally:
        engine.dispose()
        from sqlalchemy import create_engine

        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


RANGE_TAGS = {"dagster/asset_partition_range_start": "2024-06-10", "dagster/asset_partition_range_end": "2024-06-13"}


def materialize_comparison(db_url):
    import dagster as dg

    from audit_pipeline.assets.daily import daily_tables
    from audit_pipeline.resources import DatabaseResource

    return dg.materialize([daily_tables], selection=["legacy_snapshot_diff"], resources={"database": DatabaseResource(url=db_url)},
                          tags=RANGE_TAGS, raise_on_error=False)


def test_the_asset_reports_what_the_team_reads(engine, db_url):
    history(engine)
    add_legacy_rows(engine)
    result = materialize_comparison(db_url)
    assert result.success
    materializations = result.asset_materializations_for_node("daily_tables")
    assert len(materializations) == 4  # one per day of the range run
    meta = {k: v.value for k, v in materializations[0].metadata.items()}
    assert meta["dagster/row_count"] == len(EXPECTED)
    assert {k: meta[k] for k in (
        "tenant_days_compared", "tenant_days_matching", "tenant_days_differing", "differences_explained_by_log",
        "differences_unexplained", "tenant_days_with_reruns", "tenant_days_not_in_pipeline",
        "tenant_days_missed_by_old_job", "nights_missed_by_old_job", "days_outside_old_job")} == {
        # compared: t1 and t2 on 06-10..12, gone on 06-10; matching: t1 06-11; explained: C and E
        "tenant_days_compared": 7, "tenant_days_matching": 1, "tenant_days_differing": 6,
        "differences_explained_by_log": 2, "differences_unexplained": 4, "tenant_days_with_reruns": 1,
        "tenant_days_not_in_pipeline": 1,
        "tenant_days_missed_by_old_job": 2, "nights_missed_by_old_job": 1,  # 06-13, t1 and t2
        "days_outside_old_job": 0,
    }
    assert meta["old_job_describes"] == "2024-06-09..2024-06-14"  # from the rows before and after the range
    assert meta["differences_by_metric"]["healthScore"] == {"differences": 5, "explained_by_log": 2}
    assert meta["differences_by_metric"]["compliance.percentage"] == {"differences": 1, "explained_by_log": 1}
    assert sum(m["differences"] for m in meta["differences_by_metric"].values()) == len(EXPECTED)
    worst = meta["worst days (first 10)"].splitlines()
    # 06-10: A, D and F unexplained; 06-12: G unexplained, C explained; 06-11: E explained; 06-13: missed
    assert [line.split(" | ")[0].strip("| ") for line in worst[2:]] == ["2024-06-10", "2024-06-12", "2024-06-11", "2024-06-13"]
    assert worst[2] == "| 2024-06-10 | 3 | 0 | 3 | 0 | 3 | 0 | 1 |  |"
    assert worst[5] == "| 2024-06-13 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 2 |"
    largest = meta["largest unexplained differences (first 10)"].splitlines()[2:]
    assert largest[:2] == ["| 2024-06-10 | t2 | healthScore | 95 | 100 |", "| 2024-06-10 | t1 | severity.highOpen | 2 | 1 |"]
    assert largest[5:8] == ["| 2024-06-12 | t2 | healthScore |  | 100 |", "| 2024-06-12 | t2 | severity.lowOpen |  | 0 |",
                            "| 2024-06-10 | gone | compliance.compliant | 0 |  |"]


def test_the_asset_without_the_table_says_so_and_writes_nothing(engine, db_url):
    history(engine)
    result = materialize_comparison(db_url)
    assert result.success
    meta = result.asset_materializations_for_node("daily_tables")[0].metadata
    assert meta["legacy_table"].value == '"DashboardSnapshot" does not exist: nothing compared'
    assert meta["dagster/row_count"].value == 0 and count(engine, "legacy_snapshot_diff") == 0


def test_the_asset_stops_on_a_table_of_another_shape(engine, db_url):
    import dagster as dg

    history(engine)
    with engine.begin() as conn:
        conn.execute(text('CREATE TABLE "DashboardSnapshot" (id text PRIMARY KEY, tenant text, "capturedAt" timestamp, metrics json)'))
    result = materialize_comparison(db_url)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    from audit_pipeline.alerts import root_cause

    assert root_cause(failure.step_failure_data.error).endswith(
        'does not have the contract\'s shape (id, "tenantId", "capturedAt", metrics): no column "tenantId". '
        "Nothing was compared; the table was not touched")
