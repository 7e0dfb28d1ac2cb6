"""The four daily snapshots: the world as it was at the end of each day in the reporting time zone."""

import datetime as dt

from ..partitions import daily_partitions
from ..warehouse import Warehouse
from ._run import Task, table_spec, write_task
from .history import observation_history, requirement_history

GROUP = "daily_snapshots"

severity_snapshot = table_spec(
    "severity_snapshot", GROUP, "Open observations per tenant and day, by severity as of the day's end.",
    daily_partitions, deps=(observation_history,),
)
compliance_snapshot = table_spec(
    "compliance_snapshot", GROUP, "Compliance requirements per tenant and day, by status as of the day's end.",
    daily_partitions, deps=(requirement_history,),
)
health_snapshot = table_spec(
    "health_snapshot", GROUP, "Severity, compliance and health scores.",
    daily_partitions, deps=(severity_snapshot, compliance_snapshot),
)
dashboard_snapshot = table_spec(
    "dashboard_snapshot", GROUP, "The dashboard's metrics JSON, captured_at the end of the day it describes.",
    daily_partitions, deps=(severity_snapshot, compliance_snapshot, health_snapshot),
)
SPECS = (severity_snapshot, compliance_snapshot, health_snapshot, dashboard_snapshot)


def write_tasks(w: Warehouse, start: dt.date, end: dt.date) -> list[Task]:
    """Compliance first: of the two counts read from the history, it reads the most runs."""
    writer = w.writer
    return [
        write_task(compliance_snapshot, lambda: writer.compliance_snapshot(start, end), needs=("requirement_history",)),
        write_task(severity_snapshot, lambda: writer.severity_snapshot(start, end), needs=("observation_history",)),
        write_task(health_snapshot, lambda: writer.health_snapshot(start, end), needs=("severity_snapshot", "compliance_snapshot")),
        write_task(dashboard_snapshot, lambda: writer.dashboard_snapshot(start, end),
                   needs=("severity_snapshot", "compliance_snapshot", "health_snapshot")),
    ]
