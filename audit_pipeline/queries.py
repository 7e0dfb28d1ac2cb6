"""The pipeline's SQL, written once for SQLite and PostgreSQL.

How a day's snapshot is computed without joining every day with every record:

1. *Value segments.* For each record, its `audit_log` rows turn the contract's "value as of T" rule
   into day ranges `[from_day, to_day)` over which the value is constant (`value_segments`). With
   T = T(D), "changed_at < T" is "the change's local day <= D", so only local days matter.
2. *Existence.* An observation is open on the days `[local_day(created_at), local_day(closed_at))`;
   a requirement counts from `local_day(created_at)`; a tenant from `local_day(created_at)`.
3. *Steps.* Each segment, cut to those days and to the run's range, becomes +1 on its first day and
   -1 on the day after its last; per (tenant, day) the steps are summed by category.
4. *Running sums* over a (tenant x day) grid give every day's counts.

This is linear in (records + log rows + tenants x days). Values are always bound parameters; the
only text spliced into a statement is code: column names, table names (quoted by SQLAlchemy) and
dialect fragments.

Common parameters: :tz (reporting time zone), :ws (whitespace trimmed from enum values),
:day_min / :day_max (stand-ins for -inf / +inf), :range_start, :range_after (the run's first day and
the day after its last).
"""

from __future__ import annotations

from .dialect import Dialect

CALENDAR = "audit_pipeline_calendar"  # temporary table, one row per day (see warehouse.py)

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")

# An observation that is open on some day of the run: created by its last day, not closed before
# its first (open on the days [local_day(created_at), local_day(closed_at)) ).
OPEN_DURING_RUN = "{created} < :range_after AND ({closed} IS NULL OR {closed} > :range_start)"


def percent_x100(d: Dialect, compliant: str, total: str) -> str:
    """100 * compliant / total in hundredths, rounded half up, in integer arithmetic.

    Exact on both databases (no binary floating point), for total > 0.
    """
    return f"((CAST(20000 AS BIGINT) * ({compliant}) + ({total})) / (2 * ({total})))"


