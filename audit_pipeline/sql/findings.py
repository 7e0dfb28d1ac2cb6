"""Tables of the application's current state: repeat-finding chains and engagement progress, and
the two checks on repeat links.

They are kept up to date (`current_state.py`) over the pipeline's copy of the observation columns
they read (`current_observation`) and of the onboarded tenants (`current_onboarded_tenant`). The
statements that copy rows and derive the tables and the flags are written once for both ways of
running them: over every row (a rebuild) or only over the rows a night affects, named by the
temporary tables below (`only_affected`, `only_touched`). So a rebuild gives exactly the rows the
updates give.

What a row depends on, and so which rows a night derives again:
- a repeat_finding row: its observation, its tenant's onboarding, and the observations its chain
  passes through (and the one after the chain's end, which stopped it). All of those lie on its
  repeat_of_id path, so when one of them changes the row is a descendant of a touched observation
  (along the links as they are now: the part of the path before the first touched observation did
  not change), or of a tenant whose onboarding changed;
- the two checks' flags of an observation (`cross_tenant_link`, `on_cycle`): the observations on its
  path, likewise;
- an engagement_progress row: the engagement, its tenant's onboarding, and the observations that
  name it. The first two are compared whole each night (`changed_engagements`) and the rows that
  differ are counted again; the observations change only where a log row touches them, and their
  contributions before and after are taken from and added to the counts (ENGAGEMENT_DELTA): a night
  touches observations of about half the engagements, and counting those again would read about
  half the observations.

A link to an observation that does not exist is followed by none of these, exactly like a null
repeat_of_id. (In the copy a child keeps its link to a deleted observation until a log row names the
child, where the source's foreign key has set it to null: the same rows either way.)

`repeat_finding()` and `engagement_progress()` read the source tables by default (every row), as
`writes.TableWriter` does; `cross_tenant_repeat_links()` and `repeat_cycles()` likewise, for a run of
the checks alone.
"""

from __future__ import annotations

from ..dialect import Dialect

# Temporary tables of an update (current_state.py): the observations new log rows name; the
# observations whose repeat row and flags are derived again; the engagements whose progress row is
# derived again (their own row changed); what the touched observations add to and take from the
# counts of the others; the tenants whose onboarding changed (or who appeared or disappeared).
TOUCHED = "audit_pipeline_touched_observations"
AFFECTED = "audit_pipeline_affected_observations"
AFFECTED_ENGAGEMENTS = "audit_pipeline_affected_engagements"
ENGAGEMENT_DELTA = "audit_pipeline_engagement_delta"
CHANGED_TENANTS = "audit_pipeline_changed_tenants"

# Separates observation ids on a repeat chain's path (bound as :sep): a control character no id contains.
PATH_SEPARATOR = "\x1f"
# The onboarded tenants, as the source has them (a query of ids).
SOURCE_ONBOARDED = "SELECT id FROM tenant WHERE onboarding_completed IS TRUE"

# The observation columns the copy holds, in the source's names.
COPIED_COLUMNS = ("id", "tenant_id", "title", "status", "severity", "created_at", "closed_at", "engagement_id", "repeat_of_id")


def copied_onboarded(tenants: str) -> str:
    """The onboarded tenants, as the copy has them (a query of ids)."""
    return f"SELECT tenant_id FROM {tenants}"


def _rows_of(table: str, alias: str, only: str | None, key: str = "id") -> str:
    """A FROM item: `table` as `alias`, or only its rows whose `key` the temporary table `only` names,
    reached from it (an update: a night's few rows, through the index on `key`). Written small table
    first: an update keeps the written join order (current_state.UPDATE_PLANNER_SETTINGS)."""
    if only is None:
        return f"{table} {alias}"
    return f"{only} named JOIN {table} {alias} ON {alias}.{key} = named.id"


# --- the copy -----------------------------------------------------------------------------------------


def load_observations(observations: str, only_touched: bool) -> str:
    """Copy the live rows of observations (all, or those in TOUCHED, by primary key); flags false,
    to be set by `mark_links`. A touched id without a live row (deleted) copies nothing."""
    columns = ", ".join(f"o.{c}" for c in COPIED_COLUMNS)
    return f"""
    INSERT INTO {observations} ({', '.join(COPIED_COLUMNS)}, cross_tenant_link, on_cycle)
    SELECT {columns}, FALSE, FALSE FROM {_rows_of('observation', 'o', TOUCHED if only_touched else None)}
    """


def delete_touched_observations(observations: str) -> str:
    return f"DELETE FROM {observations} WHERE id IN (SELECT id FROM {TOUCHED})"


