"""A deterministic generator of the application's source tables, messy as real data is.

`audit-pipeline demo-data [--url URL] [--scale N]`. Scale 1 is 40 tenants over 2023-10..2026-11;
scale N has N times the tenants (each tenant has the same volume at every scale). It simulates each
record's life (creation, severity and status changes, closing, deletion) and writes what the
application's audit trigger would have logged, which only exists from TRIGGER_START on.

Every messy case the contract names is present: enum values in other casing, with stray spaces, or
unknown ('INFO'); whole and partial row images; records with no history or only later history;
instants exactly at and one second before midnight in IST; observations closed before they were
created; deleted records; repeat cycles and links into another tenant; engagements holding
another tenant's observations; tenants not onboarded or created mid-history; names with quotes and
non-ASCII text; log images that are not JSON objects.

It also writes the old nightly cron job's `"DashboardSnapshot"` table, as that job would have: from
OLD_JOB_START, about 01:00 IST each night, one row per onboarded tenant with the metrics of that
moment ("now"), with the flaws of the real one: nights it failed, nights it crashed half-way, re-runs
later in the morning, late starts, and a few numbers nothing in the log explains.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from sqlalchemy import JSON, Engine, bindparam, insert, update
from sqlalchemy.engine import URL

from . import tables
from .database import create_database_engine

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
UTC = dt.timezone.utc
HISTORY_START = dt.datetime(2023, 10, 1, tzinfo=IST)
HISTORY_END = dt.datetime(2026, 11, 20, 23, 0, tzinfo=IST)
TRIGGER_START = dt.datetime(2024, 6, 1, 10, 0, tzinfo=IST)  # the audit trigger was installed here

TENANTS_PER_SCALE = 40
OBSERVATIONS_PER_TENANT = 750
REQUIREMENTS_PER_TENANT = 575
ENGAGEMENTS_PER_TENANT = 8

SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
SEVERITY_WEIGHTS = [1, 3, 5, 4]
MESSY_SEVERITIES = [" high ", "Critical", "medium ", "low", " LOW", "High", "INFO", "info "]
REQ_STATUSES = ["COMPLIANT", "PARTIALLY_COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"]
REQ_WEIGHTS = [16, 4, 3, 2]
MESSY_REQ_STATUSES = [" compliant", "Non_Compliant ", "not_applicable", "Partially_Compliant", "UNKNOWN", "pending "]
OBS_FLOW = ["OPEN", "IN_PROGRESS", "RESPONSE_RECEIVED", "CLOSED"]
BANK_NAMES = [
    "Sahakari Bank",
    "Nagari Sahakari Bank",
    "Urban Co-operative Bank",
    "Grāmīṇ Sahakārī Bank",
    "Janata Bank",
    "D'Souza Credit Society",
    'The "Model" Co-operative Bank',
    "सहकारी बैंक",
    "Mahila Bank; DROP TABLE tenant;--",
    "Shree Kṛṣṇa Bank",
]


@dataclass
class Demo:
    tenants: list[dict] = field(default_factory=list)
    engagements: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)
    requirements: list[dict] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    repeat_links: list[tuple[str, str]] = field(default_factory=list)  # (observation, repeat_of)
    # A longer history (history_factor > 1) starts earlier, with its trigger, and has as many more
    # records per tenant: the same activity per day.
    history_start: dt.datetime = HISTORY_START
    trigger_start: dt.datetime = TRIGGER_START
    history_factor: int = 1
    # What happened to each live record, as the old job saw it happen: (instant, kind, record, value),
    # kind "opened", "severity", "closed" (observations) or "created", "status" (requirements).
    events: dict[str, list[tuple]] = field(default_factory=dict)  # by tenant
    legacy: list[dict] = field(default_factory=list)  # the old job's "DashboardSnapshot" rows

    def record_events(self, tenant_id: str, *events: tuple) -> None:
        self.events.setdefault(tenant_id, []).extend(events)

    def log_change(self, tenant_id, table, record_id, action, old, new, at) -> None:
        if at < self.trigger_start:
            return  # before the trigger existed: nothing was logged
        self.log.append(
            dict(
                id=len(self.log) + 1,
                tenant_id=tenant_id,
                table_name=table,
                record_id=record_id,
                action=action,
                old_data=old,
                new_data=new,
                changed_at=at.astimezone(UTC),
            )
        )


def generate(scale: int = 1, seed: int = 20240401, history_factor: int = 1) -> Demo:
    rng = random.Random(seed * 1000 + scale)
    demo = Demo(
        history_start=HISTORY_END - (HISTORY_END - HISTORY_START) * history_factor,
        trigger_start=HISTORY_END - (HISTORY_END - TRIGGER_START) * history_factor,
        history_factor=history_factor,
    )
    for t in range(TENANTS_PER_SCALE * scale):
        _tenant(rng, demo, t)
    demo.log.sort(key=lambda row: (row["changed_at"], row["id"]))
    for new_id, row in enumerate(demo.log, start=1):
        row["id"] = new_id
    # Its own generator: the source tables stay what they were before the old job was added.
    demo.legacy = old_job_rows(demo, random.Random(f"old-job-{seed}-{scale}"))
    return demo


def _instant(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A random instant in [start, end), now and then exactly at or one second before IST midnight."""
    if end <= start:
        return start
    at = start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds()) or 1))
    roll = rng.random()
    if roll < 0.03:
        at = dt.datetime.combine(at.astimezone(IST).date(), dt.time(0), tzinfo=IST)
    elif roll < 0.06:
        at = dt.datetime.combine(at.astimezone(IST).date(), dt.time(23, 59, 59), tzinfo=IST)
    return min(max(at, start), end)


