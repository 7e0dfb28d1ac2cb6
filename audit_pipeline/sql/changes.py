"""What changed on a day: the records whose place differs from the day before's, from the record history.

A record's place changes only where one of its history runs starts or ends: runs are maximal, so a
run starting on D means a place on D unlike D-1's, and a run ending on D (valid_to = D) means D-1's
place is not D's. Per record and day of the range, the run ending there (the place before) and the
run starting there (the place after) are paired: one row per record and day, whatever the number of
tenants or days. A tenant entering the snapshots on D has no place for anything on D-1, so on its
first day every record with a place that day appears (its runs covering D, whenever they began).

`change` is read off which of the two places exist, never off their values: a place with a null
value (a severity that was never set) is a place, distinct from no place.
"""

from __future__ import annotations

from ..dialect import Dialect
from .common import PREVIEW_ROWS, SEVERITIES, onboarded_tenants
from .history import KINDS, RecordKind

# change, by (had a place on D-1, has a place on D), per record table.
CHANGE_NAMES = {
    "observation": {(False, True): "opened", (True, False): "closed", (True, True): "severity_changed"},
    "compliance_requirement": {(False, True): "added", (True, False): "removed", (True, True): "status_changed"},
}
ALL_CHANGES = tuple(name for names in CHANGE_NAMES.values() for name in names.values())
# Kinds of change after which the record has a place on D, and before which it had one on D-1.
HAS_PLACE_AFTER = tuple(names[(had, True)] for names in CHANGE_NAMES.values() for had in (False, True))
HAD_PLACE_BEFORE = tuple(names[(True, has)] for names in CHANGE_NAMES.values() for has in (False, True))


def _moves(d: Dialect, kind: RecordKind, history: str) -> str:
    """CTE `<kind>_moves(tenant_id, day, record_id, had, before_value, has, after_value, n)`: per
    record and day of the range whose place may differ from the day before's, both places (had/has: 1
    when there is one); `n` numbers the record's tenant."""
    name = kind.log_table
    return f"""
    {name}_starts AS (
        SELECT {kind.id_column} AS record_id, tenant_id, valid_from AS day, {kind.value_column} AS value
        FROM {history}
        WHERE valid_from >= :range_start AND valid_from < :range_after
    ),
    {name}_ends AS (
        SELECT {kind.id_column} AS record_id, tenant_id, valid_to AS day, {kind.value_column} AS value
        FROM {history}
        WHERE valid_to >= :range_start AND valid_to < :range_after
    ),
    {name}_paired AS (
        -- the run ending on D against the one starting on D. A record has at most one of each on a
        -- day (runs do not overlap: runs_well_formed), so joining the two lists pairs them, by
        -- hashing where grouping them by record and day would sort them
        {_full_join(d, f"{name}_starts", f"{name}_ends")}
    ),
    {name}_moves AS (
        -- tenant in the snapshots of D and of D-1
        SELECT p.*, t.n FROM {name}_paired p JOIN numbered t ON t.id = p.tenant_id AND p.day > t.first_day
        UNION ALL
        -- tenant entering the snapshots on D (in the range): every record with a place on D, none on D-1
        SELECT h.tenant_id, t.first_day, h.{kind.id_column}, 0, CAST(NULL AS TEXT), 1, h.{kind.value_column}, t.n
        FROM {history} h JOIN numbered t ON t.id = h.tenant_id
        WHERE t.first_day >= :range_start AND t.first_day < :range_after
          AND h.valid_from <= t.first_day AND (h.valid_to IS NULL OR h.valid_to > t.first_day)
    )"""


def _full_join(d: Dialect, starts: str, ends: str) -> str:
    """The starts and ends of one (record, day) side by side, either missing. PostgreSQL hashes a
    full join; SQLite nests its loops over one (minutes on a whole history), so there it is a left
    join and the ends without a start (a quarter slower on PostgreSQL, measured)."""
    same = "e.record_id = s.record_id AND e.day = s.day AND e.tenant_id = s.tenant_id"
    pair = """CASE WHEN e.record_id IS NULL THEN 0 ELSE 1 END AS had, e.value AS before_value,
               CASE WHEN s.record_id IS NULL THEN 0 ELSE 1 END AS has, s.value AS after_value"""
    if d.hashes_full_joins:
        return f"""SELECT coalesce(s.tenant_id, e.tenant_id) AS tenant_id, coalesce(s.day, e.day) AS day,
               coalesce(s.record_id, e.record_id) AS record_id, {pair}
        FROM {starts} s FULL JOIN {ends} e ON {same}"""
    return f"""SELECT s.tenant_id, s.day, s.record_id, {pair}
        FROM {starts} s LEFT JOIN {ends} e ON {same}
        UNION ALL
        SELECT e.tenant_id, e.day, e.record_id, 1, e.value, 0, CAST(NULL AS TEXT)
        FROM {ends} e WHERE NOT EXISTS (SELECT 1 FROM {starts} s WHERE {same})"""


