"""Dagster's PostgreSQL event log, asking the catalog once per process whether its tables and columns exist.

dagster-postgres looks its own schema up again for every event it stores: whether
`asset_check_executions` exists (each check's planned and evaluated event), whether `asset_keys` has
its newer columns (each materialization), whether `asset_event_tags` exists (each event with tags).
Each question is one or more catalog queries and SQLAlchemy's reflection in Python: a night's run
asks about eighty of them, a few tenths of a second of every night. A table or column that exists
stays: this keeps the answers that were yes for the life of the process (a no is asked again, so a
`dagster instance migrate` meanwhile is seen).

Production's instance uses it (deploy/dagster.yaml: `event_log_storage`); everything else is
dagster-postgres's own PostgresEventLogStorage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy import Connection, inspect


class SchemaCachingPostgresEventLogStorage(PostgresEventLogStorage):
    """PostgresEventLogStorage that remembers which of its tables and columns exist (see the module)."""

    def __init__(self, *args, **kwargs):
        # Before the parent's constructor, which may already ask.
        self._tables_present: set[str] = set()
        self._asset_key_columns: frozenset[str] = frozenset()
        super().__init__(*args, **kwargs)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        # As PostgresEventLogStorage.from_config_value, which names its own class.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables_present and super().has_table(table_name):
            self._tables_present.add(table_name)
        return table_name in self._tables_present

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name not in self._asset_key_columns:
            self._asset_key_columns = frozenset(c["name"] for c in inspect(conn).get_columns(AssetKeyTable.name))
        return column_name in self._asset_key_columns