def value_segments(d: Dialect, live_table: str, field: str, relevant: str | None = None) -> str:
    """CTEs ending in `segments(record_id, from_day, to_day, value)` for `live_table.field`.

    The contract's rule for the value as of T = T(D):
      the new_data value of the last log row with changed_at < T that has the field (local day <= D);
      else the old_data value of the first log row with changed_at >= T that has it (local day > D);
      else the live row's value.
    With `relevant` (a condition on `live`), only the records for which it holds are read: those
    that can count on a day of the run, so that a one-day run does not read every record's history.
    Binds :log_table (the audit_log.table_name of `live_table`).
    """
    has_new, new_value = d.json_present("new_field", field), d.json_value("new_field", field)
    has_old, old_value = d.json_present("old_field", field), d.json_value("old_field", field)
    relevant_cte = f"relevant AS (SELECT live.id FROM {live_table} live WHERE {relevant})," if relevant else ""
    only_relevant_log = "AND record_id IN (SELECT id FROM relevant)" if relevant else ""
    only_relevant_live = "JOIN relevant r ON r.id = live.id" if relevant else ""
    return f"""
    {relevant_cte}
    log_rows AS (
        SELECT record_id, changed_at, id, {d.local_day('changed_at')} AS c_day, new_data, old_data
        FROM audit_log
        WHERE table_name = :log_table AND changed_at IS NOT NULL
          {only_relevant_log}
    ),
    changes AS {d.materialized} (
        -- Each image is parsed here, once. A value written after the run, or overwritten before
        -- it, cannot matter: not parsed.
        SELECT record_id, c_day, {d.instant('changed_at')} AS changed_at, id,
               CASE WHEN c_day < :range_after THEN {d.json_field('new_data', field)} END AS new_field,
               CASE WHEN c_day >= :range_start THEN {d.json_field('old_data', field)} END AS old_field
        FROM log_rows
        WHERE c_day IS NOT NULL
    ),
    -- Before the run's first day only the last written value can matter, and after its last day
    -- only the first overwritten one: a one-day run need not lay out every record's whole history.
    last_new_before AS (
        SELECT record_id, c_day, {new_value} AS new_value FROM (
            SELECT record_id, c_day, new_field,
                   row_number() OVER (PARTITION BY {d.bytewise('record_id')} ORDER BY changed_at DESC, id DESC) AS pick
            FROM changes WHERE {has_new} AND c_day < :range_start
        ) AS ranked
        WHERE pick = 1
    ),
    first_old_after AS (
        SELECT record_id, c_day, {old_value} AS old_value FROM (
            SELECT record_id, c_day, old_field,
                   row_number() OVER (PARTITION BY {d.bytewise('record_id')} ORDER BY changed_at, id) AS pick
            FROM changes WHERE {has_old} AND c_day >= :range_after
        ) AS ranked
        WHERE pick = 1
    ),
    new_by_day AS (
        -- per record and local day: the value written by that day's last change
        SELECT record_id, c_day, new_value FROM last_new_before
        UNION ALL
        SELECT record_id, c_day, {new_value} AS new_value FROM (
            SELECT record_id, c_day, new_field,
                   row_number() OVER (PARTITION BY {d.bytewise('record_id')}, c_day ORDER BY changed_at DESC, id DESC) AS pick
            FROM changes WHERE {has_new} AND c_day >= :range_start AND c_day < :range_after
        ) AS ranked
        WHERE pick = 1
    ),
    old_by_day AS (
        -- per record and local day: the value that day's first change overwrote
        SELECT record_id, c_day, {old_value} AS old_value FROM (
            SELECT record_id, c_day, old_field,
                   row_number() OVER (PARTITION BY {d.bytewise('record_id')}, c_day ORDER BY changed_at, id) AS pick
            FROM changes WHERE {has_old} AND c_day >= :range_start AND c_day < :range_after
        ) AS ranked
        WHERE pick = 1
        UNION ALL
        SELECT record_id, c_day, old_value FROM first_old_after
    ),
    first_new AS (SELECT record_id, min(c_day) AS c_day FROM new_by_day GROUP BY record_id),
    last_old AS (SELECT record_id, max(c_day) AS c_day FROM old_by_day GROUP BY record_id),
    segments AS (
        -- from a day with a written value until the next such day
        SELECT record_id, c_day AS from_day,
               coalesce(lead(c_day) OVER (PARTITION BY {d.bytewise('record_id')} ORDER BY c_day), :day_max) AS to_day,
               new_value AS value
        FROM new_by_day
        UNION ALL
        -- before the first written value: the value that the next change overwrote
        SELECT o.record_id,
               coalesce(lag(o.c_day) OVER (PARTITION BY {d.bytewise('o.record_id')} ORDER BY o.c_day), :day_min),
               {d.least('o.c_day', 'coalesce(n.c_day, :day_max)')},
               o.old_value
        FROM old_by_day o LEFT JOIN first_new n ON n.record_id = o.record_id
        UNION ALL
        -- no change before and none after: the live row's value (unless a value written before
        -- the run's first day ends that before the run)
        SELECT live.id, coalesce(lo.c_day, :day_min), coalesce(fn.c_day, :day_max), live.{field}
        FROM {live_table} live
        {only_relevant_live}
        LEFT JOIN last_old lo ON lo.record_id = live.id
        LEFT JOIN first_new fn ON fn.record_id = live.id
        WHERE fn.c_day IS NULL OR fn.c_day > :range_start
    )"""


def onboarded_tenants(d: Dialect) -> str:
    """CTE `onboarded(id, first_day)`: tenants in the snapshots of every day from first_day on."""
    return f"""
    onboarded AS (
        SELECT id, {d.local_day('created_at')} AS first_day
        FROM tenant
        WHERE onboarding_completed IS TRUE AND created_at IS NOT NULL
    )"""


def _tenant_day_grid() -> str:
    return f"""
    grid AS (
        SELECT t.id AS tenant_id, c.day
        FROM onboarded t JOIN {CALENDAR} c ON c.day >= t.first_day
        WHERE c.day >= :range_start AND c.day < :range_after
    )"""


