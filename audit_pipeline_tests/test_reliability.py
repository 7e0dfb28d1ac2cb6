"""Faults cannot corrupt the history, touch the source tables or leak through privileges.

All on PostgreSQL, the production database: least privilege with an output schema, source tables
unchanged, kill -9 in the middle of a backfill, overlapping concurrent backfills, and a connection
dropped in the middle of a statement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from audit_pipeline.output_checks import tenant_day_problems as check_tenant_days
from audit_pipeline.assets import _run, daily, snapshots
from audit_pipeline.demo_data import generate, write
from audit_pipeline.resources import DatabaseResource, create_database_engine
from audit_pipeline.settings import parse_database_url
from audit_pipeline.tables import DAILY_TABLES, SOURCE_TABLES

from .builder import count, warehouse
from .conftest import ADMIN_URL

CLI = str(Path(sys.executable).parent / "audit-pipeline")
ROW_CHECKED_TABLES = (*DAILY_TABLES, "compliance_trend_daily")


def demo_database(pg_databases, scale=1) -> tuple[str, Engine]:
    url = pg_databases.create()
    engine = create_database_engine(parse_database_url(url))
    write(engine, generate(scale))
    return url, engine


def source_fingerprint(engine: Engine) -> dict[str, tuple]:
    """Content and row versions (xmin) of every source table and of the old job's: any write would
    change one of them."""
    out = {}
    with engine.connect() as conn:
        for table in (*SOURCE_TABLES, '"DashboardSnapshot"'):
            out[table] = conn.execute(text(
                f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id::text)), "
                f"md5(string_agg(t.xmin::text, '|' ORDER BY t.id::text)) FROM {table} t"
            )).one()
            out[table + " indexes"] = tuple(conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = :t ORDER BY 1"), {"t": table.strip('"')}).scalars())
    return out


def tenant_day_problems(engine: Engine, schema: str | None = None) -> dict[str, list]:
    env = {"AUDIT_PIPELINE_OUTPUT_SCHEMA": schema} if schema else {}
    w = warehouse(engine, **env)
    return {t: check_tenant_days(w, t, None) for t in ROW_CHECKED_TABLES}


def cli(*args, env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_PIPELINE_")}
    return subprocess.Popen([CLI, *args], env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def test_least_privilege_role_with_output_schema_and_untouched_sources(pg_databases, tmp_path):
    url, admin_engine = demo_database(pg_databases)
    role = f"audit_reader_{uuid.uuid4().hex[:8]}"
    database = make_url(url).database
    # The README's grants, exactly.
    grants = f"""
        CREATE ROLE {role} LOGIN;
        GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role};
        GRANT USAGE ON SCHEMA public TO {role};
        GRANT SELECT ON tenant, audit_engagement, observation, compliance_requirement, audit_log TO {role};
        GRANT SELECT ON "DashboardSnapshot" TO {role};
        CREATE SCHEMA audit_pipeline AUTHORIZATION {role};
    """
    with admin_engine.begin() as conn:
        for statement in grants.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    before = source_fingerprint(admin_engine)
    role_url = make_url(url).set(username=role).render_as_string(hide_password=False)
    env = {"AUDIT_PIPELINE_DATABASE_URL": role_url, "AUDIT_PIPELINE_OUTPUT_SCHEMA": "audit_pipeline",
           "DAGSTER_HOME": str(tmp_path / "home")}
    try:
        run = cli("backfill", "--start", "2024-04-01", "--end", "2024-09-30", env=env)
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert source_fingerprint(admin_engine) == before
        assert tenant_day_problems(admin_engine, "audit_pipeline") == {t: [] for t in ROW_CHECKED_TABLES}
        with admin_engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_pipeline.dashboard_snapshot")).scalar_one() > 0
            assert conn.execute(text("SELECT to_regclass('public.dashboard_snapshot')")).scalar_one() is None
        # The role really cannot write the sources.
        role_engine = create_engine(role_url.replace("postgresql+psycopg", "postgresql+psycopg"))
        with pytest.raises(Exception, match="permission denied"):
            with role_engine.begin() as conn:
                conn.execute(text("UPDATE observation SET title = title"))
        role_engine.dispose()
    finally:
        admin_engine.dispose()
        with create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_kill_9_mid_backfill_leaves_only_whole_days_and_a_rerun_completes(pg_databases, tmp_path):
    url, engine = demo_database(pg_databases)
    env = {"AUDIT_PIPELINE_DATABASE_URL": url, "DAGSTER_HOME": str(tmp_path / "home")}
    args = ("backfill", "--start", "2024-04-01", "--end", "2025-03-31")
    run = cli(*args, env=env)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:  # until the first table is committed
            with engine.connect() as conn:
                if conn.execute(text("SELECT to_regclass('severity_snapshot')")).scalar_one() and count(engine, "severity_snapshot"):
                    break
            time.sleep(0.05)
        assert run.poll() is None, "the backfill finished before it could be killed"
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL
    # Whatever was written is whole: every day present has exactly one row per tenant.
    assert tenant_day_problems(engine) == {t: [] for t in ROW_CHECKED_TABLES}
    assert count(engine, "severity_snapshot") > 0
    partial = {t: count(engine, t) for t in DAILY_TABLES}

    rerun = cli(*args, env=env)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert tenant_day_problems(engine) == {t: [] for t in ROW_CHECKED_TABLES}
    full = {t: count(engine, t) for t in DAILY_TABLES}
    assert len(set(full.values())) == 1 and full["severity_snapshot"] == partial["severity_snapshot"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT snapshot_date) FROM dashboard_snapshot")).scalar_one() == 365
    engine.dispose()


def test_overlapping_backfills_at_once_both_finish_without_duplicates_or_gaps(pg_databases, tmp_path):
    url, engine = demo_database(pg_databases)
    env = {"AUDIT_PIPELINE_DATABASE_URL": url, "DAGSTER_HOME": str(tmp_path / "home")}
    first = cli("backfill", "--start", "2024-04-01", "--end", "2024-08-31", env=env)
    second = cli("backfill", "--start", "2024-07-01", "--end", "2024-10-31", env=env)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0, results[0][1]
    assert second.returncode == 0, results[1][1]
    assert tenant_day_problems(engine) == {t: [] for t in ROW_CHECKED_TABLES}
    with engine.connect() as conn:
        days = conn.execute(text("SELECT count(DISTINCT snapshot_date) FROM health_snapshot")).scalar_one()
    assert days == 214  # 2024-04-01..2024-10-31, none lost
    engine.dispose()


def test_a_connection_dropped_mid_statement_is_retried(pg_databases, monkeypatch):
    url, engine = demo_database(pg_databases)
    monkeypatch.setattr(_run, "TRANSIENT_FIRST_WAIT_SECONDS", 0)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    killed = []

    def drop_connection(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO severity_snapshot" in statement and not killed:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with admin.connect() as admin_conn:
                admin_conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)

    event.listen(Engine, "before_cursor_execute", drop_connection)
    try:
        result = dg.materialize([daily.daily_tables], selection=[snapshots.severity_snapshot.key], resources={"database": DatabaseResource(url=url)},
                                tags={"dagster/asset_partition_range_start": "2024-06-01",
                                      "dagster/asset_partition_range_end": "2024-06-30"})
    finally:
        event.remove(Engine, "before_cursor_execute", drop_connection)
        admin.dispose()
    assert killed, "the connection was never dropped"
    assert result.success
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1
    assert tenant_day_problems(engine)["severity_snapshot"] == []
    engine.dispose()


def test_an_unreachable_database_fails_the_run_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(_run, "TRANSIENT_FIRST_WAIT_SECONDS", 0)
    url = "postgresql://auditor:S3cret-pw@127.0.0.1:1/audit"
    result = dg.materialize([daily.daily_tables], selection=[snapshots.severity_snapshot.key], resources={"database": DatabaseResource(url=url)},
                            partition_key="2024-06-01", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.to_string()
    assert "connection" in message.lower() and "127.0.0.1" in message
    assert "S3cret-pw" not in message
    assert len([e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]) == _run.TRANSIENT_RETRIES
