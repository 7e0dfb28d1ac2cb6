"""Bad input never corrupts anything: malformed images, drifted output tables, hostile values."""

import datetime as dt

import pytest
from sqlalchemy import event, insert, inspect, text

from audit_pipeline.current_state import update_current_findings
from audit_pipeline import tables

from audit_pipeline.assets.changes import change_metadata
from audit_pipeline.output_checks import change_identity_problems
from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import parse_database_url
from audit_pipeline.output_tables import OutputSchemaError
from audit_pipeline.warehouse import Warehouse

from .builder import SourceBuilder, count, ist, rows, warehouse

D = dt.date(2024, 6, 10)

TEXT_IMAGE_DDL = """
CREATE TABLE tenant (id text PRIMARY KEY, name text, onboarding_completed boolean, created_at timestamptz);
CREATE TABLE observation (id text PRIMARY KEY, tenant_id text, title text, severity text, status text,
    created_at timestamptz, closed_at timestamptz, due_date date, assigned_to text, engagement_id text, repeat_of_id text);
CREATE TABLE compliance_requirement (id text PRIMARY KEY, tenant_id text, title text, status text, created_at timestamptz);
CREATE TABLE audit_engagement (id text PRIMARY KEY, tenant_id text, name text, status text, start_date date, end_date date);
CREATE TABLE audit_log (id bigint PRIMARY KEY, tenant_id text, table_name text, record_id text, action text,
    old_data text, new_data text, changed_at timestamptz);
INSERT INTO tenant VALUES ('t1', 'Bank', true, '2024-01-01 00:00+05:30');
INSERT INTO observation (id, tenant_id, title, severity, status, created_at)
    VALUES ('o1', 't1', 'F', 'LOW', 'OPEN', '2024-06-01 10:00+05:30');
INSERT INTO audit_log VALUES
    (1, 't1', 'observation', 'o1', 'UPDATE', '{not json', '{"severity": "CRITICAL"', '2024-06-05 10:00+05:30'),
    (2, 't1', 'observation', 'o1', 'UPDATE', '"severity"', '["severity"]', '2024-06-06 10:00+05:30'),
    (3, 't1', 'observation', 'o1', 'UPDATE', 'null', '', '2024-06-07 10:00+05:30'),
    (4, 't1', 'observation', 'o1', 'UPDATE', '{"severity": "low"}', '{"severity": " High "}', '2024-06-12 10:00+05:30');
"""


def test_postgres_images_in_a_text_column_with_invalid_json(pg_databases):
    engine = create_database_engine(parse_database_url(pg_databases.create()))
    with engine.begin() as conn:
        for statement in TEXT_IMAGE_DDL.split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    w = warehouse(engine)
    w.writer.severity_snapshot(dt.date(2024, 6, 1), dt.date(2024, 6, 15))
    # Rows 1-3 have no usable image; row 4's old image says LOW before 06-12, new says HIGH after.
    assert rows(engine, "severity_snapshot", D)["t1"]["low_open"] == 1
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 12))["t1"]["high_open"] == 1
    engine.dispose()


def test_a_drifted_output_table_stops_the_run_and_keeps_its_data(engine):
    SourceBuilder(engine).tenant()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE severity_snapshot (tenant_id text, snapshot_date date, critical integer, note text)"))
        conn.execute(text("INSERT INTO severity_snapshot VALUES ('t1', '2024-06-01', 3, 'kept')"))
    with pytest.raises(OutputSchemaError) as raised:
        warehouse(engine).writer.severity_snapshot(D, D)
    message = str(raised.value)
    assert "severity_snapshot" in message
    assert "missing: critical_open, high_open, low_open, medium_open, open_total" in message
    assert "unexpected: critical, note" in message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM severity_snapshot")).scalar_one() == "kept"


