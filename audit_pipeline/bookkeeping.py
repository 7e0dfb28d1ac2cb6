"""How Dagster records this pipeline's runs: two environment settings that make it cheap.

A whole-history run materializes seven daily assets over about a thousand days: thousands of asset
partitions, each an event in the instance's storage. Written one by one, on a new connection each,
that bookkeeping costs more than the SQL (README, Performance). Dagster reads both settings from the
environment of the process doing the work, at the moment it does it:

- `DAGSTER_EVENT_BATCH_SIZE`: the process that executes a run (the CLI, a run worker) writes
  materialization events in batches (dagster-postgres; SQLite storage writes them one by one anyway).
- `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`: the process that creates a run (the CLI; the
  webserver for the UI's Materialize; the daemon for schedules, sensors and backfills) writes one
  "planned" event per asset of a range run instead of one per asset partition. The price, as
  Dagster's `event_log/base.py` states it: the days of a failed run show as missing, not failed, in
  the asset's partitions in the open-source UI, and the days of a run in progress are not marked as
  such (that status is read from per-day planned events); the run, its failure alert and the
  backfill's status still say which days failed.

`make dev` and the README's Deploy section set both for every process; the CLI and the code
location (which every run worker imports before it executes) set them where they are missing.
"""

import os

SETTINGS = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
}


def apply_defaults() -> None:
    """Set the settings above in this process's environment where the operator has not."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
