"""Dagster's SQLite event log, writing a range run's materializations in batches: the local instance's.

A run of the daily tables over a range of days records one materialization per asset and day:
thousands for a long range. Dagster's SQLite event log writes them one by one, each in two
transactions (the run's file, then the index file) on a new connection, about 14 ms of CPU each
(`make demo`'s backfill spent most of its time there). dagster-postgres writes such a batch with
one statement per table (`PostgresEventLogStorage.store_event_batch`); this does the same on SQLite:
the batch in the run's file, then in the index file with its tags and the asset's latest record, in
one transaction each. Dagster hands it a batch when `DAGSTER_EVENT_BATCH_SIZE` is set (bookkeeping.py).

Only the local instance uses it (dagster.yaml: `event_log_storage`); production keeps its events in
PostgreSQL (deploy/dagster.yaml). Everything else is Dagster's own SqliteEventLogStorage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster._config import Field, StringSource
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import ConfigurableClassData

# The event types Dagster batches for a range run; anything else is stored one by one, as Dagster does.
BATCHED = ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose `store_event_batch` writes a batch at once (see the module)."""

    @classmethod
    def config_type(cls):
        # Where Dagster's default SQLite storage keeps its event logs: $DAGSTER_HOME/storage.
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        base_dir = config_value.get("base_dir")
        if not base_dir:
            if not os.environ.get("DAGSTER_HOME"):
                raise ValueError("BatchingSqliteEventLogStorage needs DAGSTER_HOME (its files go in $DAGSTER_HOME/storage) "
                                 "or a base_dir in its config")
            base_dir = os.path.join(os.environ["DAGSTER_HOME"], "storage")
        return cls(base_dir=base_dir, inst_data=inst_data)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if {event.get_dagster_event().event_type for event in events} not in BATCHED:
            return super().store_event_batch(events)
        events = [event for event in events if not event.get_dagster_event().is_asset_failed_to_materialize]
        if not events:
            return
        # As store_event does for one event: the run's file, then its mirror in the index file
        # (whose ids the tags and the asset's latest record refer to). A batch holds one asset's
        # events of one step (one per partition), so the latest of them is the asset's latest.
        insert = self.prepare_insert_event_batch(events)
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(insert)
        with self.index_transaction() as conn:
            event_ids = [row[0] for row in conn.execute(insert.returning(SqlEventLogStorageTable.c.id))]
            self._store_asset_event_tags(conn, events, event_ids)
            self._store_asset_event(conn, events[-1], event_ids[-1])
