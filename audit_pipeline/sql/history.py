"""The record history: every record's place on every day, as maximal runs of days with one value.

Two steps, both set-based:

1. *Log values.* Each `audit_log` row of an observation or requirement is parsed once into
   `history_log_value` (the pipeline's own table, indexed by record): whether its new and old images
   hold the field (`severity`, `status`) and its value, with the local day of its `changed_at`. A
   rebuild parses the whole log; an update parses only the rows the log reader hands it, by id.
2. *Runs.* For a set of records (all of them, or those the new rows touch) the contract's "value as
   of T(D)" becomes day ranges of constant value: with T = T(D), "changed_at < T" is "the change's
   local day <= D", so from each day with a written value until the next (`new_by_day`); before the
   first such day, the value the next change overwrote (`old_by_day`); where neither exists, the live
   row's value. Cut to the days the record has a place (an observation while open, a requirement
   from its creation), normalized, and merged where neighbours have the same value.

A record's history depends only on its own log rows and its live row, so an update re-derives the
records that new rows touch, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dialect import Dialect

# Temporary tables of an update: the ids of the new log rows, and the records they touch.
NEW_LOG_IDS = "audit_pipeline_new_log_ids"
TOUCHED_RECORDS = "audit_pipeline_touched_records"


@dataclass(frozen=True)
class RecordKind:
    log_table: str  # audit_log.table_name, and the live table
    field: str  # the field whose history is kept
    history: str  # the history table
    id_column: str  # its record id column
    value_column: str
    closes: bool  # whether the place ends at closed_at (observations) or never (requirements)


OBSERVATIONS = RecordKind("observation", "severity", "observation_history", "observation_id", "severity", True)
REQUIREMENTS = RecordKind("compliance_requirement", "status", "requirement_history", "requirement_id", "status", False)
KINDS = (OBSERVATIONS, REQUIREMENTS)


def load_log_values(d: Dialect, target: str, only_new: bool, part: tuple[int, int] = (0, 1)) -> str:
    """Insert the parsed field values of audit_log rows into `target` (history_log_value): all of
    them (into an empty table), or (`only_new`) those whose ids are in NEW_LOG_IDS and that are not
    there yet. `part` (i, n): only the rows whose id is i modulo n, for n connections at once."""
    def per_kind(expression) -> str:
        cases = " ".join(f"WHEN '{k.log_table}' THEN {expression(k)}" for k in KINDS)
        return f"CASE table_name {cases} END"

    new_only = f"AND id IN (SELECT id FROM {NEW_LOG_IDS})" if only_new else ""
    index, parts = part
    one_part = f"AND id % {parts} = {index}" if parts > 1 else ""
    return f"""
    WITH parsed AS {d.materialized} (
        -- Each image is parsed here, once; the next step reads the extracted fields.
        SELECT id, table_name, record_id, changed_at,
               {per_kind(lambda k: d.json_field('new_data', k.field))} AS new_field,
               {per_kind(lambda k: d.json_field('old_data', k.field))} AS old_field
        FROM audit_log
        WHERE table_name IN ({', '.join(f"'{k.log_table}'" for k in KINDS)})
          AND changed_at IS NOT NULL AND record_id IS NOT NULL {new_only} {one_part}
    )
    INSERT INTO {target} (log_id, record_table, record_id, changed_at, change_day,
                          new_present, new_value, old_present, old_value)
    SELECT id, table_name, record_id, {d.instant('changed_at')}, {d.local_day('changed_at')},
           {per_kind(lambda k: d.json_present('new_field', k.field))},
           {per_kind(lambda k: d.json_value('new_field', k.field))},
           {per_kind(lambda k: d.json_present('old_field', k.field))},
           {per_kind(lambda k: d.json_value('old_field', k.field))}
    FROM parsed
    {f"WHERE NOT EXISTS (SELECT 1 FROM {target} seen WHERE seen.log_id = parsed.id)" if only_new else ""}
    """


def touched(kind: RecordKind) -> str:
    """The ids of `kind`'s records that an update derives again."""
    return f"SELECT record_id FROM {TOUCHED_RECORDS} WHERE record_table = '{kind.log_table}'"


def touched_runs(kind: RecordKind) -> str:
    """The condition on a history table's rows: those of the records an update derives again."""
    return f"{kind.id_column} IN ({touched(kind)})"