def _steps(intervals: str, categories: dict[str, str]) -> str:
    """CTE `steps(tenant_id, day, <category>...)`: +1 / -1 per interval of `intervals`.

    `intervals` has (tenant_id, first_day, end_day, ...); `categories` maps a column name to the
    condition under which an interval counts in it.
    """
    sums = ",\n".join(
        f"               sum(CASE WHEN {condition} THEN change ELSE 0 END) AS {name}"
        for name, condition in categories.items()
    )
    return f"""
    steps AS (
        SELECT tenant_id, day,
{sums}
        FROM (
            SELECT i.*, first_day AS day, 1 AS change FROM {intervals} i WHERE first_day < end_day
            UNION ALL
            SELECT i.*, end_day, -1 FROM {intervals} i WHERE first_day < end_day AND end_day < :range_after
        ) AS signed
        GROUP BY tenant_id, day
    )"""


def _running_counts(d: Dialect, columns: list[str]) -> str:
    """Every grid day's counts: the running sums of the steps up to that day."""
    sums = ",\n".join(
        f"           CAST(sum(coalesce(s.{c}, 0)) OVER per_tenant AS INTEGER) AS {c}" for c in columns
    )
    return f"""
    SELECT g.tenant_id, g.day,
{sums}
    FROM grid g LEFT JOIN steps s ON s.tenant_id = g.tenant_id AND s.day = g.day
    WINDOW per_tenant AS (PARTITION BY {d.bytewise('g.tenant_id')} ORDER BY g.day ROWS UNBOUNDED PRECEDING)"""


def severity_snapshot(d: Dialect, target: str) -> str:
    """Replace-by-insert of severity_snapshot for the days of the run (binds :log_table='observation')."""
    categories = {f"{sev.lower()}_open": f"severity = '{sev}'" for sev in SEVERITIES}
    categories["open_total"] = "1 = 1"
    return f"""
    WITH {value_segments(d, 'observation', 'severity', OPEN_DURING_RUN.format(created=d.local_day('live.created_at'), closed=d.local_day('live.closed_at')))},
    {onboarded_tenants(d)},
    open_intervals AS (
        -- each severity segment cut to the days the observation was open, its tenant in the
        -- snapshots and the run's range; end_day is exclusive
        SELECT o.tenant_id,
               {d.greatest('s.from_day', d.local_day('o.created_at'), 't.first_day', ':range_start')} AS first_day,
               {d.least('s.to_day', f"coalesce({d.local_day('o.closed_at')}, :day_max)", ':range_after')} AS end_day,
               {d.normalized_enum('s.value')} AS severity
        FROM segments s
        JOIN observation o ON o.id = s.record_id
        JOIN onboarded t ON t.id = o.tenant_id
        WHERE o.created_at IS NOT NULL
    ),
    {_steps('open_intervals', categories)},
    {_tenant_day_grid()}
    INSERT INTO {target} (tenant_id, snapshot_date, critical_open, high_open, medium_open, low_open, open_total)
    {_running_counts(d, list(categories))}
    """


def compliance_snapshot(d: Dialect, target: str) -> str:
    """Replace-by-insert of compliance_snapshot (binds :log_table='compliance_requirement')."""
    # A status that is not NOT_APPLICABLE counts in `total`, an unknown or missing one included.
    categories = {
        "total": "status IS NULL OR status <> 'NOT_APPLICABLE'",
        "compliant": "status = 'COMPLIANT'",
    }
    return f"""
    -- Every requirement created before a day counts on it: no narrowing to do.
    WITH {value_segments(d, 'compliance_requirement', 'status')},
    {onboarded_tenants(d)},
    status_intervals AS (
        SELECT r.tenant_id,
               {d.greatest('s.from_day', d.local_day('r.created_at'), 't.first_day', ':range_start')} AS first_day,
               {d.least('s.to_day', ':range_after')} AS end_day,
               {d.normalized_enum('s.value')} AS status
        FROM segments s
        JOIN compliance_requirement r ON r.id = s.record_id
        JOIN onboarded t ON t.id = r.tenant_id
        WHERE r.created_at IS NOT NULL
    ),
    {_steps('status_intervals', categories)},
    {_tenant_day_grid()},
    counts AS ({_running_counts(d, list(categories))}
    )
    INSERT INTO {target} (tenant_id, snapshot_date, total, compliant, percentage)
    SELECT tenant_id, day, total, compliant,
           CASE WHEN total > 0 THEN {percent_x100(d, 'compliant', 'total')} / 100.0 END
    FROM counts
    """