def engagement_counts_of_touched(observations: str, sign: int) -> str:
    """Add to ENGAGEMENT_DELTA what the touched observations count for their engagements in the
    copy, per engagement and tenant: run before the copy is updated with sign -1 (what they no
    longer count), after it with +1 (what they count now)."""
    return f"""
    INSERT INTO {ENGAGEMENT_DELTA} (engagement_id, tenant_id, observation_count, open_count, closed_count)
    SELECT o.engagement_id, o.tenant_id, {sign} * count(*),
           {sign} * count(CASE WHEN o.closed_at IS NULL THEN 1 END), {sign} * count(o.closed_at)
    FROM {_rows_of(observations, 'o', TOUCHED)}
    WHERE o.engagement_id IS NOT NULL
    GROUP BY o.engagement_id, o.tenant_id
    """


def apply_engagement_counts(progress: str) -> str:
    """Add ENGAGEMENT_DELTA to the counts of engagement_progress. A row counts the observations of
    its engagement's tenant, so only the delta of that tenant applies. The rows of the engagements
    in AFFECTED_ENGAGEMENTS are counted again afterwards, whatever this gives them."""
    return f"""
    UPDATE {progress} AS p
    SET observation_count = p.observation_count + d.observation_count,
        open_count = p.open_count + d.open_count,
        closed_count = p.closed_count + d.closed_count
    FROM (
        SELECT engagement_id, tenant_id, sum(observation_count) AS observation_count,
               sum(open_count) AS open_count, sum(closed_count) AS closed_count
        FROM {ENGAGEMENT_DELTA}
        GROUP BY engagement_id, tenant_id
    ) AS d
    WHERE d.engagement_id = p.engagement_id AND d.tenant_id = p.tenant_id
    """


def load_tenants(tenants: str, only_changed: bool) -> str:
    """Copy the onboarded tenants (all, or those in CHANGED_TENANTS that are onboarded now)."""
    only = f"AND id IN (SELECT id FROM {CHANGED_TENANTS})" if only_changed else ""
    return f"INSERT INTO {tenants} (tenant_id) {SOURCE_ONBOARDED} {only}"


def changed_tenants(tenants: str) -> str:
    """Tenants onboarded now and not in the copy, or in the copy and not onboarded now (changed or
    deleted): the tenant table is read whole (a few hundred rows; its changes are not logged)."""
    return f"""
    INSERT INTO {CHANGED_TENANTS} (id)
    SELECT id FROM tenant WHERE onboarding_completed IS TRUE AND id NOT IN ({copied_onboarded(tenants)})
    UNION
    SELECT tenant_id FROM {tenants} WHERE tenant_id NOT IN ({SOURCE_ONBOARDED})
    """


def delete_changed_tenants(tenants: str) -> str:
    return f"DELETE FROM {tenants} WHERE tenant_id IN (SELECT id FROM {CHANGED_TENANTS})"


def affected_observations(observations: str) -> str:
    """AFFECTED: the touched observations and their descendants along repeat_of_id (through the
    copy's index on it; UNION stops at cycles), and every observation of a changed tenant."""
    return f"""
    WITH RECURSIVE below (id) AS (
        SELECT id FROM {TOUCHED}
        UNION
        SELECT o.id FROM {observations} o JOIN below b ON o.repeat_of_id = b.id
    )
    INSERT INTO {AFFECTED} (id)
    SELECT id FROM below
    UNION
    SELECT o.id FROM {_rows_of(observations, 'o', CHANGED_TENANTS, key='tenant_id')}
    """


def changed_engagements(d: Dialect, progress: str, tenants: str) -> str:
    """Engagements whose row of engagement_progress differs from the source in what it copies of the
    engagement: missing (new, or its tenant onboarded), gone (deleted, or its tenant no longer
    onboarded), or another tenant, name or status. audit_engagement is read whole (a few thousand
    rows that do not grow with the history; its changes are not logged) and engagement_progress is
    the copy it is compared with."""
    onboarded = copied_onboarded(tenants)
    return f"""
    INSERT INTO {AFFECTED_ENGAGEMENTS} (id)
    SELECT e.id FROM audit_engagement e
    WHERE e.tenant_id IN ({onboarded})
      AND NOT EXISTS (
          SELECT 1 FROM {progress} p
          WHERE p.engagement_id = e.id AND p.tenant_id = e.tenant_id
            AND {d.same('p.engagement_name', 'e.name')} AND {d.same('p.engagement_status', 'e.status')}
      )
    UNION
    SELECT p.engagement_id FROM {progress} p
    WHERE NOT EXISTS (SELECT 1 FROM audit_engagement e WHERE e.id = p.engagement_id AND e.tenant_id IN ({onboarded}))
    """