def test_an_index_missing_from_an_existing_table_is_created(engine):
    # A table made by an earlier version, before one of its indexes was added: prepare() adds it.
    SourceBuilder(engine).tenant()
    w = warehouse(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX severity_snapshot_by_day"))
        conn.execute(text("INSERT INTO severity_snapshot (tenant_id, snapshot_date, critical_open, high_open, medium_open, "
                          "low_open, open_total) VALUES ('t1', '2024-06-01', 0, 0, 0, 0, 0)"))
    Warehouse(engine, w.settings).tables.prepare()
    assert "severity_snapshot_by_day" in {i["name"] for i in inspect(engine).get_indexes("severity_snapshot")}
    assert count(engine, "severity_snapshot") == 1  # the table was kept


MARK = "Zq9'marker"


def test_values_only_ever_travel_as_bound_parameters(engine):
    """Every value in the source carries MARK; no SQL text sent by a full run may contain it."""
    src = SourceBuilder(engine)
    tenant = src.tenant(f"t{MARK}", name=f"Bank {MARK}")
    src.engagement(f"e{MARK}", tenant=tenant, name=MARK, status=MARK)
    src.observation(f"a{MARK}", tenant=tenant, severity=f"HIGH{MARK}", title=MARK, engagement=f"e{MARK}")
    src.observation(f"b{MARK}", tenant=tenant, severity="LOW", repeat_of=f"a{MARK}")
    src.requirement(f"r{MARK}", tenant=tenant, status=MARK)
    src.log("observation", f"a{MARK}", "2024-06-05 10:00:00", old={"severity": MARK}, new={"severity": "HIGH", MARK: MARK}, tenant=tenant)
    tables.legacy_metadata.create_all(engine)
    with engine.begin() as conn:  # the old job's row, the marker in its id, tenant and metrics
        conn.execute(insert(tables.legacy_dashboard_snapshot), [dict(
            id=f"x{MARK}", tenantId=tenant, capturedAt=ist("2024-06-06 01:00:00"),
            metrics={"healthScore": MARK, MARK: 1, "severity": {"total": 9}})])
    statements = []
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    w = warehouse(engine)
    first, last = dt.date(2024, 6, 1), dt.date(2024, 6, 12)
    for step in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot,
                 w.writer.dashboard_snapshot, w.writer.compliance_trend_daily, w.writer.snapshot_change):
        step(first, last)
    w.writer.severity_trend_quarterly(first, last), update_current_findings(w, full_rebuild=True)
    w.writer.legacy_snapshot_diff(dt.date(2024, 6, 1), dt.date(2024, 6, 12))
    # The changes' check and their preview (which reads titles) too.
    assert change_identity_problems(w, (first, last)) == []
    assert f"“{MARK}”" in change_metadata(w, first, last)["largest movements (first 10)"].value  # a title
    event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) > 20
    assert not [s for s in statements if "marker" in s]
    assert count(engine, "repeat_finding") == 1 and rows(engine, "severity_snapshot", D)[tenant]["open_total"] == 2
    assert count(engine, "legacy_snapshot_diff") == 9  # no number in the old row but severity.total, 9 against 2


def test_postgres_images_in_jsonb_columns(pg_databases):
    """The application may keep its images as jsonb: same answers, null values and non-objects included."""
    engine = create_database_engine(parse_database_url(pg_databases.create()))
    ddl = TEXT_IMAGE_DDL.split("INSERT INTO audit_log")[0].replace("old_data text, new_data text", "old_data jsonb, new_data jsonb")
    with engine.begin() as conn:
        for statement in ddl.split(";\n"):
            if statement.strip():
                conn.exec_driver_sql(statement)
        conn.exec_driver_sql("""
            INSERT INTO audit_log VALUES
            (1, 't1', 'observation', 'o1', 'UPDATE', '{"severity": "LOW"}', '{"severity": null}', '2024-06-05 10:00+05:30'),
            (2, 't1', 'observation', 'o1', 'UPDATE', '"severity"', '["severity"]', '2024-06-06 10:00+05:30'),
            (3, 't1', 'observation', 'o1', 'UPDATE', '{"severity": null}', '{"severity": " critical "}', '2024-06-12 10:00+05:30')
        """)
    warehouse(engine).writer.severity_snapshot(dt.date(2024, 6, 1), dt.date(2024, 6, 15))
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 4))["t1"]["low_open"] == 1  # old image of row 1
    assert rows(engine, "severity_snapshot", D)["t1"]["open_total"] == 1  # JSON null since 06-05: no column
    assert rows(engine, "severity_snapshot", D)["t1"]["low_open"] == 0
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 12))["t1"]["critical_open"] == 1
    engine.dispose()