def health_snapshot(d: Dialect, target: str, severity: str, compliance: str) -> str:
    # In integer hundredths (scores) and tenths (health): exact, half-up rounding on both databases.
    severity_score = d.greatest("0", "100 - (10 * s.critical_open + 5 * s.high_open + 2 * s.medium_open + s.low_open)")
    compliance_x100 = f"CASE WHEN c.total > 0 THEN {percent_x100(d, 'c.compliant', 'c.total')} ELSE 10000 END"
    return f"""
    WITH scores AS (
        SELECT s.tenant_id, s.snapshot_date,
               {severity_score} AS severity_score,
               {compliance_x100} AS compliance_x100
        FROM {severity} s
        JOIN {compliance} c ON c.tenant_id = s.tenant_id AND c.snapshot_date = s.snapshot_date
        WHERE s.snapshot_date >= :range_start AND s.snapshot_date < :range_after
    )
    INSERT INTO {target} (tenant_id, snapshot_date, severity_score, compliance_score, health_score)
    SELECT tenant_id, snapshot_date, severity_score, compliance_x100 / 100.0,
           ((compliance_x100 + 100 * severity_score + 10) / 20) / 10.0
    FROM scores
    """


def dashboard_snapshot(d: Dialect, target: str, severity: str, compliance: str, health: str) -> str:
    metrics = d.json_object(
        ("healthScore", "h.health_score"),
        ("compliance", d.json_object(("total", "c.total"), ("compliant", "c.compliant"), ("percentage", "c.percentage"))),
        (
            "severity",
            d.json_object(
                ("total", "s.open_total"),
                ("criticalOpen", "s.critical_open"),
                ("highOpen", "s.high_open"),
                ("mediumOpen", "s.medium_open"),
                ("lowOpen", "s.low_open"),
            ),
        ),
    )
    return f"""
    INSERT INTO {target} (tenant_id, snapshot_date, captured_at, metrics)
    SELECT h.tenant_id, h.snapshot_date, cal.day_end, {metrics}
    FROM {health} h
    JOIN {severity} s ON s.tenant_id = h.tenant_id AND s.snapshot_date = h.snapshot_date
    JOIN {compliance} c ON c.tenant_id = h.tenant_id AND c.snapshot_date = h.snapshot_date
    JOIN {CALENDAR} cal ON cal.day = h.snapshot_date
    WHERE h.snapshot_date >= :range_start AND h.snapshot_date < :range_after
    """


def compliance_trend_daily(d: Dialect, target: str, compliance: str) -> str:
    """Binds :window_start (six days before :range_start)."""
    pct = f"CASE WHEN cs.total > 0 THEN {percent_x100(d, 'cs.compliant', 'cs.total')} END"
    per_tenant = f"PARTITION BY {d.bytewise('tenant_id')} ORDER BY day_no"
    week = f"{per_tenant} RANGE BETWEEN 6 PRECEDING AND CURRENT ROW"
    return f"""
    WITH daily AS (
        SELECT cs.tenant_id, cs.snapshot_date, cal.day_no, {pct} AS pct
        FROM {compliance} cs JOIN {CALENDAR} cal ON cal.day = cs.snapshot_date
        WHERE cs.snapshot_date >= :window_start AND cs.snapshot_date < :range_after
    ),
    trend AS (
        SELECT tenant_id, snapshot_date, day_no, pct,
               lag(pct) OVER ({per_tenant}) AS previous_pct,
               lag(day_no) OVER ({per_tenant}) AS previous_day_no,
               CAST(sum(pct) OVER ({week}) AS BIGINT) AS week_sum,
               count(pct) OVER ({week}) AS week_count
        FROM daily
    )
    INSERT INTO {target} (tenant_id, snapshot_date, compliance_percentage, change_1d, rolling_7d_avg)
    SELECT tenant_id, snapshot_date, pct / 100.0,
           CASE WHEN previous_day_no = day_no - 1 THEN (pct - previous_pct) / 100.0 END,
           CASE WHEN week_count > 0 THEN ((2 * week_sum + week_count) / (2 * week_count)) / 100.0 END
    FROM trend
    WHERE snapshot_date >= :range_start
    """