# --- the two checks: offending rows, and the copy's flags ------------------------------------------------


def _crossing(observations: str, starts: str | None) -> str:
    """CTE `crossing(id, parent_id)`: links to an existing observation of another tenant (or with a
    tenant missing on either side), from every observation or those the table `starts` names."""
    return f"""
    crossing AS (
        SELECT o.id, parent.id AS parent_id
        FROM {_rows_of(observations, 'o', starts)} JOIN {observations} parent ON parent.id = o.repeat_of_id
        WHERE parent.tenant_id <> o.tenant_id OR o.tenant_id IS NULL OR parent.tenant_id IS NULL
    )"""


def _walk(d: Dialect, observations: str, starts: str | None) -> str:
    """CTE `walk(start_id, next_id, path)`: from every linked observation (or those the table
    `starts` names), its repeat_of_id chain through existing observations, until it comes back to an
    id on the path. Binds :sep."""
    # A start without a link walks nowhere; the whole table's unlinked rows are left out at once,
    # but named starts are not filtered: PostgreSQL would then read every linked observation
    # through the index on repeat_of_id, instead of looking the few named ones up.
    linked = "WHERE o.repeat_of_id IS NOT NULL" if starts is None else ""
    return f"""
    walk (start_id, next_id, path) AS (
        SELECT o.id, o.repeat_of_id, :sep || o.id || :sep
        FROM {_rows_of(observations, 'o', starts)} {linked}
        UNION ALL
        SELECT w.start_id, o.repeat_of_id, w.path || o.id || :sep
        FROM walk w JOIN {observations} o ON o.id = w.next_id
        WHERE {d.find('w.path', ':sep || o.id || :sep')} = 0 AND o.repeat_of_id IS NOT NULL
    )"""


def cross_tenant_repeat_links(observations: str = "observation") -> str:
    """Every link into another tenant's observation, read from `observations` whole."""
    return f"""
    WITH {_crossing(observations, None).strip()}
    SELECT 'cross-tenant link' AS kind, id, parent_id AS detail FROM crossing
    ORDER BY 2
    """


def repeat_cycles(d: Dialect, observations: str = "observation") -> str:
    """Every observation whose repeat_of_id chain comes back to it, read from `observations` whole.
    Binds :sep."""
    return f"""
    WITH RECURSIVE {_walk(d, observations, None).strip()}
    SELECT DISTINCT 'on a cycle' AS kind, start_id AS id, '' AS detail FROM walk WHERE next_id = start_id
    ORDER BY 2
    """


def mark_links(d: Dialect, observations: str, only_affected: bool) -> str:
    """Set the copy's two check flags of the observations in AFFECTED (or of all) to what the
    checks' queries above find for them. Only the rows found, and those flagged before, are written
    (a few hundred; a rebuild loads every row with both flags false): the statement reaches them
    from those small sets, never by scanning the copy for flags that differ. Binds :sep."""
    only = AFFECTED if only_affected else None
    if only_affected:
        # Each affected row looked up by id: through the flags' partial indexes, PostgreSQL would
        # read every flagged observation (more, the longer the history) to find the affected ones.
        flagged = f"""SELECT a.id FROM {AFFECTED} a
        WHERE (SELECT o.cross_tenant_link OR o.on_cycle FROM {observations} o WHERE o.id = a.id)"""
    else:
        flagged = f"SELECT id FROM {observations} WHERE cross_tenant_link OR on_cycle"
    return f"""
    WITH RECURSIVE {_walk(d, observations, only).strip()},
    {_crossing(observations, only).strip()},
    cyclic AS (SELECT start_id AS id FROM walk WHERE next_id = start_id),
    flagged AS (
        {flagged}
    )
    UPDATE {observations}
    SET cross_tenant_link = (id IN (SELECT id FROM crossing)), on_cycle = (id IN (SELECT id FROM cyclic))
    WHERE id IN (SELECT id FROM crossing UNION SELECT id FROM cyclic UNION SELECT id FROM flagged)
    """


def flagged_cross_tenant_links(observations: str) -> str:
    """What `cross_tenant_repeat_links` reports, from the copy's flags (its partial index)."""
    return f"""
    SELECT 'cross-tenant link' AS kind, id, repeat_of_id AS detail FROM {observations} WHERE cross_tenant_link
    ORDER BY 2
    """


def flagged_cycles(observations: str) -> str:
    """What `repeat_cycles` reports, from the copy's flags (its partial index)."""
    return f"""
    SELECT 'on a cycle' AS kind, id, '' AS detail FROM {observations} WHERE on_cycle
    ORDER BY 2
    """


# --- the two tables -------------------------------------------------------------------------------------


