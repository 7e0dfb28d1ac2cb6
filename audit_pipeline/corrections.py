"""Which past days an audit_log row changes: the late-correction sensor's arithmetic, kept pure.

Under the contract a day's snapshot depends on the live rows' created_at, closed_at and tenant
onboarding, and on the log rows before and after the day's end. So a new log row can change:
- the days from its own changed_at on (a backdated row, or the as-of value it records);
- when it changes created_at or closed_at (or inserts a record with them): the days from the
  earlier of the old and new values on;
- when it deletes a record: the days from that record's created_at on;
- when it changes a tenant's onboarding: every day from that tenant's created_at on;
- when it moves a record to another tenant (`tenant_id`): both tenants' days from the record's
  created_at on (a run re-computes every tenant of its days, so one range covers both).
A field counts as changed when it is in only one image, or in both with different values; so an
ordinary update with whole row images (which repeat an old created_at) reaches back only to its
changed_at, and needs no re-run of history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .calendar import local_date, parse_instant

TIME_FIELDS = ("created_at", "closed_at")
MISSING = object()


class FromTheStart:
    """The change reaches back further than can be known (e.g. a delete without its image)."""


FROM_THE_START = FromTheStart()


@dataclass(frozen=True)
class LogRow:
    id: int
    table_name: str
    record_id: str
    action: str
    old: Any  # the parsed JSON image: a dict, or anything else (which has no fields)
    new: Any
    changed_at: dt.datetime | None


def changed_fields(old: dict, new: dict) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k, MISSING) != new.get(k, MISSING)}


def reaches_back_to(row: LogRow, created_at: dt.datetime | None = None) -> dt.datetime | FromTheStart | None:
    """The earliest instant whose snapshots `row` can change (None: nothing is known to change).

    `created_at` is the live created_at of the row's record (tenant, observation, requirement), used
    when a change reaches back to the record's creation and its images do not say when that was.
    """
    old, new = _images(row)
    candidates: list[Any] = [row.changed_at]
    if row.action.strip().upper() == "DELETE":
        candidates.append(old.get("created_at", FROM_THE_START))
    changed = changed_fields(old, new)
    for field in TIME_FIELDS:
        if field in changed:
            candidates += [old.get(field), new.get(field)]
    if (row.table_name == "tenant" and "onboarding_completed" in changed) or (
        row.table_name != "tenant" and "tenant_id" in changed
    ):
        candidates.append(new.get("created_at") or old.get("created_at") or created_at or FROM_THE_START)
    if any(c is FROM_THE_START for c in candidates):
        return FROM_THE_START
    instants = []
    for candidate in candidates:
        if candidate is None:
            continue
        instant = parse_instant(candidate)
        if instant is None:  # a time we cannot read: assume the worst
            return FROM_THE_START
        instants.append(instant)
    return min(instants, default=None)


def needs_created_at(row: LogRow) -> bool:
    """Whether `reaches_back_to` may need the record's live created_at for this row."""
    return row.table_name == "tenant" or "tenant_id" in changed_fields(*_images(row))


def _images(row: LogRow) -> tuple[dict, dict]:
    """The row's images as dicts: an image that is not a JSON object has no fields."""
    return (row.old if isinstance(row.old, dict) else {}), (row.new if isinstance(row.new, dict) else {})


def earliest_affected_day(
    rows: list[LogRow],
    tz: ZoneInfo,
    first_day: dt.date,
    created_at: dict[tuple[str, str], dt.datetime] | None = None,
) -> dt.date | None:
    """The first day (not before `first_day`) whose snapshot any of `rows` can change.

    `created_at` maps (table_name, record_id) to the record's live created_at.
    """
    created_at = created_at or {}
    earliest: dt.date | None = None
    for row in rows:
        instant = reaches_back_to(row, created_at.get((row.table_name, row.record_id)))
        if instant is None:
            continue
        day = first_day if instant is FROM_THE_START else max(local_date(instant, tz), first_day)
        earliest = day if earliest is None else min(earliest, day)
    return earliest


@dataclass(frozen=True)
class PendingCorrection:
    """Log rows read by the sensor whose re-run waits for runs that may have read the sources before
    the rows were seen. Several merge into one: the earliest day, the latest sighting."""

    first_day: dt.date
    seen_at: float  # when the sensor read the newest of them (seconds since the epoch)
    first_id: int
    last_id: int

    def merge(self, other: PendingCorrection | None) -> PendingCorrection:
        if other is None:
            return self
        return PendingCorrection(
            min(self.first_day, other.first_day), max(self.seen_at, other.seen_at),
            min(self.first_id, other.first_id), max(self.last_id, other.last_id),
        )

    def to_dict(self) -> dict:
        return {"first_day": self.first_day.isoformat(), "seen_at": self.seen_at, "ids": [self.first_id, self.last_id]}

    @classmethod
    def from_dict(cls, data: dict | None) -> PendingCorrection | None:
        if not data:
            return None
        return cls(dt.date.fromisoformat(data["first_day"]), float(data["seen_at"]), *map(int, data["ids"]))