def severity_trend_quarterly(d: Dialect, target: str, severity: str) -> str:
    # The latest day per tenant and quarter is found on narrow rows (a hash aggregate); only those
    # few snapshots are then read whole, instead of sorting every snapshot row.
    return f"""
    WITH latest AS (
        SELECT s.tenant_id, cal.fiscal_year, cal.fiscal_quarter, max(s.snapshot_date) AS as_of_date
        FROM {severity} s JOIN {CALENDAR} cal ON cal.day = s.snapshot_date
        GROUP BY s.tenant_id, cal.fiscal_year, cal.fiscal_quarter
    )
    INSERT INTO {target} (tenant_id, fiscal_year, fiscal_quarter, quarter_label, quarter_start,
                          quarter_end, as_of_date, critical_open, high_open, medium_open, low_open)
    SELECT l.tenant_id, l.fiscal_year, l.fiscal_quarter, cal.quarter_label, cal.quarter_start, cal.quarter_end,
           l.as_of_date, s.critical_open, s.high_open, s.medium_open, s.low_open
    FROM latest l
    JOIN {severity} s ON s.tenant_id = l.tenant_id AND s.snapshot_date = l.as_of_date
    JOIN {CALENDAR} cal ON cal.day = l.as_of_date
    """


def repeat_chains(d: Dialect) -> str:
    """CTEs `links` and `chain(observation_id, member_id, member_created_at, next_id, next_created_at,
    depth, path)`, cycle-safe.

    Follows repeat_of_id upward from every observation of an onboarded tenant whose parent is an
    observation of the same tenant, while the next one exists, has the same tenant and is not on
    the path already. Binds :sep, a character that separates ids on the path.
    """
    return f"""
    links AS {d.materialized} (
        -- repeat_of_id links that a chain may follow: to an existing observation of the same tenant,
        -- with what the result needs of both ends. The recursion walks these few rows, and the
        -- result reads them, instead of looking observations up again.
        SELECT o.id, o.repeat_of_id AS parent_id, o.tenant_id, o.title, o.status, o.severity, o.created_at,
               parent.severity AS parent_severity, parent.created_at AS parent_created_at
        FROM observation o
        JOIN observation parent ON parent.id = o.repeat_of_id AND parent.tenant_id = o.tenant_id
        WHERE o.repeat_of_id IS NOT NULL
    ),
    chain (observation_id, member_id, member_created_at, next_id, next_created_at, depth, path) AS (
        SELECT l.id, l.id, l.created_at, l.parent_id, l.parent_created_at, 1, :sep || l.id || :sep
        FROM links l
        JOIN tenant t ON t.id = l.tenant_id AND t.onboarding_completed IS TRUE
        UNION ALL
        -- next_id came from a link, so it exists and has the chain's tenant; it continues the chain
        -- unless it is on the path already. Its own link, if any, gives the next one.
        SELECT c.observation_id, c.next_id, c.next_created_at, l.parent_id, l.parent_created_at,
               c.depth + 1, c.path || c.next_id || :sep
        FROM chain c
        LEFT JOIN links l ON l.id = c.next_id
        WHERE c.next_id IS NOT NULL AND {d.find('c.path', ':sep || c.next_id || :sep')} = 0
    )"""


def repeat_finding(d: Dialect, target: str) -> str:
    # A chain's last row is the one the recursion did not continue: its original.
    return f"""
    WITH RECURSIVE {repeat_chains(d)}
    INSERT INTO {target} (observation_id, tenant_id, title, status, current_severity, previous_severity,
                          original_observation_id, original_date, occurrence_count)
    SELECT l.id, l.tenant_id, l.title, l.status,
           {d.normalized_enum('l.severity')}, {d.normalized_enum('l.parent_severity')},
           c.member_id, {d.local_day('c.member_created_at')}, c.depth
    FROM chain c
    JOIN links l ON l.id = c.observation_id
    WHERE c.next_id IS NULL OR {d.find('c.path', ':sep || c.next_id || :sep')} > 0
    """