def _image(row: dict, columns=None) -> dict:
    """A JSON row image of `row` (whole, or only `columns`)."""
    out = {}
    for key in columns or row:
        value = row[key]
        out[key] = value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value
    return out


def _messy(rng: random.Random, clean: str, variants: list[str], rate: float = 0.06) -> str:
    if rng.random() >= rate:
        return clean
    candidates = [v for v in variants if v.strip().upper() == clean] or variants
    return rng.choice(candidates if rng.random() < 0.7 else variants)


def _tenant(rng: random.Random, demo: Demo, number: int) -> None:
    tenant_id = f"tenant-{number + 1:04d}"
    kind = number % 20
    created = demo.history_start - dt.timedelta(days=rng.randrange(30, 400))
    if kind == 7:  # joins mid-history
        created = _instant(rng, dt.datetime(2024, 9, 1, tzinfo=IST), dt.datetime(2026, 3, 1, tzinfo=IST))
    elif kind == 11:  # created exactly at an IST midnight, mid-history
        created = dt.datetime(2025, 4, 1, tzinfo=IST) + dt.timedelta(days=rng.randrange(0, 120))
    tenant = dict(
        id=tenant_id,
        name=f"{BANK_NAMES[number % len(BANK_NAMES)]} #{number + 1}",
        onboarding_completed=kind not in (3, 16),  # two in twenty still onboarding
        created_at=created.astimezone(UTC),
    )
    demo.tenants.append(tenant)
    active_from = max(created, demo.history_start)

    engagement_ids = []
    for e in range(ENGAGEMENTS_PER_TENANT):
        start = (active_from + dt.timedelta(days=rng.randrange(0, 900))).date()
        engagement_id = f"{tenant_id}-eng-{e + 1:02d}"
        engagement_ids.append(engagement_id)
        demo.engagements.append(
            dict(
                id=engagement_id,
                tenant_id=tenant_id,
                name=f"Engagement {e + 1} — {rng.choice(['Credit', 'KYC', 'Treasury', 'IT'])} review",
                status=rng.choice(["PLANNED", "IN_PROGRESS", "COMPLETED", " in_progress"]),
                start_date=start,
                end_date=start + dt.timedelta(days=rng.randrange(20, 120)),
            )
        )

    own_observations: list[str] = []
    for o in range(OBSERVATIONS_PER_TENANT * demo.history_factor):
        _observation(rng, demo, tenant_id, active_from, engagement_ids, own_observations, o)
    for r in range(REQUIREMENTS_PER_TENANT * demo.history_factor):
        _requirement(rng, demo, tenant_id, active_from, r)


