"""Asset checks' queries. Each returns offending rows (kind, id, detail), ordered, so that a check
can count them and name a few."""

from __future__ import annotations

from ..dialect import Dialect
from . import changes as changes_sql
from .common import onboarded_tenants


IN_CHECKED_DAYS = "snapshot_date >= :first_day AND snapshot_date <= :last_day"


def checked_days_and_tenants(d: Dialect) -> str:
    """CTEs `days(day)`, every day from :first_day to :last_day, and `onboarded(id, first_day)`:
    the days a check covers (whether the table has rows for them or not) and their tenants. Follows
    WITH RECURSIVE."""
    return f"""days (day) AS (
        SELECT {d.as_day(':first_day')}
        UNION ALL
        SELECT {d.next_day('day')} FROM days WHERE day < :last_day
    ),
    {onboarded_tenants(d).strip()}"""


def tenant_day_rows(d: Dialect, table: str) -> str:
    """Rows missing, unexpected or duplicated against "one row per tenant of the day's snapshot", on
    every day from :first_day to :last_day (the run's days), whether the table has rows for it or not.

    Days are first compared by counts: a day whose rows number the day's tenants, all of them
    tenants of that day and no two the same tenant, holds exactly the expected rows. Only the days
    that fail that (none, normally) are compared tenant by tenant, which would otherwise build and
    match the whole tenant x day grid of a long range.
    """
    return f"""
    WITH RECURSIVE {checked_days_and_tenants(d)},
    expected_per_day AS (
        SELECT days.day, count(t.id) AS n FROM days LEFT JOIN onboarded t ON t.first_day <= days.day GROUP BY days.day
    ),
    actual_per_day AS (
        SELECT s.snapshot_date AS day, count(*) AS n, count(t.id) AS of_the_day, count(DISTINCT s.tenant_id) AS tenants
        FROM {table} s LEFT JOIN onboarded t ON t.id = s.tenant_id AND t.first_day <= s.snapshot_date
        WHERE s.snapshot_date >= :first_day AND s.snapshot_date <= :last_day
        GROUP BY s.snapshot_date
    ),
    wrong_days AS (
        SELECT e.day FROM expected_per_day e LEFT JOIN actual_per_day a ON a.day = e.day
        WHERE (a.day IS NULL AND e.n > 0) OR a.n <> e.n OR a.of_the_day <> e.n OR a.tenants <> a.n
    ),
    expected AS (SELECT t.id AS tenant_id, w.day FROM onboarded t JOIN wrong_days w ON w.day >= t.first_day),
    actual AS (
        SELECT tenant_id, snapshot_date AS day, count(*) AS n FROM {table}
        WHERE snapshot_date IN (SELECT day FROM wrong_days) GROUP BY tenant_id, snapshot_date
    )
    SELECT 'missing' AS kind, e.tenant_id AS id, e.day AS detail
    FROM expected e LEFT JOIN actual a ON a.tenant_id = e.tenant_id AND a.day = e.day
    WHERE a.tenant_id IS NULL
    UNION ALL
    SELECT 'unexpected', a.tenant_id, a.day
    FROM actual a LEFT JOIN expected e ON e.tenant_id = a.tenant_id AND e.day = a.day
    WHERE e.tenant_id IS NULL
    UNION ALL
    SELECT 'duplicate', tenant_id, day FROM actual WHERE n > 1
    ORDER BY 1, 3, 2
    """


def history_problems(d: Dialect, table: str, id_column: str, value_column: str, records: str | None = None) -> str:
    """Runs of a record history that break its shape: more than one open run per record, runs that
    are empty or overlap, neighbours with one value (not maximal), values not normalized.

    `records`, a query of record ids, limits the check to them (those a history update derived).
    """
    per_record = f"PARTITION BY {d.bytewise(id_column)} ORDER BY valid_from"
    only = f"WHERE {id_column} IN ({records})" if records else ""
    return f"""
    WITH ordered AS (
        SELECT {id_column} AS id, valid_from, valid_to, {value_column} AS value,
               lag(valid_to) OVER ({per_record}) AS previous_to,
               lag(valid_from) OVER ({per_record}) AS previous_from,
               lag({value_column}) OVER ({per_record}) AS previous_value
        FROM {table} {only}
    )
    SELECT 'more than one open run' AS kind, id, CAST(count(*) AS TEXT) AS detail
    FROM ordered WHERE valid_to IS NULL GROUP BY id HAVING count(*) > 1
    UNION ALL
    SELECT 'empty run', id, CAST(valid_from AS TEXT) FROM ordered WHERE valid_to <= valid_from
    UNION ALL
    SELECT 'overlapping runs', id, CAST(valid_from AS TEXT) FROM ordered
    WHERE previous_from IS NOT NULL AND (previous_to IS NULL OR previous_to > valid_from)
    UNION ALL
    SELECT 'not maximal', id, CAST(valid_from AS TEXT) FROM ordered
    WHERE previous_to = valid_from AND {d.same('previous_value', 'value')}
    UNION ALL
    SELECT 'value not normalized', id, value FROM ordered
    WHERE value IS NOT NULL AND value <> {d.normalized_enum('value')}
    ORDER BY 1, 2, 3
    """


