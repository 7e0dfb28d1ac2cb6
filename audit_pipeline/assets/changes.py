"""What changed on a day: why a tenant's health score moved (contract: "What changed on a day")."""

import datetime as dt

import dagster as dg

from ..partitions import daily_partitions
from ..sql import changes as change_sql
from ..sql.common import PREVIEW_ROWS
from ..warehouse import Warehouse
from ._run import Task, preview_task, table_spec, write_task
from .history import observation_history, requirement_history
from .snapshots import GROUP, compliance_snapshot, health_snapshot, severity_snapshot

snapshot_change = table_spec(
    "snapshot_change", GROUP,
    "Per tenant and day, every finding that opened, closed or changed severity and every requirement "
    "added or whose status changed, with the value before and after: why the day's counts and health moved.",
    daily_partitions,
    # Computed from the record history alone; its check holds it together with the two snapshots,
    # and its preview reads the health score of each day and the day before.
    deps=(observation_history, requirement_history, severity_snapshot, compliance_snapshot, health_snapshot),
)


def write_tasks(w: Warehouse, start: dt.date, end: dt.date) -> list[Task]:
    # The write reads the history alone; its preview reads the health scores too: apart, so that
    # the write need not wait for the snapshots.
    return [
        write_task(snapshot_change, lambda: w.writer.snapshot_change(start, end),
                   needs=("observation_history", "requirement_history")),
        preview_task(snapshot_change, lambda: change_metadata(w, start, end), needs=("health_snapshot",)),
    ]


def change_metadata(w: Warehouse, start: dt.date, end: dt.date) -> dict:
    """The run's changes by kind (each a number the UI plots across runs) and its largest movements."""
    bounds = {"range_start": w.dialect.day_param(start), "range_after": w.dialect.day_param(end + dt.timedelta(days=1))}
    changes, health = w.tables.ref("snapshot_change"), w.tables.ref("health_snapshot")
    by_kind = dict.fromkeys(change_sql.ALL_CHANGES, 0) | dict(w.reader.find(change_sql.changes_by_kind(changes), **bounds))
    rows = w.reader.find(change_sql.largest_movements(w.dialect, changes, health), **bounds)
    return {
        **{f"changes_{kind}": dg.MetadataValue.int(n) for kind, n in by_kind.items()},
        f"largest movements (first {PREVIEW_ROWS})": dg.MetadataValue.md(movements_markdown(rows)),
    }


def movements_markdown(rows: list[tuple]) -> str:
    """One section per movement (tenant, day, health before -> after), its changes listed below."""
    if not rows:
        return "No changes on these days."
    lines, current = [], None
    for movement, tenant, day, before, after, entered, count, table, record, change, old, new, title in rows:
        if movement != current:
            current, shown = movement, 0
            lines += ["", f"**{_text(tenant)}**, {_day(day)}: health {_health(before, entered)} → {_health(after, 0)}"
                          f"{_delta(before, after)}, {count} change{'s' if count != 1 else ''}", ""]
        label = "finding" if table == "observation" else "requirement"
        named = f"{label} {_text(record)}" + (f", “{_text(title)}”" if title else "")
        lines.append(f"- {change.replace('_', ' ')}: {named}: {_values(change, old, new)}")
        shown += 1
        if shown == change_sql.CHANGES_PER_MOVEMENT and count > shown:
            lines.append(f"- … and {count - shown} more")
    return "\n".join(lines).strip()


def _values(change: str, before, after) -> str:
    # A null value is written "none set", so that it is not read as "no place" (the change says that).
    shown = lambda v: "none set" if v is None else _text(v)  # noqa: E731
    if change in change_sql.HAS_PLACE_AFTER and change in change_sql.HAD_PLACE_BEFORE:
        return f"{shown(before)} → {shown(after)}"
    return shown(after) if change in change_sql.HAS_PLACE_AFTER else f"was {shown(before)}"


def _health(value, entered: int) -> str:
    if value is not None:
        return f"{float(value):.1f}"
    return "new tenant" if entered else "?"  # "?": the day before was not materialized


def _delta(before, after) -> str:
    if before is None or after is None:
        return ""
    delta = float(after) - float(before)
    return f" ({delta:+.1f})"


def _day(value) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def _text(value) -> str:
    """Source text as markdown shows it literally: one line, no markup."""
    text = " ".join(str(value).split())
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    return text
