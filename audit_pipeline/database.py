"""Engines for the application database: the one place that says how the pipeline connects.

Below the resource, the demo generator and the CLI, which all connect through it.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from .dialect import install_sqlite_functions, use_utc_sessions


def create_database_engine(url: URL) -> Engine:
    """An engine for the application database; plain `postgresql://` goes through psycopg 3."""
    if url.get_backend_name() == "sqlite":
        # Writers wait for each other (up to a minute) instead of failing with "database is locked".
        engine = create_engine(url, connect_args={"timeout": 60})
        install_sqlite_functions(engine)
        return engine
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a connection dropped between steps is replaced, not used
        connect_args={"connect_timeout": 10, "application_name": "audit-pipeline"},
    )
    use_utc_sessions(engine)  # naive timestamps (Prisma's DateTime) hold UTC
    return engine
