"""The record history: every finding's severity and every requirement's status, day by day."""

import dagster as dg
from pydantic import Field
from sqlalchemy.exc import DBAPIError

from ..history import HistoryUpdate, update_record_history
from ..resources import DatabaseResource
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


@dg.multi_asset(
    specs=[observation_history, requirement_history],
    description=(
        "Brought up to date from the audit_log rows read since the last run (each row once, whatever order "
        "they commit in): only the records they touch are derived again. full_rebuild derives every record."
    ),
)
def record_history(context: dg.AssetExecutionContext, config: HistoryConfig, database: DatabaseResource):
    # Both tables in one transaction with the log position: they always agree with each other.
    try:
        update = update_record_history(database.warehouse(), full_rebuild=config.full_rebuild)
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    for gap in update.given_up:
        context.log.warning(
            f"audit_log ids {gap.first}..{gap.last} were given up as rolled back; a row committed with one of "
            "them later is not in the history until a full rebuild (see README)."
        )
    context.log.info(
        f"record history: {update.mode} ({update.reason}): {update.log_rows_read} log rows, "
        f"{update.records_derived} records derived in {update.seconds:.2f} s"
    )
    for spec in (observation_history, requirement_history):
        yield dg.MaterializeResult(asset_key=spec.key, metadata=history_metadata(update, spec.key.path[-1]))


def history_metadata(update: HistoryUpdate, table: str) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(update.rows[table]),
        "mode": update.mode,
        "reason": update.reason,
        "log_rows_read": dg.MetadataValue.int(update.log_rows_read),
        "records_derived": dg.MetadataValue.int(update.records_derived),
        "log_position": dg.MetadataValue.int(update.position.after),
        "log_ids_waited_for": dg.MetadataValue.int(update.position.waiting_ids),
        "seconds": dg.MetadataValue.float(round(update.seconds, 3)),
        "step_seconds": dg.MetadataValue.float(round(update.seconds, 3)),  # one step writes both tables
    }
