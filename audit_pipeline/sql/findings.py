"""Tables of the application's current state: repeat-finding chains and engagement progress."""

from __future__ import annotations

from ..dialect import Dialect


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
    # Observations are counted per engagement first (a hash aggregate down to one narrow row per
    # engagement), then joined: joining every observation to its engagement and grouping by the
    # engagement's columns sorted all of them (on disk, with a long history).
    return f"""
    WITH per_engagement AS (
        SELECT engagement_id, tenant_id, count(*) AS observation_count,
               count(CASE WHEN closed_at IS NULL THEN 1 END) AS open_count, count(closed_at) AS closed_count
        FROM observation
        WHERE engagement_id IS NOT NULL
        GROUP BY engagement_id, tenant_id
    )
    INSERT INTO {target} (engagement_id, tenant_id, engagement_name, engagement_status,
                          observation_count, open_count, closed_count)
    SELECT e.id, e.tenant_id, e.name, e.status,
           coalesce(o.observation_count, 0), coalesce(o.open_count, 0), coalesce(o.closed_count, 0)
    FROM audit_engagement e
    JOIN tenant t ON t.id = e.tenant_id AND t.onboarding_completed IS TRUE
    LEFT JOIN per_engagement o ON o.engagement_id = e.id AND o.tenant_id = e.tenant_id
    """