def out_of_range_rows(table: str, conditions: dict[str, str]) -> str:
    """Rows of `table` breaking any of `conditions` (name -> SQL that must hold). Binds the checked days."""
    return "\n    UNION ALL\n".join(
        f"    SELECT '{name}' AS kind, tenant_id AS id, snapshot_date AS detail FROM {table} "
        f"WHERE {IN_CHECKED_DAYS} AND NOT ({condition})"
        for name, condition in conditions.items()
    ) + "\n    ORDER BY 1, 3, 2"


SEVERITY_RANGES = {
    "negative count": "critical_open >= 0 AND high_open >= 0 AND medium_open >= 0 AND low_open >= 0",
    "open_total below the sum of severities": "open_total >= critical_open + high_open + medium_open + low_open",
}
COMPLIANCE_RANGES = {
    "compliant outside 0..total": "compliant >= 0 AND compliant <= total",
    "percentage outside 0..100": "percentage IS NULL OR (percentage >= 0 AND percentage <= 100)",
    "percentage null iff total is 0": "(percentage IS NULL) = (total = 0)",
}
HEALTH_RANGES = {
    f"{column} outside 0..100": f"{column} >= 0 AND {column} <= 100"
    for column in ("severity_score", "compliance_score", "health_score")
}


def closed_before_created() -> str:
    return """
    SELECT 'closed before created' AS kind, id, tenant_id AS detail FROM observation
    WHERE closed_at < created_at
    ORDER BY 2
    """


def enum_values(d: Dialect, table: str, column: str) -> str:
    """Each distinct stored value of `table.column` with its count and its normalized form."""
    return f"""
    SELECT {column} AS value, {d.normalized_enum(column)} AS normalized, count(*) AS n
    FROM {table} GROUP BY {column} ORDER BY 3 DESC, 1
    """