def engagement_progress(d: Dialect, target: str) -> str:
    return f"""
    INSERT INTO {target} (engagement_id, tenant_id, engagement_name, engagement_status,
                          observation_count, open_count, closed_count)
    SELECT e.id, e.tenant_id, e.name, e.status,
           count(o.id),
           count(CASE WHEN o.closed_at IS NULL THEN o.id END),
           count(CASE WHEN o.closed_at IS NOT NULL THEN o.id END)
    FROM audit_engagement e
    JOIN tenant t ON t.id = e.tenant_id AND t.onboarding_completed IS TRUE
    LEFT JOIN observation o ON o.engagement_id = e.id AND o.tenant_id = e.tenant_id
    GROUP BY e.id, e.tenant_id, e.name, e.status
    """


# --- asset checks ---------------------------------------------------------------------------------
# Each returns offending rows (kind, id, detail), ordered, so a check can count them and name a few.


IN_CHECKED_DAYS = "snapshot_date >= :first_day AND snapshot_date <= :last_day"


def tenant_day_rows(d: Dialect, table: str) -> str:
    """Rows missing, unexpected or duplicated against "one row per tenant of the day's snapshot".

    Binds :first_day and :last_day, the days checked (those of the run, or all).
    """
    return f"""
    WITH {onboarded_tenants(d).strip()},
    days AS (SELECT DISTINCT snapshot_date AS day FROM {table} WHERE {IN_CHECKED_DAYS}),
    expected AS (SELECT t.id AS tenant_id, days.day FROM onboarded t JOIN days ON days.day >= t.first_day),
    actual AS (
        SELECT tenant_id, snapshot_date AS day, count(*) AS n FROM {table}
        WHERE {IN_CHECKED_DAYS} GROUP BY tenant_id, snapshot_date
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


def cross_tenant_repeat_links() -> str:
    return """
    SELECT 'cross-tenant link' AS kind, o.id AS id, parent.id AS detail
    FROM observation o JOIN observation parent ON parent.id = o.repeat_of_id
    WHERE parent.tenant_id <> o.tenant_id OR o.tenant_id IS NULL OR parent.tenant_id IS NULL
    ORDER BY 2
    """


def repeat_cycles(d: Dialect) -> str:
    """Observations whose repeat_of_id chain comes back to them. Binds :sep."""
    return f"""
    WITH RECURSIVE walk (start_id, next_id, path) AS (
        SELECT id, repeat_of_id, :sep || id || :sep FROM observation WHERE repeat_of_id IS NOT NULL
        UNION ALL
        SELECT w.start_id, o.repeat_of_id, w.path || o.id || :sep
        FROM walk w JOIN observation o ON o.id = w.next_id
        WHERE {d.find('w.path', ':sep || o.id || :sep')} = 0 AND o.repeat_of_id IS NOT NULL
    )
    SELECT DISTINCT 'on a cycle' AS kind, start_id AS id, '' AS detail FROM walk WHERE next_id = start_id
    ORDER BY 2
    """


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


# --- previews shown on materializations -------------------------------------------------------------

PREVIEW_ROWS = 10


def latest_quarter_preview(table: str) -> str:
    return f"""
    SELECT tenant_id, quarter_label, as_of_date, critical_open, high_open, medium_open, low_open FROM (
        SELECT t.*, row_number() OVER (PARTITION BY tenant_id ORDER BY fiscal_year DESC, fiscal_quarter DESC) AS pick
        FROM {table} t
    ) AS latest
    WHERE pick = 1
    ORDER BY tenant_id
    LIMIT {PREVIEW_ROWS}
    """


def compliance_trend_preview(table: str) -> str:
    """Binds :day."""
    return f"""
    SELECT tenant_id, snapshot_date, compliance_percentage, change_1d, rolling_7d_avg FROM {table}
    WHERE snapshot_date = :day
    ORDER BY tenant_id
    LIMIT {PREVIEW_ROWS}
    """


# --- the late-correction sensor ---------------------------------------------------------------------


# What the sensor reads of a log row: images as text, parsed (leniently) in Python.
LOG_ROW_COLUMNS = "id, table_name, record_id, action, CAST(old_data AS TEXT), CAST(new_data AS TEXT), changed_at"


def created_at(table: str) -> str:
    """Binds :ids (expanding). `table` is a source table's name, from code."""
    return f"SELECT id, created_at FROM {table} WHERE id IN :ids"