def _observation(rng, demo: Demo, tenant_id, active_from, engagement_ids, own_observations, number) -> None:
    obs_id = f"{tenant_id}-obs-{number + 1:05d}"
    created = _instant(rng, active_from, HISTORY_END)
    severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
    row = dict(
        id=obs_id,
        tenant_id=tenant_id,
        title=f"Observation {number + 1}: {rng.choice(['KYC gap', 'Late NPA marking', 'Cash limit', 'Access review'])}",
        severity=_messy(rng, severity, MESSY_SEVERITIES),
        status="OPEN",
        created_at=created.astimezone(UTC),
        closed_at=None,
        due_date=(created + dt.timedelta(days=rng.randrange(15, 90))).date() if rng.random() < 0.8 else None,
        assigned_to=f"auditor{rng.randrange(1, 30)}@bank.example" if rng.random() < 0.7 else None,
        engagement_id=rng.choice(engagement_ids) if rng.random() < 0.8 else None,
        repeat_of_id=None,
    )
    demo.log_change(tenant_id, "observation", obs_id, "INSERT", None, _image(row), created)
    life = [(created, "opened", obs_id, row["severity"])]

    # Its life: most findings close within weeks; status steps and severity changes on the way.
    closes = rng.random() < 0.97
    close_at = created + dt.timedelta(days=min(rng.expovariate(1 / 14), 400), seconds=rng.randrange(86400))
    if closes and close_at < HISTORY_END:
        close_at = _instant(rng, close_at, close_at + dt.timedelta(hours=6))
    else:
        close_at = None
    until = close_at or HISTORY_END
    moments = sorted(_instant(rng, created, until) for _ in range(rng.choice([0, 1, 1, 2, 3])))
    if close_at:
        moments.append(close_at)
    for at in moments:
        old = dict(row)
        if at == close_at:
            row["status"], row["closed_at"] = "CLOSED", at.astimezone(UTC)
            life.append((at, "closed", obs_id, None))
        elif rng.random() < 0.45:
            row["severity"] = _messy(rng, rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0], MESSY_SEVERITIES)
            life.append((at, "severity", obs_id, row["severity"]))
        else:
            row["status"] = OBS_FLOW[min(OBS_FLOW.index(row["status"]) + 1, 2)]  # never CLOSED here
        changed = [k for k in row if row[k] != old[k]]
        if not changed:
            continue
        if rng.random() < 0.5:  # partial images: only the changed columns
            demo.log_change(tenant_id, "observation", obs_id, "UPDATE", _image(old, changed), _image(row, changed), at)
        else:
            demo.log_change(tenant_id, "observation", obs_id, "UPDATE", _image(old), _image(row), at)

    roll = rng.random()
    if roll < 0.004:  # closed before it was created (a data-entry error)
        row["closed_at"] = (created - dt.timedelta(days=rng.randrange(1, 30))).astimezone(UTC)
        row["status"] = "CLOSED"
    elif roll < 0.008:  # a log image that is not a JSON object
        demo.log_change(tenant_id, "observation", obs_id, "UPDATE", rng.choice(["oops", [1, 2]]), [row["severity"]], HISTORY_END)
    elif roll < 0.012:  # deleted: no live row, only its log
        demo.log_change(tenant_id, "observation", obs_id, "DELETE", _image(row), None, _instant(rng, created, HISTORY_END))
        return

    # Repeat findings: mostly an earlier observation of the same tenant; now and then a cycle or a
    # link into another tenant.
    if own_observations and rng.random() < 0.12:
        demo.repeat_links.append((obs_id, rng.choice(own_observations[-200:])))
    elif own_observations and rng.random() < 0.004:
        demo.repeat_links.append((obs_id, own_observations[-1]))
        demo.repeat_links.append((own_observations[-1], obs_id))  # a cycle of two
    elif demo.observations and rng.random() < 0.003:
        other = demo.observations[rng.randrange(len(demo.observations))]
        if other["tenant_id"] != tenant_id:
            demo.repeat_links.append((obs_id, other["id"]))
    if rng.random() < 0.002 and demo.engagements[0]["tenant_id"] != tenant_id:
        row["engagement_id"] = demo.engagements[0]["id"]  # an engagement of another tenant
    own_observations.append(obs_id)
    demo.observations.append(row)
    if not roll < 0.004:  # closed before created is never open, by the contract
        demo.record_events(tenant_id, *life)