def _rows(d: Dialect, kind: RecordKind) -> str:
    names = CHANGE_NAMES[kind.log_table]
    return f"""
    SELECT tenant_id, day, '{kind.log_table}', record_id,
           CASE WHEN had = 0 THEN '{names[(False, True)]}'
                WHEN has = 0 THEN '{names[(True, False)]}'
                ELSE '{names[(True, True)]}' END,
           before_value, after_value
    FROM (
        SELECT * FROM {kind.log_table}_moves
        -- a history whose neighbouring runs had one value would pair equal places: not a change
        WHERE had <> has OR NOT {d.same('before_value', 'after_value')}
        -- tenant by tenant (see snapshot_change)
        ORDER BY n
    ) AS {kind.log_table}_changes"""


def snapshot_change(d: Dialect, target: str, histories: dict[str, str]) -> str:
    """Replace-by-insert of snapshot_change for the days of the run. `histories` maps each history
    table's name to its reference.

    The rows are inserted tenant by tenant, each record table in turn: most of the write is the
    maintenance of the primary key, which begins with the tenant, and rows in its order touch its
    pages one tenant at a time instead of all over (in no order, a whole history's insert takes
    twice as long). Sorting by the tenant's number is the cheapest way there: an integer key.
    """
    moves = ",".join(_moves(d, kind, histories[kind.history]) for kind in KINDS)
    rows = "\n    UNION ALL".join(_rows(d, kind) for kind in KINDS)
    return f"""
    WITH {onboarded_tenants(d).strip()},
    numbered AS (SELECT id, first_day, row_number() OVER (ORDER BY id) AS n FROM onboarded),{moves}
    INSERT INTO {target} (tenant_id, snapshot_date, record_table, record_id, change, value_before, value_after)
    {rows}
    """


def changes_by_kind(changes: str) -> str:
    """How many rows of each kind of change the run's days hold. Binds the run's bounds."""
    return f"""
    SELECT change, count(*) FROM {changes}
    WHERE snapshot_date >= :range_start AND snapshot_date < :range_after
    GROUP BY change
    """


# --- the preview: the largest movements of the health score and the changes that explain them ----

# How much one open finding of each severity takes off the severity score (the contract's weights):
# the changes of a movement are listed heaviest first.
SEVERITY_WEIGHTS = dict(zip(SEVERITIES, (10, 5, 2, 1)))
CHANGES_PER_MOVEMENT = 8


# The fast way to the largest movements reads the health movements of this many tenant-days, the
# largest first, and proves from them alone which are the largest with changes (see below).
MOVEMENTS_READ = 5 * PREVIEW_ROWS


