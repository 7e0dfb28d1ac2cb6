"""`audit-pipeline` as an operator runs it: a subprocess, its output and its exit code."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from .builder import SourceBuilder, count, instance_at

CLI = str(Path(sys.executable).parent / "audit-pipeline")


def run_cli(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_PIPELINE_") and k != "DAGSTER_HOME"}
    full_env.update(env or {})
    return subprocess.run([CLI, *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=300)


def history(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.observation("o1", severity="HIGH")
    src.requirement("r1")


def test_backfill_records_the_run_in_dagster_home_and_prints_a_summary(engine, db_url, tmp_path):
    history(engine)
    home = tmp_path / "dagster_home"
    result = run_cli("backfill", "--start", "2024-06-01", "--end", "2024-06-30",
                     env={"AUDIT_PIPELINE_DATABASE_URL": db_url, "DAGSTER_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "severity_snapshot" in result.stdout and "Done: 2024-06-01..2024-06-30, 30 days, 12 assets" in result.stdout
    assert "written: " in result.stderr and "severity_snapshot (30 rows" in result.stderr  # progress, a line per step
    assert count(engine, "dashboard_snapshot") == 30
    with instance_at(home) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags["dagster/asset_partition_range_start"] == "2024-06-01"
        # The local instance (the CLI made it: its event log writes a range in batches) has every day
        # of every daily asset, each once, and each asset's latest materialization is the last day's.
        assert type(instance.event_log_storage).__name__ == "BatchingSqliteEventLogStorage"
        days = {f"2024-06-{day:02}" for day in range(1, 31)}
        for asset in ("severity_snapshot", "observation_history", "legacy_snapshot_diff"):
            key = dg.AssetKey(asset)
            assert set(instance.get_materialized_partitions(key)) == days
            records = instance.fetch_materializations(key, limit=100).records
            assert sorted(r.partition_key for r in records) == sorted(days)
            assert instance.get_latest_materialization_event(key).dagster_event.partition == "2024-06-30"


def test_the_history_is_updated_from_new_log_rows_and_rebuilt_on_request(engine, db_url, tmp_path):
    src = SourceBuilder(engine)
    history(engine)
    src.log("observation", "o1", "2024-06-10 10:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    env = {"AUDIT_PIPELINE_DATABASE_URL": db_url, "DAGSTER_HOME": str(tmp_path / "home")}
    args = ("backfill", "--start", "2024-06-01", "--end", "2024-06-30")
    for extra, mode in (((), "rebuild"), ((), "update"), (("--rebuild-history",), "rebuild")):
        result = run_cli(*args, *extra, env=env)
        assert result.returncode == 0, result.stderr
        assert f"record history: {mode}" in result.stderr
    with instance_at(tmp_path / "home") as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("observation_history"))
        metadata = event.asset_materialization.metadata
        assert metadata["mode"].value == "rebuild" and metadata["reason"].value == "full rebuild requested"
        assert metadata["dagster/row_count"].value == 2  # LOW until 06-10, HIGH from then on


def test_a_password_never_reaches_output_run_config_logs_or_metadata(pg_databases, tmp_path):
    from audit_pipeline.resources import create_database_engine
    from audit_pipeline.settings import parse_database_url

    url = pg_databases.create("postgresql+psycopg")
    engine = create_database_engine(parse_database_url(url))
    history(engine)
    engine.dispose()
    secret = "Pa55-w0rd-never-shown"
    url_with_password = url.replace("root@", f"root:{secret}@")  # trust auth accepts any password
    home = tmp_path / "home"
    result = run_cli("backfill", "--start", "2024-06-01", "--end", "2024-06-03",
                     env={"AUDIT_PIPELINE_DATABASE_URL": url_with_password, "DAGSTER_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "root:***@" in result.stdout
    assert secret not in result.stdout + result.stderr
    with instance_at(home) as instance:
        run = instance.get_runs()[0]
        assert secret not in repr(run.run_config) + repr(run.tags)
        records = instance.get_records_for_run(run.run_id).records
        assert records and all(secret not in repr(r.event_log_entry) for r in records)


def test_backfill_end_defaults_to_the_last_complete_day_and_home_to_dot_dagster_home(engine, db_url, tmp_path):
    history(engine)
    result = run_cli("backfill", "--start", "2026-11-01", env={"AUDIT_PIPELINE_DATABASE_URL": db_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".dagster_home" / "dagster.yaml").exists()
    assert "Done: 2026-11-01.." in result.stdout


@pytest.mark.parametrize(
    "env, args, message",
    [
        ({"AUDIT_PIPELINE_TIMEZONE": "Mars/Olympus"}, [], "AUDIT_PIPELINE_TIMEZONE='Mars/Olympus' is not an IANA time zone"),
        ({"AUDIT_PIPELINE_START_DATE": "2024-13-01"}, [], "AUDIT_PIPELINE_START_DATE='2024-13-01' is not a date"),
        ({"AUDIT_PIPELINE_DATABASE_URL": "not a url"}, [], "AUDIT_PIPELINE_DATABASE_URL is not a valid SQLAlchemy URL"),
        ({"AUDIT_PIPELINE_DATABASE_URL": "mysql://u:p@h/db"}, [], "only postgresql and sqlite are supported"),
        ({}, ["--start", "2023-01-01"], "--start 2023-01-01 is before the first partition 2024-04-01"),
        ({}, ["--start", "2024-06-01", "--end", "2099-01-01"], "--end 2099-01-01 is after the last complete day"),
        ({}, ["--start", "2024-06-02", "--end", "2024-06-01"], "--end 2024-06-01 is before --start 2024-06-02"),
    ],
)
def test_bad_settings_and_arguments_are_one_line_errors(env, args, message, tmp_path):
    result = run_cli("backfill", *(args or ["--start", "2024-06-01"]), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr


def test_unreachable_database_is_one_line_and_never_shows_the_password(tmp_path):
    url = "postgresql://auditor:S3cr3t-pw@127.0.0.1:1/audit"  # nothing listens on port 1
    result = run_cli("backfill", "--start", "2024-06-01", env={"AUDIT_PIPELINE_DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("audit-pipeline: error: cannot reach the database postgresql+psycopg://auditor:***@127.0.0.1:1/audit")
    assert result.stderr.strip().count("\n") == 0
    assert "S3cr3t-pw" not in result.stdout + result.stderr


def test_missing_source_tables_are_reported(tmp_path):
    result = run_cli("backfill", "--start", "2024-06-01",
                     env={"AUDIT_PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "has no source table tenant, audit_engagement, observation, compliance_requirement, audit_log" in result.stderr


def test_demo_data_refuses_a_database_that_has_source_tables(engine, db_url, tmp_path):
    history(engine)
    result = run_cli("demo-data", "--url", db_url, cwd=tmp_path)
    assert result.returncode == 1
    assert "already has source tables" in result.stderr


def test_a_failed_run_is_a_one_line_error_naming_the_step_and_cause(engine, db_url, tmp_path):
    history(engine)
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE health_snapshot (tenant_id text, snapshot_date date, score integer)"))
    result = run_cli("backfill", "--start", "2024-06-01", "--end", "2024-06-02",
                     env={"AUDIT_PIPELINE_DATABASE_URL": db_url, "DAGSTER_HOME": str(tmp_path / "h")})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("audit-pipeline: error: run ") and " failed: " in last
    assert "output table health_snapshot exists with other columns" in last