def _requirement(rng, demo: Demo, tenant_id, active_from, number) -> None:
    req_id = f"{tenant_id}-req-{number + 1:05d}"
    created = _instant(rng, active_from - dt.timedelta(days=200), HISTORY_END)
    row = dict(
        id=req_id,
        tenant_id=tenant_id,
        title=f"Requirement {number + 1}: RBI circular {rng.randrange(1, 200)}",
        status=_messy(rng, rng.choices(REQ_STATUSES, REQ_WEIGHTS)[0], MESSY_REQ_STATUSES),
        created_at=created.astimezone(UTC),
    )
    demo.log_change(tenant_id, "compliance_requirement", req_id, "INSERT", None, _image(row), created)
    life = [(created, "created", req_id, row["status"])]
    for at in sorted(_instant(rng, created, HISTORY_END) for _ in range(rng.choice([0, 0, 1, 2, 3]))):
        old = dict(row)
        row["status"] = _messy(rng, rng.choices(REQ_STATUSES, REQ_WEIGHTS)[0], MESSY_REQ_STATUSES)
        if row["status"] == old["status"]:
            continue
        life.append((at, "status", req_id, row["status"]))
        if rng.random() < 0.5:
            demo.log_change(tenant_id, "compliance_requirement", req_id, "UPDATE", {"status": old["status"]}, {"status": row["status"]}, at)
        else:
            demo.log_change(tenant_id, "compliance_requirement", req_id, "UPDATE", _image(old), _image(row), at)
    if rng.random() < 0.005:
        demo.log_change(tenant_id, "compliance_requirement", req_id, "DELETE", _image(row), None, _instant(rng, created, HISTORY_END))
        return
    demo.requirements.append(row)
    demo.record_events(tenant_id, *life)


# --- the old cron job -----------------------------------------------------------------------------

OLD_JOB_START = dt.date(2025, 1, 15)  # its first run, at about 01:00 IST that night
OLD_JOB_NIGHTS_FAILED = 0.025  # no row at all
OLD_JOB_NIGHTS_CRASHED = 0.015  # rows for the first tenants only
OLD_JOB_NIGHTS_LATE = 0.02  # started between 03:00 and 07:00
OLD_JOB_NIGHTS_RERUN = 0.02  # run again by hand between 09:00 and 12:00, every tenant again
OLD_JOB_WRONG_ROWS = 0.002  # a number off, which nothing in the log explains
OLD_JOB_SECONDS_PER_TENANT = 2


def old_job_rows(demo: Demo, rng: random.Random) -> list[dict]:
    """The old job's "DashboardSnapshot" rows: at each run, for each tenant onboarded then, the
    dashboard's metrics at that moment.

    The moment's metrics follow the contract's rules with T = capturedAt over the records as they
    happened (`demo.events`): the old job read the live tables, which the contract reconstructs from
    the log. Records deleted later are left out, as the contract leaves them out: the real old job
    saw them while they existed (see the README's cutover guide).
    """
    runs = []  # (start, how many tenants it got through, or None for all)
    night = OLD_JOB_START
    last_night = HISTORY_END.date() + dt.timedelta(days=1)
    while night <= last_night:
        roll = rng.random()
        one_am = dt.datetime.combine(night, dt.time(1), tzinfo=IST)
        start = one_am + dt.timedelta(seconds=rng.randrange(-180, 720))
        if roll < OLD_JOB_NIGHTS_FAILED:
            pass
        elif roll < OLD_JOB_NIGHTS_FAILED + OLD_JOB_NIGHTS_CRASHED:
            runs.append((start, rng.randrange(1, 30)))
        else:
            if roll < OLD_JOB_NIGHTS_FAILED + OLD_JOB_NIGHTS_CRASHED + OLD_JOB_NIGHTS_LATE:
                start = one_am + dt.timedelta(hours=rng.randrange(2, 6), seconds=rng.randrange(3600))
            runs.append((start, None))
        if rng.random() < OLD_JOB_NIGHTS_RERUN:
            runs.append((one_am + dt.timedelta(hours=rng.randrange(8, 11), seconds=rng.randrange(3600)), None))
        night += dt.timedelta(days=1)

    onboarded = sorted((t for t in demo.tenants if t["onboarding_completed"]), key=lambda t: t["id"])
    captures: dict[str, list[dt.datetime]] = {}
    for start, limit in runs:
        present = [t for t in onboarded if t["created_at"] < start]
        for position, tenant in enumerate(present[:limit]):  # one tenant after the other
            captured = start + dt.timedelta(seconds=OLD_JOB_SECONDS_PER_TENANT * position)
            captures.setdefault(tenant["id"], []).append(captured)

    rows = []
    for tenant_id in sorted(captures):
        for captured, metrics in zip(captures[tenant_id], _metrics_at(demo.events.get(tenant_id, []), captures[tenant_id])):
            if rng.random() < OLD_JOB_WRONG_ROWS:
                metrics["severity"]["highOpen"] += 1
                metrics["severity"]["total"] += 1
            rows.append(dict(id=f"cm{len(rows) + 1:08d}", tenantId=tenant_id, capturedAt=captured.astimezone(UTC), metrics=metrics))
    return rows


