"""Assets read from the application's current state: repeat-finding chains and engagement progress."""

import dagster as dg

from ..resources import DatabaseResource
from ._run import write

GROUP = "findings"


@dg.asset(group_name=GROUP, kinds={"sql"}, description="Each repeat finding with its whole chain of earlier occurrences.")
def repeat_finding(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    return write(context, lambda: database.warehouse().write_repeat_finding())


@dg.asset(group_name=GROUP, kinds={"sql"}, description="Observations per engagement: total, open and closed now.")
def engagement_progress(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    return write(context, lambda: database.warehouse().write_engagement_progress())
