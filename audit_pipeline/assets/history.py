"""The record history: every finding's severity and every requirement's status, day by day."""

import dagster as dg
from pydantic import Field
from sqlalchemy.exc import DBAPIError

from ..history import HistoryUpdate, update_record_history
from ..resources import DATABASE_POOL, DatabaseResource
from ..source_checks import problems_result
from ..sql.checks import history_problems
from ..sql.history import KINDS
from ._run import retry_if_transient, table_spec

GROUP = "history"

observation_history = table_spec(
    "observation_history", GROUP, "Each observation's severity on the days it was open: one row per run of days with one value."
)
requirement_history = table_spec(
    "requirement_history", GROUP, "Each requirement's status from its creation on: one row per run of days with one value."
)


class HistoryConfig(dg.Config):
    full_rebuild: bool = Field(
        default=False,
        description="Parse the whole audit_log again and derive every record, not only those of the new log rows.",
    )


KIND_OF = {kind.history: kind for kind in KINDS}

# Checked in the step, inside the update's transaction, on the records it derived: a night's check
# reads a night's records, not the whole history.
RUNS_WELL_FORMED = "runs_well_formed"
check_specs = [
    dg.AssetCheckSpec(
        RUNS_WELL_FORMED, asset=spec.key, blocking=True,
        description="Among the records the run derived: at most one open run per record; runs non-empty, not "
        "overlapping, maximal (neighbours differ); values normalized (trimmed, upper case).",
    )
    for spec in (observation_history, requirement_history)
]


@dg.multi_asset(
    specs=[observation_history, requirement_history],
    check_specs=check_specs,
    can_subset=True,
    pool=DATABASE_POOL,
    description=(
        "Brought up to date from the audit_log rows read since the last run (each row once, whatever order "
        "they commit in): only the records they touch are derived again. full_rebuild derives every record. "
        "Both tables are updated together, in one transaction with the log position."
    ),
)
def record_history(context: dg.AssetExecutionContext, config: HistoryConfig, database: DatabaseResource):
    w = database.warehouse()
    specs = (observation_history, requirement_history)
    if not context.selected_asset_keys:  # its checks alone: every record, nothing updated
        for spec in specs:
            if dg.AssetCheckKey(spec.key, RUNS_WELL_FORMED) in context.selected_asset_check_keys:
                kind = KIND_OF[spec.key.path[-1]]
                problems = w.reader.find(history_problems(w.dialect, w.tables.ref(kind.history), kind.id_column, kind.value_column))
                yield problems_result(problems, asset_key=spec.key, check_name=RUNS_WELL_FORMED)
        return
    try:
        update = update_record_history(w, full_rebuild=config.full_rebuild)
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    for gap in update.given_up:
        context.log.warning(
            f"audit_log ids {gap.first}..{gap.last} were given up as rolled back; a row committed with one of "
            "them later is not in the history until a full rebuild (see README)."
        )
    context.log.info(
        f"record history: {update.mode} ({update.reason}): {update.log_rows_read} log rows, "
        f"{'all' if update.records_derived is None else update.records_derived} records derived in {update.seconds:.2f} s"
    )
    for spec in specs:
        if spec.key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=history_metadata(update, spec.key.path[-1]))
    for spec in specs:
        if dg.AssetCheckKey(spec.key, RUNS_WELL_FORMED) in context.selected_asset_check_keys:
            yield problems_result(update.problems[spec.key.path[-1]], asset_key=spec.key, check_name=RUNS_WELL_FORMED,
                                  records_checked="all" if update.records_derived is None else update.records_derived)


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
        "step_seconds": dg.MetadataValue.float(round(update.seconds, 3)),  # one step writes both tables
    }
