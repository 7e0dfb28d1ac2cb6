"""The production instance configuration, against a real PostgreSQL."""

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from audit_pipeline.resources import DATABASE_POOL, create_database_engine
from audit_pipeline.settings import parse_database_url

from .builder import SourceBuilder, instance_at

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "audit-pipeline")


def test_production_instance_records_runs_in_postgres(pg_databases, tmp_path, monkeypatch):
    app_url = pg_databases.create()
    storage_url = make_url(pg_databases.create())
    engine = create_database_engine(parse_database_url(app_url))
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1")
    engine.dispose()

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_USERNAME": storage_url.username,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_HOST": storage_url.host,
        "DAGSTER_PG_PORT": str(storage_url.port or 5432),
        "DAGSTER_PG_DB": storage_url.database,
        "AUDIT_PIPELINE_DATABASE_URL": app_url,
    }
    result = subprocess.run([CLI, "backfill", "--start", "2024-06-01", "--end", "2024-06-03"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    storage = create_engine(storage_url.set(drivername="postgresql+psycopg"))
    with storage.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM runs")).scalars().all()
        materializations = conn.execute(
            text("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")).scalar_one()
    storage.dispose()
    assert statuses == ["SUCCESS"]
    assert materializations == 10 * 3 + 2  # ten daily assets x three days, the two current-state tables

    # The same file loads as an instance with its queue and pool limits.
    for name, value in env.items():
        if name != "PATH":
            monkeypatch.setenv(name, value)
    with instance_at(home) as instance:
        assert_run_queue_and_database_pool(instance)
        assert len(instance.get_runs()) == 1
        # The CLI's run took its slots of the pool (and gave them back).
        assert instance.event_log_storage.get_concurrency_info(DATABASE_POOL).slot_count == 2
        assert instance.event_log_storage.get_concurrency_info(DATABASE_POOL).claimed_slots == []


def assert_run_queue_and_database_pool(instance: dg.DagsterInstance) -> None:
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert concurrency.run_queue_config.tag_concurrency_limits == []
    # Steps that work on the application database: at most two at once, each claiming its slot.
    assert concurrency.pool_config.pool_granularity.value == "op"
    assert concurrency.pool_config.default_pool_limit == 2


def test_the_local_instance_has_the_same_limits(tmp_path):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with instance_at(tmp_path) as instance:
        assert_run_queue_and_database_pool(instance)
        assert instance.event_log_storage.supports_global_concurrency_limits