def delete_touched_history(kind: RecordKind, target: str) -> str:
    return f"DELETE FROM {target} WHERE {touched_runs(kind)}"


def insert_history(d: Dialect, kind: RecordKind, target: str, log_values: str, only_touched: bool) -> str:
    """Insert the runs of `kind`'s records (all, or those in TOUCHED_RECORDS) into `target`."""
    only_changes = f"AND record_id IN ({touched(kind)})" if only_touched else ""
    only_live = f"AND id IN ({touched(kind)})" if only_touched else ""
    record = d.bytewise("record_id")
    gone = d.local_day("closed_at") if kind.closes else "CAST(NULL AS DATE)"
    return f"""
    WITH changes AS (
        SELECT record_id, change_day AS c_day, changed_at, log_id, new_present, new_value, old_present, old_value
        FROM {log_values}
        WHERE record_table = '{kind.log_table}' {only_changes}
    ),
    new_by_day AS (
        -- per record and local day: the value written by that day's last change
        SELECT record_id, c_day, new_value FROM (
            SELECT record_id, c_day, new_value,
                   row_number() OVER (PARTITION BY {record}, c_day ORDER BY changed_at DESC, log_id DESC) AS pick
            FROM changes WHERE new_present
        ) AS ranked
        WHERE pick = 1
    ),
    old_by_day AS (
        -- per record and local day: the value that day's first change overwrote
        SELECT record_id, c_day, old_value FROM (
            SELECT record_id, c_day, old_value,
                   row_number() OVER (PARTITION BY {record}, c_day ORDER BY changed_at, log_id) AS pick
            FROM changes WHERE old_present
        ) AS ranked
        WHERE pick = 1
    ),
    first_new AS (SELECT record_id, min(c_day) AS c_day FROM new_by_day GROUP BY record_id),
    last_old AS (SELECT record_id, max(c_day) AS c_day FROM old_by_day GROUP BY record_id),
    live AS (
        SELECT id, tenant_id, {kind.field} AS value,
               {d.local_day('created_at')} AS born, {gone} AS gone
        FROM {kind.log_table}
        WHERE created_at IS NOT NULL {only_live}
    ),
    segments AS (
        -- from a day with a written value until the next such day
        SELECT record_id, c_day AS from_day,
               coalesce(lead(c_day) OVER (PARTITION BY {record} ORDER BY c_day), :day_max) AS to_day,
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
        -- no change before and none after: the live row's value
        SELECT live.id, coalesce(lo.c_day, :day_min), coalesce(fn.c_day, :day_max), live.value
        FROM live
        LEFT JOIN last_old lo ON lo.record_id = live.id
        LEFT JOIN first_new fn ON fn.record_id = live.id
    ),
    places AS (
        -- cut to the days the record has a place; values normalized
        SELECT s.record_id, live.tenant_id,
               {d.greatest('s.from_day', 'live.born')} AS from_day,
               {d.least('s.to_day', 'coalesce(live.gone, :day_max)')} AS to_day,
               {d.normalized_enum('s.value')} AS value
        -- joined byte by byte: the join's sorts are then those of the windows below (and several
        -- times faster than in the database's collation)
        FROM segments s JOIN live ON {d.bytewise('live.id')} = {d.bytewise('s.record_id')}
    ),
    marked AS (
        SELECT record_id, tenant_id, from_day, to_day, value,
               CASE WHEN {d.same('lag(value) OVER per_record', 'value')} AND lag(to_day) OVER per_record = from_day
                    THEN 0 ELSE 1 END AS starts
        FROM places
        WHERE from_day < to_day
        WINDOW per_record AS (PARTITION BY {record} ORDER BY from_day)
    ),
    runs AS (
        SELECT record_id, tenant_id, from_day, to_day, value,
               sum(starts) OVER (PARTITION BY {record} ORDER BY from_day ROWS UNBOUNDED PRECEDING) AS run
        FROM marked
    )
    INSERT INTO {target} ({kind.id_column}, tenant_id, {kind.value_column}, valid_from, valid_to)
    SELECT record_id, tenant_id, value, min(from_day), CASE WHEN max(to_day) = :day_max THEN NULL ELSE max(to_day) END
    FROM runs
    GROUP BY record_id, tenant_id, run, value
    """