def largest_movements(d: Dialect, changes: str, health: str) -> str:
    """The run's tenant-days with changes, largest health movement first (PREVIEW_ROWS of them), each
    with its first CHANGES_PER_MOVEMENT changes (titles from the live rows). Binds the run's bounds.

    Health before is D-1's row of health_snapshot: null when the tenant entered on D (`entered`) or
    when D-1 was not materialized. Tenant-days are ordered by: both healths known first, then the
    size of the movement, the number of changes, the latest day, the tenant.

    Counting the changes of every tenant-day of a long range costs a pass over all its changes. So the
    health rows of the range are ranked by the first two keys alone (`ranked`: the MOVEMENTS_READ
    first, and the changes of just those counted by primary key). When the PREVIEW_ROWS-th of them
    with changes has both healths and a movement larger than some ranked row, every tenant-day left
    out is smaller still (or has no health row, or lacks one): the ranked rows with changes hold the
    answer (`proven`). Otherwise, as on a short range with few movements, every tenant-day with
    changes is counted (`counted`), as the contract's order demands; `proven` gates it, so that only
    one of the two is ever read.
    """
    weight = " ".join(f"WHEN '{sev}' THEN {w}" for sev, w in SEVERITY_WEIGHTS.items())
    heaviest = (
        f"{d.greatest(f'CASE c.value_before {weight} ELSE 0 END', f'CASE c.value_after {weight} ELSE 0 END')}"
    )
    unknown = "CASE WHEN health_before IS NULL OR health_after IS NULL THEN 1 ELSE 0 END"
    size = "abs(coalesce(health_after - health_before, 0))"
    return f"""
    WITH {onboarded_tenants(d).strip()},
    health_movements AS (
        -- each health row of the range with D-1's health, when D-1 has a row: the row before it in
        -- the tenant's days (one sort, where matching D-1 by day would sort both sides)
        SELECT tenant_id, snapshot_date,
               CASE WHEN day_before = {d.previous_day('snapshot_date')} THEN score_before END AS health_before,
               health_after
        FROM (
            SELECT tenant_id, snapshot_date, health_score AS health_after,
                   lag(snapshot_date) OVER per_tenant AS day_before, lag(health_score) OVER per_tenant AS score_before
            FROM {health}
            WHERE snapshot_date >= {d.previous_day(':range_start')} AND snapshot_date < :range_after
            WINDOW per_tenant AS (PARTITION BY {d.bytewise('tenant_id')} ORDER BY snapshot_date)
        ) AS days
        WHERE snapshot_date >= :range_start
    ),
    ranked AS {d.materialized} (
        SELECT r.*,
               (SELECT count(*) FROM {changes} c
                WHERE c.tenant_id = r.tenant_id AND c.snapshot_date = r.snapshot_date) AS changes
        FROM (
            SELECT health_movements.*, {unknown} AS unknown, {size} AS size FROM health_movements
            ORDER BY unknown, size DESC
            LIMIT {MOVEMENTS_READ}
        ) AS r
    ),
    boundary AS (
        -- the PREVIEW_ROWS-th ranked tenant-day with changes
        SELECT unknown, size FROM ranked WHERE changes > 0
        ORDER BY unknown, size DESC
        LIMIT 1 OFFSET {PREVIEW_ROWS - 1}
    ),
    proven AS (
        SELECT count(*) AS yes FROM boundary b
        WHERE b.unknown = 0
          AND ((SELECT count(*) FROM ranked) < {MOVEMENTS_READ}
               OR EXISTS (SELECT 1 FROM ranked r WHERE r.unknown = 1 OR r.size < b.size))
    ),
    counted AS (
        SELECT tenant_id, snapshot_date, count(*) AS changes
        FROM {changes}
        WHERE snapshot_date >= :range_start AND snapshot_date < :range_after
          AND (SELECT yes FROM proven) = 0
        GROUP BY tenant_id, snapshot_date
    ),
    movements AS (
        SELECT r.tenant_id, r.snapshot_date, r.changes, r.health_before, r.health_after
        FROM ranked r
        WHERE r.changes > 0 AND (SELECT yes FROM proven) = 1
        UNION ALL
        SELECT m.tenant_id, m.snapshot_date, m.changes, hb.health_score, ha.health_score
        FROM counted m
        LEFT JOIN {health} ha ON ha.tenant_id = m.tenant_id AND ha.snapshot_date = m.snapshot_date
                             AND ha.snapshot_date >= :range_start AND ha.snapshot_date < :range_after
        LEFT JOIN {health} hb ON hb.tenant_id = m.tenant_id AND hb.snapshot_date = {d.previous_day('m.snapshot_date')}
                             AND hb.snapshot_date >= {d.previous_day(':range_start')}
                             AND hb.snapshot_date < {d.previous_day(':range_after')}
    ),
    largest AS (
        -- LIMIT, not a filter on a rank: the planner then knows how few rows the joins below read
        -- (by primary key) instead of scanning the source tables for titles
        SELECT m.*, CASE WHEN t.first_day = m.snapshot_date THEN 1 ELSE 0 END AS entered,
               row_number() OVER (ORDER BY {unknown}, {size} DESC, changes DESC,
                   snapshot_date DESC, tenant_id) AS movement
        FROM movements m
        LEFT JOIN onboarded t ON t.id = m.tenant_id
        ORDER BY movement
        LIMIT {PREVIEW_ROWS}
    ),
    explained AS (
        SELECT l.*, c.record_table, c.record_id, c.change, c.value_before, c.value_after,
               coalesce(o.title, r.title) AS title,
               row_number() OVER (PARTITION BY l.movement ORDER BY
                   CASE c.record_table WHEN 'observation' THEN 0 ELSE 1 END,
                   {heaviest} DESC,
                   CASE WHEN c.value_before = 'COMPLIANT' OR c.value_after = 'COMPLIANT' THEN 0 ELSE 1 END,
                   c.change, c.record_id) AS pick
        FROM largest l
        JOIN {changes} c ON c.tenant_id = l.tenant_id AND c.snapshot_date = l.snapshot_date
        LEFT JOIN observation o ON c.record_table = 'observation' AND o.id = c.record_id
        LEFT JOIN compliance_requirement r ON c.record_table = 'compliance_requirement' AND r.id = c.record_id
    )
    SELECT movement, tenant_id, snapshot_date, health_before, health_after, entered, changes,
           record_table, record_id, change, value_before, value_after, title
    FROM explained
    WHERE pick <= {CHANGES_PER_MOVEMENT}
    ORDER BY movement, pick
    """
