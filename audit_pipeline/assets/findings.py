"""Assets read from the application's current state: repeat-finding chains and engagement progress."""

import dagster as dg

from .. import source_checks
from ..resources import DATABASE_POOL, DatabaseResource
from ._run import table_spec, write_at_once

GROUP = "findings"

repeat_finding = table_spec(
    "repeat_finding", GROUP, "Each repeat finding with its whole chain of earlier occurrences."
)
engagement_progress = table_spec(
    "engagement_progress", GROUP, "Observations per engagement: total, open and closed now."
)


@dg.multi_asset(
    specs=[repeat_finding, engagement_progress],
    check_specs=source_checks.check_specs(repeat_finding),
    can_subset=True,
    pool=DATABASE_POOL,
    description="Both tables rebuilt whole from the current state, at the same time.",
)
def current_findings(context: dg.AssetExecutionContext, database: DatabaseResource):
    w = database.warehouse()
    # repeat_finding first: the longest; the rest share the other connection meanwhile.
    writes = {repeat_finding.key: w.writer.repeat_finding, engagement_progress.key: w.writer.engagement_progress}
    steps = {key: step for key, step in writes.items() if key in context.selected_asset_keys}
    steps.update(source_checks.selected_checks(context, w, repeat_finding))
    yield from write_at_once(context, w, steps)
