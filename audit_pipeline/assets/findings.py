"""Assets read from the application's current state: repeat-finding chains and engagement progress."""

import dagster as dg
from pydantic import Field
from sqlalchemy.exc import DBAPIError

from .. import source_checks
from ..current_state import FindingsUpdate, update_current_findings
from ..resources import DATABASE_POOL, DatabaseResource
from ._run import retry_if_transient, table_spec, write_at_once

GROUP = "findings"

repeat_finding = table_spec(
    "repeat_finding", GROUP, "Each repeat finding with its whole chain of earlier occurrences."
)
engagement_progress = table_spec(
    "engagement_progress", GROUP, "Observations per engagement: total, open and closed now."
)


class FindingsConfig(dg.Config):
    full_rebuild: bool = Field(
        default=False,
        description="Copy every observation again and derive both tables whole, not only what the new audit_log rows touch.",
    )


@dg.multi_asset(
    specs=[repeat_finding, engagement_progress],
    check_specs=source_checks.check_specs(repeat_finding),
    can_subset=True,
    pool=DATABASE_POOL,
    description=(
        "Brought up to date from the audit_log rows read since the last run (each row once, whatever order they "
        "commit in) and from the tenants and engagements as they are: only the observations those rows touch, "
        "their descendants along repeat_of_id and the engagements they count in are derived again. "
        "full_rebuild derives everything. Both tables are updated together, in one transaction with the log "
        "position, and the repeat-link checks are read in it."
    ),
)
def current_findings(context: dg.AssetExecutionContext, config: FindingsConfig, database: DatabaseResource):
    w = database.warehouse()
    if not context.selected_asset_keys:  # its checks alone: the source table as it is now, whole
        yield from write_at_once(context, w, source_checks.selected_checks(context, w, repeat_finding))
        return
    try:
        update = update_current_findings(w, full_rebuild=config.full_rebuild)
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    for gap in update.given_up:
        context.log.warning(
            f"audit_log ids {gap.first}..{gap.last} were given up as rolled back; a row committed with one of "
            "them later is not in repeat_finding and engagement_progress until a full rebuild (see README)."
        )
    derived = "all" if update.observations_derived is None else update.observations_derived
    context.log.info(
        f"current findings: {update.mode} ({update.reason}): {update.log_rows_read} log rows, {derived} observations "
        f"derived in {update.seconds:.2f} s"
    )
    # Both tables are always brought up to date (they share the log position); only the selected
    # ones are reported.
    for spec in (repeat_finding, engagement_progress):
        if spec.key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=findings_metadata(update, spec.key.path[-1]))
    for name, problems in update.problems.items():
        if dg.AssetCheckKey(repeat_finding.key, name) in context.selected_asset_check_keys:
            yield source_checks.problems_result(problems, source_checks.WARN, asset_key=repeat_finding.key, check_name=name)


def findings_metadata(update: FindingsUpdate, table: str) -> dict:
    def count(value: int | None):
        return "all" if value is None else dg.MetadataValue.int(value)

    return {
        "dagster/row_count": dg.MetadataValue.int(update.rows[table]),
        "mode": update.mode,
        "reason": update.reason,
        "log_rows_read": dg.MetadataValue.int(update.log_rows_read),
        "observations_touched": count(update.observations_touched),
        "observations_derived": count(update.observations_derived),
        "engagements_derived": count(update.engagements_derived),
        "tenants_changed": count(update.tenants_changed),
        "log_position": dg.MetadataValue.int(update.position.after),
        "log_ids_waited_for": dg.MetadataValue.int(update.position.waiting_ids),
        "seconds": dg.MetadataValue.float(round(update.seconds, 3)),
        "step_seconds": dg.MetadataValue.float(round(update.seconds, 3)),  # one step writes both tables
    }
