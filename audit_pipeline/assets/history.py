"""The record history: every finding's severity and every requirement's status, day by day.

Both tables are brought up to date together, first in every run of the daily tables (assets/daily.py):
their daily partitions are the days whose snapshots they serve, so that a backfill runs them in the
same run as the snapshots. An update brings every day up to date, whichever days the run is for.
"""

import dagster as dg
from pydantic import Field

from ..history import HistoryUpdate, update_record_history
from ..partitions import daily_partitions
from ..source_checks import problems_result
from ..sql.checks import history_problems
from ..sql.history import KINDS
from ..warehouse import Warehouse
from ._run import Task, table_spec

GROUP = "history"

observation_history = table_spec(
    "observation_history", GROUP, "Each observation's severity on the days it was open: one row per run of days with one value.",
    daily_partitions,
)
requirement_history = table_spec(
    "requirement_history", GROUP, "Each requirement's status from its creation on: one row per run of days with one value.",
    daily_partitions,
)
SPECS = (observation_history, requirement_history)
TABLES = tuple(spec.key.to_user_string() for spec in SPECS)


class HistoryConfig(dg.Config):
    full_rebuild: bool = Field(
        default=False,
        description="Parse the whole audit_log again and derive every record's history, not only those of the new log rows.",
    )


KIND_OF = {kind.history: kind for kind in KINDS}

# Checked in the update, inside its transaction, on the records it derived: a night's check reads a
# night's records, not the whole history.
RUNS_WELL_FORMED = "runs_well_formed"
check_specs = [
    dg.AssetCheckSpec(
        RUNS_WELL_FORMED, asset=spec.key, blocking=True,
        description="Among the records the run derived: at most one open run per record; runs non-empty, not "
        "overlapping, maximal (neighbours differ); values normalized (trimmed, upper case).",
    )
    for spec in SPECS
]


def update_task(context: dg.AssetExecutionContext, w: Warehouse, config: HistoryConfig) -> Task:
    """Both tables brought up to date from the log rows read since the last run (or rebuilt)."""

    def work() -> list:
        update = update_record_history(w, full_rebuild=config.full_rebuild)
        for gap in update.given_up:
            context.log.warning(
                f"audit_log ids {gap.first}..{gap.last} were given up as rolled back; a row committed with one of "
                "them later is not in the history until a full rebuild (see README)."
            )
        context.log.info(
            f"record history: {update.mode} ({update.reason}): {update.log_rows_read} log rows, "
            f"{'all' if update.records_derived is None else update.records_derived} records derived in {update.seconds:.2f} s"
        )
        derived = "all" if update.records_derived is None else update.records_derived
        materializations = [dg.MaterializeResult(asset_key=table, metadata=history_metadata(update, table)) for table in TABLES]
        checks = [problems_result(update.problems[table], asset_key=table, check_name=RUNS_WELL_FORMED, records_checked=derived)
                  for table in TABLES]
        return materializations + checks

    return Task(TABLES, work, blocking=True)


def check_task(w: Warehouse, table: str) -> Task:
    """The check alone, outside an update: every record's runs."""

    def work() -> list:
        kind = KIND_OF[table]
        problems = w.reader.find(history_problems(w.dialect, w.tables.ref(kind.history), kind.id_column, kind.value_column))
        return [problems_result(problems, asset_key=table, check_name=RUNS_WELL_FORMED)]

    return Task((table,), work, check=RUNS_WELL_FORMED, blocking=True)


def history_metadata(update: HistoryUpdate, table: str) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(update.rows[table]),
        "mode": update.mode,
        "reason": update.reason,
        "log_rows_read": dg.MetadataValue.int(update.log_rows_read),
        "records_derived": "all" if update.records_derived is None else dg.MetadataValue.int(update.records_derived),
        "log_position": dg.MetadataValue.int(update.position.after),
        "log_ids_waited_for": dg.MetadataValue.int(update.position.waiting_ids),
        "seconds": dg.MetadataValue.float(round(update.seconds, 3)),
    }