def delete_affected_findings(target: str) -> str:
    return f"DELETE FROM {target} WHERE observation_id IN (SELECT id FROM {AFFECTED})"


def repeat_finding(
    d: Dialect, target: str, observations: str = "observation", onboarded: str = SOURCE_ONBOARDED,
    only_affected: bool = False,
) -> str:
    """Insert the repeat_finding rows of every observation (or of those in AFFECTED): one per
    observation of an onboarded tenant whose repeat_of_id names an observation of the same tenant.

    Its chain follows repeat_of_id upward, one observation looked up by id at each step, while the
    next one exists, has the chain's tenant and is not on the path already (a cycle ends the chain).
    The chain's last row is the one the recursion did not continue: its original. Binds :sep, a
    character that separates ids on the path.
    """
    only = AFFECTED if only_affected else None
    # What the row shows of the observation and its parent rides along the recursion, so that the
    # result needs no second lookup of either.
    return f"""
    WITH RECURSIVE chain (observation_id, tenant_id, title, status, severity, parent_severity,
                          member_id, member_created_at, next_id, next_created_at, depth, path) AS (
        SELECT o.id, o.tenant_id, o.title, o.status, o.severity, parent.severity,
               o.id, o.created_at, parent.id, parent.created_at, 1, :sep || o.id || :sep
        FROM {_rows_of(observations, 'o', only)}
        JOIN {observations} parent ON parent.id = o.repeat_of_id AND parent.tenant_id = o.tenant_id
        WHERE o.repeat_of_id IS NOT NULL AND o.tenant_id IN ({onboarded})
        UNION ALL
        -- next_id exists and has the chain's tenant; it continues the chain unless it is on the
        -- path already. Its own link, if it leads to an observation of the tenant, gives the next one.
        SELECT c.observation_id, c.tenant_id, c.title, c.status, c.severity, c.parent_severity,
               c.next_id, c.next_created_at, n.id, n.created_at, c.depth + 1, c.path || c.next_id || :sep
        FROM chain c
        JOIN {observations} m ON m.id = c.next_id
        LEFT JOIN {observations} n ON n.id = m.repeat_of_id AND n.tenant_id = c.tenant_id
        WHERE {d.find('c.path', ':sep || c.next_id || :sep')} = 0
    )
    INSERT INTO {target} (observation_id, tenant_id, title, status, current_severity, previous_severity,
                          original_observation_id, original_date, occurrence_count)
    SELECT observation_id, tenant_id, title, status,
           {d.normalized_enum('severity')}, {d.normalized_enum('parent_severity')},
           member_id, {d.local_day('member_created_at')}, depth
    FROM chain
    WHERE next_id IS NULL OR {d.find('path', ':sep || next_id || :sep')} > 0
    """


def delete_affected_engagements(target: str) -> str:
    return f"DELETE FROM {target} WHERE engagement_id IN (SELECT id FROM {AFFECTED_ENGAGEMENTS})"


def engagement_progress(
    d: Dialect, target: str, observations: str = "observation", onboarded: str = SOURCE_ONBOARDED,
    only_affected: bool = False,
) -> str:
    """Insert the engagement_progress rows of every engagement of an onboarded tenant (or of those in
    AFFECTED_ENGAGEMENTS): its observations of the same tenant, open ones with closed_at null."""
    # Observations are counted per engagement first (a hash aggregate down to one narrow row per
    # engagement), then joined: joining every observation to its engagement and grouping by the
    # engagement's columns sorted all of them (on disk, with a long history). An update counts
    # those of its engagements only, through the copy's index on engagement_id.
    only = AFFECTED_ENGAGEMENTS if only_affected else None
    return f"""
    WITH per_engagement AS (
        SELECT o.engagement_id, o.tenant_id, count(*) AS observation_count,
               count(CASE WHEN o.closed_at IS NULL THEN 1 END) AS open_count, count(o.closed_at) AS closed_count
        FROM {_rows_of(observations, 'o', only, key='engagement_id')}
        WHERE o.engagement_id IS NOT NULL
        GROUP BY o.engagement_id, o.tenant_id
    )
    INSERT INTO {target} (engagement_id, tenant_id, engagement_name, engagement_status,
                          observation_count, open_count, closed_count)
    SELECT e.id, e.tenant_id, e.name, e.status,
           coalesce(o.observation_count, 0), coalesce(o.open_count, 0), coalesce(o.closed_count, 0)
    FROM {_rows_of('audit_engagement', 'e', only)}
    LEFT JOIN per_engagement o ON o.engagement_id = e.id AND o.tenant_id = e.tenant_id
    WHERE e.tenant_id IN ({onboarded})
    """
