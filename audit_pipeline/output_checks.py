"""Checks of the output tables: is each day whole, are its values in range, do its counts follow.

Each check is declared on the asset whose table it reads and evaluated in the step that writes that
table, right after the write (see assets/_run.py): a check of a night reads that night's days and
costs no step of its own. A check run without its asset (the UI's "Execute" on a check) reads every
day the table holds.

Each failing check names the offending rows in its metadata and counts them by kind. The checks of
the source tables are in source_checks.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import dagster as dg

from .calendar import parse_day
from .source_checks import MAX_EXAMPLES, problems_result
from .sql import checks as check_sql
from .sql.history import OBSERVATIONS, REQUIREMENTS
from .sql.snapshots import COMPLIANCE_COUNTS, SEVERITY_COUNTS
from .warehouse import Warehouse

# The run's first and last day, or None: every day the table holds.
Days = tuple[dt.date, dt.date] | None


@dataclass(frozen=True)
class OutputCheck:
    asset: str  # the output table, and the asset it is declared on
    name: str
    description: str
    evaluate: Callable[[Warehouse, Days], dg.AssetCheckResult]
    blocking: bool = False  # when it fails, nothing that reads the table is written

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(dg.AssetKey(self.asset), self.name)

    @property
    def spec(self) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description, blocking=self.blocking)


def day_bounds(w: Warehouse, days: Days, table: str) -> dict | None:
    """:first_day and :last_day of the checked days: the run's, or those the table holds (None:
    the table is empty)."""
    days = days or w.reader.day_span(table)
    if days is None:
        return None
    return {"first_day": w.dialect.day_param(days[0]), "last_day": w.dialect.day_param(days[1])}


# --- one row per tenant and day ------------------------------------------------------------------


def one_row_per_tenant_and_day(table: str) -> OutputCheck:
    def evaluate(w: Warehouse, days: Days) -> dg.AssetCheckResult:
        return problems_result(tenant_day_problems(w, table, days))

    return OutputCheck(
        table, "one_row_per_tenant_and_day",
        "Every day of the run (outside a run: every day from the first to the last) holds exactly one row per "
        "tenant of that day's snapshot.",
        evaluate, blocking=True,
    )


def tenant_day_problems(w: Warehouse, table: str, days: Days) -> list[tuple]:
    """Missing, unexpected and duplicate rows of a daily table on every one of `days`, or, with None,
    on every day from the table's first to its last."""
    bounds = day_bounds(w, days, table)
    if bounds is None:
        return []
    return w.reader.find(check_sql.tenant_day_rows(w.dialect, w.tables.ref(table)), **bounds)


# --- values in range -----------------------------------------------------------------------------


def values_in_range(table: str, conditions: dict[str, str]) -> OutputCheck:
    def evaluate(w: Warehouse, days: Days) -> dg.AssetCheckResult:
        bounds = day_bounds(w, days, table)
        problems = [] if bounds is None else w.reader.find(check_sql.out_of_range_rows(w.tables.ref(table), conditions), **bounds)
        return problems_result(problems)

    return OutputCheck(
        table, "values_in_range",
        "Counts, scores and percentages lie in their ranges: " + "; ".join(conditions) + ".",
        evaluate,
    )


# --- the snapshots' counts follow from the day's changes -----------------------------------------

# The count columns of each snapshot, and the record kind whose history and changes explain them.
IDENTITY_TABLES = {
    "severity_snapshot": (SEVERITY_COUNTS, OBSERVATIONS),
    "compliance_snapshot": (COMPLIANCE_COUNTS, REQUIREMENTS),
}


def change_identity_problems(w: Warehouse, days: Days) -> list[dict]:
    """Where a snapshot's count of D is not D-1's plus D's changes (see sql.checks), on every one of
    `days` (first, last), or with None on every day each snapshot table holds."""
    problems = []
    for table, (counts, kind) in IDENTITY_TABLES.items():
        span = days or w.reader.day_span(table)
        if span is None:
            continue
        sql = check_sql.counts_follow_from_changes(
            w.dialect, w.tables.ref(table), counts, w.tables.ref(kind.history), kind.value_column,
            w.tables.ref("snapshot_change"), kind.log_table,
        )
        bounds = {name: w.dialect.day_param(day) for name, day in
                  (("first_day", span[0]), ("last_day", span[1]), ("day_before_first", span[0] - dt.timedelta(days=1)))}
        problems += [mismatch(table, *row) for row in w.reader.find(sql, **bounds)]
    return problems


def mismatch(table: str, column: str, tenant: str, day, previous, plus, minus, actual) -> dict:
    """One count that does not follow, as JSON metadata (None: no row)."""
    number = lambda value: None if value is None else int(value)  # noqa: E731
    previous, plus, minus, actual = number(previous), int(plus), int(minus), number(actual)
    expected = None if previous is None else previous + plus - minus
    return dict(table=table, column=column, tenant_id=tenant, day=parse_day(day).isoformat(),
                previous=previous, plus=plus, minus=minus, expected=expected, actual=actual)


def arithmetic(p: dict) -> str:
    """'D-1 + added - removed = expected, table has actual', as a failure reads it."""
    stored = "no row" if p["actual"] is None else p["actual"]
    if p["previous"] is None:  # the day before's row is missing too (reported on its own day)
        return f"table has {stored}"
    return f"{p['previous']} + {p['plus']} - {p['minus']} = {p['expected']}, table has {stored}"


def _counts_follow(w: Warehouse, days: Days) -> dg.AssetCheckResult:
    problems = change_identity_problems(w, days)
    rows = [("count differs", f"{p['tenant_id']} {p['day']} {p['table']}.{p['column']}", arithmetic(p)) for p in problems]
    return problems_result(rows, mismatches=dg.MetadataValue.json(problems[:MAX_EXAMPLES]))


COUNTS_FOLLOW_FROM_CHANGES = OutputCheck(
    "snapshot_change", "counts_follow_from_changes",
    "For every tenant and day of the run (outside a run: every day of the snapshots), each count of "
    "severity_snapshot and compliance_snapshot equals the day before's (0 for a tenant new that day) plus the "
    "day's changes with that value after, minus those with it before. The day before a run's first is counted "
    "from the record history (it may not be materialized, or be due for a re-run after a correction).",
    # An ERROR that blocks: one of the two tables is wrong, and whatever reads them should wait.
    _counts_follow, blocking=True,
)


# --- which checks each table has -------------------------------------------------------------------

DAILY_TABLES = ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot", "compliance_trend_daily")

OUTPUT_CHECKS: tuple[OutputCheck, ...] = (
    *(one_row_per_tenant_and_day(table) for table in DAILY_TABLES),
    values_in_range("severity_snapshot", check_sql.SEVERITY_RANGES),
    values_in_range("compliance_snapshot", check_sql.COMPLIANCE_RANGES),
    values_in_range("health_snapshot", check_sql.HEALTH_RANGES),
    COUNTS_FOLLOW_FROM_CHANGES,
)


def checks_of(asset: str) -> tuple[OutputCheck, ...]:
    return tuple(c for c in OUTPUT_CHECKS if c.asset == asset)
