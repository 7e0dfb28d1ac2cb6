"""Fixtures: a fresh database per test on SQLite and on PostgreSQL through both URL forms.

PostgreSQL tests create a database with a unique name and drop it afterwards. Where no server is
reachable they are skipped with the reason, unless AUDIT_PIPELINE_REQUIRE_POSTGRES=1 (CI sets it),
which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from functools import cache

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import parse_database_url

ADMIN_URL = os.environ.get("AUDIT_PIPELINE_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("AUDIT_PIPELINE_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql+psycopg", "postgresql"]


@cache
def postgres_unavailable_reason() -> str | None:
    engine = create_engine(ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as error:  # any failure to connect means: no server to test against
        return f"PostgreSQL not reachable at {make_url(ADMIN_URL).render_as_string(hide_password=True)}: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()


def require_postgres() -> None:
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"{reason} (AUDIT_PIPELINE_REQUIRE_POSTGRES=1: PostgreSQL tests must run)")
    pytest.skip(reason)


class PostgresDatabases:
    """Creates uniquely named databases and drops them, whatever the test left connected."""

    def __init__(self):
        self.names: list[str] = []
        self.admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

    def create(self, driver: str = "postgresql+psycopg") -> str:
        name = f"audit_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return make_url(ADMIN_URL).set(drivername=driver, database=name).render_as_string(hide_password=False)

    def drop_all(self):
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture
def pg_databases():
    require_postgres()
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A URL of an empty database, as an operator would write it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.sqlite'}"
        return
    require_postgres()
    databases = PostgresDatabases()
    yield databases.create(request.param)
    databases.drop_all()


@pytest.fixture
def engine(db_url):
    engine = create_database_engine(parse_database_url(db_url))
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """Tests never see the developer's settings, and never touch .data/ or .dagster_home/."""
    for name in list(os.environ):
        if name.startswith("AUDIT_PIPELINE_") and name not in ("AUDIT_PIPELINE_TEST_PG_URL", "AUDIT_PIPELINE_REQUIRE_POSTGRES"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def new_york_pg_url(pg_databases):
    """A PostgreSQL database whose sessions default to America/New_York (`ALTER DATABASE ... SET
    timezone`), as a server or database configured for another zone would: the pipeline must not
    depend on the session's time zone."""
    url = pg_databases.create()
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{make_url(url).database}\" SET timezone TO 'America/New_York'"))
    return url