def counts_follow_from_changes(
    d: Dialect, snapshot: str, counts: dict[str, str], history: str, value_column: str, changes: str, record_table: str
) -> str:
    """Per tenant of each day's snapshot from :first_day to :last_day, each count column of `snapshot`
    against the contract's identity: D's count = D-1's (0 when the tenant was not in D-1's snapshot)
    + the day's `record_table` changes with a counted value after - those with one before. Returns
    (column, tenant_id, day, previous, plus, minus, actual) where it does not hold, or where D's row
    is missing (actual null); a missing D-1 row (previous null) is reported on its own day.

    `counts` maps each column to its condition on a value (`{v}`, sql.snapshots). D-1's counts are
    the table's within the checked days; the day before the first is counted from the record history,
    as it is now: it may never have been materialized, or have been written before a correction that
    the run took in (its re-run is the late-correction sensor's business, not this run's failure).
    Binds :first_day, :last_day and :day_before_first.

    D-1's row is the one before D's in a window over each tenant's rows, and the day's changes are
    summed once per tenant and day: no grid of tenants and days is matched with the table twice and
    the changes once. Missing rows are found by counting each day's rows; only the days short of
    rows (none, normally) are matched tenant by tenant.
    """
    # A change row says whether the record had a place before and has one after; its value is the
    # place's, possibly null (a null place counts in open_total and in total).
    names = changes_sql.CHANGE_NAMES[record_table]
    after = ", ".join(f"'{names[(had, True)]}'" for had in (False, True))
    before = ", ".join(f"'{names[(True, has)]}'" for has in (False, True))
    moved = ",\n".join(
        f"               sum(CASE WHEN c.adds = 1 AND ({condition.format(v='c.value_after')}) THEN 1 ELSE 0 END) AS plus_{column},\n"
        f"               sum(CASE WHEN c.takes = 1 AND ({condition.format(v='c.value_before')}) THEN 1 ELSE 0 END) AS minus_{column}"
        for column, condition in counts.items()
    )
    from_history = ",\n".join(
        f"               sum(CASE WHEN {condition.format(v=f'h.{value_column}')} THEN 1 ELSE 0 END) AS {column}"
        for column, condition in counts.items()
    )
    columns = ", ".join(counts)
    missing = ", ".join("CAST(NULL AS INTEGER)" for _ in counts)
    previous = ",\n".join(f"               lag({column}) OVER per_tenant AS previous_{column}" for column in counts)
    compared = ",\n".join(
        f"               CASE WHEN c.day = c.first_day THEN 0 WHEN c.day = :first_day THEN coalesce(fh.{column}, 0)\n"
        f"                    ELSE c.previous_{column} END AS previous_{column},\n"
        f"               coalesce(m.plus_{column}, 0) AS plus_{column}, coalesce(m.minus_{column}, 0) AS minus_{column},\n"
        f"               c.{column} AS actual_{column}"
        for column in counts
    )
    wrong = {column: f"actual_{column} IS NULL OR previous_{column} + plus_{column} - minus_{column} <> actual_{column}"
             for column in counts}
    any_wrong = " OR ".join(f"({condition})" for condition in wrong.values())
    mismatches = "\n    UNION ALL\n".join(
        f"    SELECT '{column}' AS count_column, tenant_id, day, previous_{column}, plus_{column}, minus_{column}, actual_{column}\n"
        f"    FROM wrong WHERE {condition}"
        for column, condition in wrong.items()
    )
    return f"""
    WITH RECURSIVE {checked_days_and_tenants(d)},
    numbered AS (
        -- each tenant's number: the window below sorts by it, quicker than by the id
        SELECT id, first_day, row_number() OVER (ORDER BY id) AS n FROM onboarded
    ),
    stored AS (
        -- the table's rows of the checked days, of tenants in the day's snapshot (read by day: a
        -- one-day check reads one day)
        SELECT t.n, s.tenant_id, s.snapshot_date AS day, t.first_day, {", ".join(f"s.{c}" for c in counts)}
        FROM {snapshot} s JOIN numbered t ON t.id = s.tenant_id AND s.snapshot_date >= t.first_day
        WHERE s.snapshot_date >= :first_day AND s.snapshot_date <= :last_day
    ),
    arrivals AS (
        -- how many tenants enter the checked days on each day (those in before the first: on the first)
        SELECT {d.greatest('first_day', ':first_day')} AS day, count(*) AS n
        FROM onboarded WHERE first_day <= :last_day GROUP BY {d.greatest('first_day', ':first_day')}
    ),
    expected AS (
        SELECT days.day, sum(coalesce(a.n, 0)) OVER (ORDER BY days.day) AS n
        FROM days LEFT JOIN arrivals a ON a.day = days.day
    ),
    short_days AS (
        -- days with fewer rows than tenants (none, normally)
        SELECT e.day FROM expected e LEFT JOIN (SELECT day, count(*) AS n FROM stored GROUP BY day) a ON a.day = e.day
        WHERE coalesce(a.n, 0) < e.n
    ),
    cells AS (
        -- every tenant and day of the checked days: a stored row, or a missing one (null counts)
        SELECT n, tenant_id, day, first_day, {columns} FROM stored
        UNION ALL
        SELECT t.n, t.id, w.day, t.first_day, {missing}
        FROM short_days w JOIN numbered t ON t.first_day <= w.day
        WHERE NOT EXISTS (SELECT 1 FROM stored WHERE stored.n = t.n AND stored.day = w.day)
    ),
    with_previous AS (
        -- D-1's cell is the one before D's among the tenant's cells, when D-1 is a checked day of the
        -- tenant (when it is not, D's previous counts come from elsewhere: see `compared`)
        SELECT cells.*,
{previous}
        FROM cells
        WINDOW per_tenant AS (PARTITION BY n ORDER BY day)
    ),
    changed AS {d.materialized} (
        -- each change once, with whether it adds to the counts of D and takes from those of D-1:
        -- computed here, once per row, not once per count column
        SELECT c.tenant_id, c.snapshot_date AS day, c.value_before, c.value_after,
               CASE WHEN c.change IN ({after}) THEN 1 ELSE 0 END AS adds,
               CASE WHEN c.change IN ({before}) THEN 1 ELSE 0 END AS takes
        FROM {changes} c
        WHERE c.record_table = '{record_table}' AND c.snapshot_date >= :first_day AND c.snapshot_date <= :last_day
    ),
    moved AS (
        SELECT c.tenant_id, c.day,
{moved}
        FROM changed c
        GROUP BY c.tenant_id, c.day
    ),
    from_history AS (
        -- the counts of the day before the first, as the history has them (per tenant)
        SELECT h.tenant_id,
{from_history}
        FROM {history} h
        WHERE h.valid_from <= :day_before_first AND (h.valid_to IS NULL OR h.valid_to > :day_before_first)
        GROUP BY h.tenant_id
    ),
    compared AS {d.inlined} (
        SELECT c.tenant_id, c.day,
{compared}
        FROM with_previous c
        LEFT JOIN from_history fh ON fh.tenant_id = c.tenant_id AND c.day = :first_day
        LEFT JOIN moved m ON m.tenant_id = c.tenant_id AND m.day = c.day
    ),
    wrong AS (
        -- the few tenant-days where a count does not follow, each then listed by column
        SELECT * FROM compared WHERE {any_wrong}
    )
{mismatches}
    ORDER BY 3, 2, 1
    """
