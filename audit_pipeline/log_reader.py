"""Reads new `audit_log` rows exactly once each, whatever order their transactions commit in.

`audit_log` ids come from a sequence: they are handed out when a row is inserted, not when its
transaction commits. So after reading up to id N, a row with a lower id can still appear (its
transaction was slower), and an id can stay missing for ever (rolled back). A reader that only
remembers "the highest id read" skips the slow transaction's row.

A `LogPosition` therefore remembers, besides the highest id read (`after`), the ids below it that
were missing when they were passed (`gaps`, as ranges, with the time each range was first seen
missing). Every read asks for the ids above `after` *and* the ids still in the gaps, in one query on
the primary key. A row that appears in a gap is read then, once; an id still missing
`LATE_COMMIT_SECONDS` after it was first seen missing is given up (a rolled-back insert, or a
transaction longer than that), and reported as such.

The guarantee: a row is read exactly once if its transaction commits within `LATE_COMMIT_SECONDS`
of the first read that found its id missing (which is never before the id was taken). The cursor
stays small: at most `MAX_GAP_RANGES` ranges; past that the oldest are given up, and reported.

Every consumer of new log rows (the late-correction sensor, the record history) keeps its own
position and uses this reader.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from sqlalchemy import Connection, text

LATE_COMMIT_SECONDS = 3600
MAX_GAP_RANGES = 1000


@dataclass(frozen=True)
class Gap:
    """The ids first..last (inclusive), missing since `noticed` (seconds since the epoch)."""

    first: int
    last: int
    noticed: float


@dataclass(frozen=True)
class LogPosition:
    after: int  # every id <= after has been read, but those in `gaps`
    gaps: tuple[Gap, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "gaps": [[g.first, g.last, round(g.noticed, 3)] for g in self.gaps]})

    @classmethod
    def from_json(cls, value: str) -> LogPosition:
        """Also reads the plain id that cursors held before gaps were remembered."""
        data = json.loads(value)
        if isinstance(data, int):
            return cls(data)
        return cls(int(data["after"]), tuple(Gap(int(a), int(b), float(t)) for a, b, t in data.get("gaps", ())))

    @property
    def waiting_ids(self) -> int:
        return sum(g.last - g.first + 1 for g in self.gaps)


@dataclass(frozen=True)
class LogBatch:
    rows: list  # the rows read, in id order, as the caller's column list gave them
    position: LogPosition  # where the next read starts
    given_up: tuple[Gap, ...] = field(default=())  # ids no longer waited for

    @property
    def ids(self) -> list[int]:
        return [row[0] for row in self.rows]


def start_position(conn: Connection, now: float | None = None) -> LogPosition:
    """The position after the log as it is now: later rows are new. The ids missing near its end
    are waited for, as their transactions may still commit."""
    now = time.time() if now is None else now
    last = conn.execute(text("SELECT max(id) FROM audit_log")).scalar_one()
    if last is None:
        return LogPosition(0)
    recent = conn.execute(
        text("SELECT id FROM audit_log WHERE id > :low ORDER BY id"), {"low": last - TRAILING_IDS_AT_START}
    ).scalars().all()
    return LogPosition(int(last), tuple(_missing(max(last - TRAILING_IDS_AT_START, 0), recent, int(last), now)))


# How far back from the end `start_position` looks for missing ids (ids, not rows).
TRAILING_IDS_AT_START = 10_000


def read_new_rows(
    conn: Connection, position: LogPosition, columns: str, limit: int, now: float | None = None
) -> LogBatch:
    """The rows after `position` and those that appeared in its gaps, in id order, at most `limit`.

    `columns` is the select list (code, not data), and must start with `id`. One query, on the
    primary key: it starts at the lowest id waited for, so it reads only the tail of the log.
    """
    now = time.time() if now is None else now
    gaps = position.gaps
    params: dict = {"after": position.after, "limit": limit, "lowest": min([g.first for g in gaps], default=position.after + 1)}
    wanted = ["id > :after"]
    for i, gap in enumerate(gaps):
        wanted.append(f"id BETWEEN :g{i}_first AND :g{i}_last")
        params[f"g{i}_first"], params[f"g{i}_last"] = gap.first, gap.last
    rows = conn.execute(
        text(f"SELECT {columns} FROM audit_log WHERE id >= :lowest AND ({' OR '.join(wanted)}) ORDER BY id LIMIT :limit"),
        params,
    ).all()
    return advance(position, [row[0] for row in rows], rows, limit, now)


def advance(position: LogPosition, ids: Sequence[int], rows: list, limit: int, now: float) -> LogBatch:
    """The position after reading `ids` (sorted, at most `limit`): pure, so it is tested directly."""
    # Ids above `top` were not looked at when the limit cut the read short.
    top = ids[-1] if len(ids) >= limit else None
    found = set(ids)
    kept: list[Gap] = []
    given_up: list[Gap] = []
    for gap in position.gaps:
        for part in _without(gap, found):
            if top is not None and part.first > top:
                kept.append(part)  # not looked at this time
            elif top is not None and part.last > top:
                kept += _split_at(part, top, now, given_up)
            elif now - part.noticed > LATE_COMMIT_SECONDS:
                given_up.append(part)
            else:
                kept.append(part)
    newer = [i for i in ids if i > position.after]
    after = newer[-1] if newer else position.after
    kept += _missing(position.after, newer, after, now)
    kept.sort(key=lambda g: g.first)
    if len(kept) > MAX_GAP_RANGES:  # bounded cursor: give up the oldest ranges
        oldest = sorted(kept, key=lambda g: (g.noticed, g.first))[: len(kept) - MAX_GAP_RANGES]
        given_up += oldest
        kept = [g for g in kept if g not in oldest]
    return LogBatch(rows, LogPosition(after, tuple(kept)), tuple(given_up))


def _split_at(part: Gap, top: int, now: float, given_up: list[Gap]) -> list[Gap]:
    """A gap straddling the last id looked at: the part above it is kept as it is."""
    below, above = replace(part, last=top), replace(part, first=top + 1)
    if now - part.noticed > LATE_COMMIT_SECONDS:
        given_up.append(below)
        return [above]
    return [below, above]


def _without(gap: Gap, found: set[int]) -> list[Gap]:
    """The parts of `gap` whose ids were not found."""
    hits = sorted(i for i in found if gap.first <= i <= gap.last) if found else []
    parts, start = [], gap.first
    for hit in hits:
        if hit > start:
            parts.append(replace(gap, first=start, last=hit - 1))
        start = hit + 1
    if start <= gap.last:
        parts.append(replace(gap, first=start))
    return parts


def _missing(after: int, ids: Sequence[int], last: int, now: float) -> list[Gap]:
    """The ranges of ids in (after, last] that are not in `ids` (sorted), noticed now."""
    gaps, expected = [], after + 1
    for i in ids:
        if i > expected:
            gaps.append(Gap(expected, i - 1, now))
        expected = max(expected, i + 1)
    if last >= expected:
        gaps.append(Gap(expected, last, now))
    return gaps
