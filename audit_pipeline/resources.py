"""The application database as a Dagster resource."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .database import create_database_engine
from .settings import DATABASE_URL_VAR, DEMO_DATABASE_PATH, Settings, load_settings, parse_database_url, redact
from .warehouse import Warehouse

# The Dagster pool of every step that works on the application database (assets and asset checks).
# Its limit, in the instance's `concurrency:` settings (dagster.yaml, deploy/dagster.yaml), bounds
# how many such steps run at once, however their runs were launched: CLI, schedule, sensor, the
# UI's Materialize or a backfill. Each step holds at most two connections (writes at once).
DATABASE_POOL = "audit_pipeline_database"


def demo_database_url(path: Path = DEMO_DATABASE_PATH) -> URL:
    """The embedded demo database, created with demo data on first use."""
    if not path.exists():
        from .demo_data import create_demo_database

        create_demo_database(path)
    return URL.create("sqlite", database=str(path.resolve()))


class DatabaseResource(dg.ConfigurableResource):
    """The audit application's database: its source tables are read, the pipeline's tables written.

    `url` empty means the embedded SQLite demo database (`.data/demo.sqlite`, created on first use).
    """

    url: str = ""

    _engine: Engine | None = PrivateAttr(default=None)
    # One per run: every step of an in-process run shares it, so the output tables are checked
    # (and created) once per run, not once per step.
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return load_settings()

    def sqlalchemy_url(self) -> URL:
        return parse_database_url(self.url) if self.url else demo_database_url()

    def display_url(self) -> str:
        """The URL as it may be shown: never with its password."""
        return redact(self.sqlalchemy_url())

    def get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_database_engine(self.sqlalchemy_url())
        return self._engine

    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.get_engine(), self.settings())
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._warehouse = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def database_resource_from_env() -> DatabaseResource:
    # Through EnvVar, the URL (and its password) is resolved at run time and never stored in run
    # config or shown in the UI, which display only the variable's name.
    if os.environ.get(DATABASE_URL_VAR):
        return DatabaseResource(url=dg.EnvVar(DATABASE_URL_VAR))
    return DatabaseResource()