def _metrics_at(events: list[tuple], instants: list[dt.datetime]) -> list[dict]:
    """The dashboard's metrics at each of `instants` (ascending): every event before it applied.
    Counts are kept up to date event by event, so each instant costs the same whatever the tenant's size."""
    severity_of_open: dict[str, str | None] = {}  # open observation -> its normalized severity
    status_of: dict[str, str | None] = {}  # requirement -> its normalized status
    open_by_severity: Counter = Counter()
    requirements_by_status: Counter = Counter()
    ordered = sorted(events, key=lambda e: (e[0], EVENT_ORDER[e[1]]))
    out, next_event = [], 0
    for instant in instants:
        while next_event < len(ordered) and ordered[next_event][0] < instant:
            _, kind, record, value = ordered[next_event]
            next_event += 1
            if kind == "opened" or (kind == "severity" and record in severity_of_open):
                if record in severity_of_open:
                    open_by_severity[severity_of_open[record]] -= 1
                severity_of_open[record] = _normalized(value)
                open_by_severity[severity_of_open[record]] += 1
            elif kind == "closed" and record in severity_of_open:
                open_by_severity[severity_of_open.pop(record)] -= 1
            elif kind in ("created", "status"):
                if record in status_of:
                    requirements_by_status[status_of[record]] -= 1
                status_of[record] = _normalized(value)
                requirements_by_status[status_of[record]] += 1
        out.append(_dashboard_metrics(open_by_severity, len(severity_of_open), requirements_by_status, len(status_of)))
    return out


EVENT_ORDER = {"opened": 0, "created": 0, "severity": 1, "status": 1, "closed": 2}


def _normalized(value: str | None) -> str | None:
    return None if value is None else value.strip(" \t\r\n").upper()


def _dashboard_metrics(open_by_severity: Counter, open_total: int, requirements_by_status: Counter, requirements: int) -> dict:
    """The contract's metrics from the open observations by severity and the requirements by status."""
    critical, high, medium, low = (open_by_severity[s] for s in SEVERITIES)
    total = requirements - requirements_by_status["NOT_APPLICABLE"]
    compliant = requirements_by_status["COMPLIANT"]
    percentage = _half_up(Decimal(100 * compliant) / total, 2) if total else None
    severity_score = max(0, 100 - (10 * critical + 5 * high + 2 * medium + low))
    health = _half_up((Decimal(100) if percentage is None else percentage) / 2 + Decimal(severity_score) / 2, 1)
    return {
        "healthScore": float(health),
        "compliance": {"total": total, "compliant": compliant, "percentage": None if percentage is None else float(percentage)},
        "severity": {"total": open_total, "criticalOpen": critical, "highOpen": high, "mediumOpen": medium, "lowOpen": low},
    }


def _half_up(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


# --- writing ---------------------------------------------------------------------------------------

BATCH = 20_000


def write(engine: Engine, demo: Demo) -> None:
    """Create the source tables and the old job's (they must not exist yet) and insert the demo, in
    one transaction."""
    tables.source_metadata.create_all(engine)
    tables.legacy_metadata.create_all(engine)
    content = (
        (tables.tenant, demo.tenants),
        (tables.audit_engagement, demo.engagements),
        (tables.observation, demo.observations),
        (tables.compliance_requirement, demo.requirements),
        (tables.audit_log, demo.log),
        (tables.legacy_dashboard_snapshot, demo.legacy),
    )
    with engine.begin() as conn:
        for table, rows in content:
            if engine.dialect.name == "postgresql":
                _copy(conn, table, rows)  # COPY: a million log rows in seconds
            else:
                for i in range(0, len(rows), BATCH):
                    conn.execute(insert(table), rows[i : i + BATCH])
        live = {row["id"] for row in demo.observations}
        links = [{"obs": o, "parent": p} for o, p in demo.repeat_links if o in live and p in live]
        if links:
            conn.execute(
                update(tables.observation)
                .where(tables.observation.c.id == bindparam("obs"))
                .values(repeat_of_id=bindparam("parent")),
                links,
            )


def _copy(conn, table, rows: list[dict]) -> None:
    if not rows:
        return
    columns = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    quote = conn.dialect.identifier_preparer.quote  # "DashboardSnapshot", "tenantId": mixed case
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns]
            )


def create_demo_database(path: Path, scale: int = 1) -> None:
    """Write a SQLite demo database at `path`, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".demo-", suffix=".sqlite", dir=path.parent)
    os.close(fd)
    try:
        engine = create_database_engine(URL.create("sqlite", database=tmp))
        write(engine, generate(scale))
        engine.dispose()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
