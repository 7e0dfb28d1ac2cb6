"""A plainly written, slow, pure-Python reading of the data contract, for differential tests.

It shares no code with the pipeline's SQL: it walks records and log rows day by day, exactly as the
contract's sentences say. Numbers are Decimals rounded half up, as SQL's numeric rounding does.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Text, cast, inspect, select

from audit_pipeline import tables

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
MISSING = object()


@dataclass
class Source:
    tenants: list[dict]
    engagements: list[dict]
    observations: list[dict]
    requirements: list[dict]
    log: list[dict]


def _aware(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _json(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return MISSING  # invalid JSON: not an object, no fields


def load_source(engine: Engine) -> Source:
    with engine.connect() as conn:
        def rows(table, *instants):
            out = [dict(r._mapping) for r in conn.execute(select(table))]
            for r in out:
                for column in instants:
                    r[column] = _aware(r[column])
            return out

        log_columns = [c for c in tables.audit_log.c if c.name not in ("old_data", "new_data")]
        log = []
        for r in conn.execute(
            select(
                *log_columns,
                cast(tables.audit_log.c.old_data, Text).label("old_data"),
                cast(tables.audit_log.c.new_data, Text).label("new_data"),
            )
        ):
            row = dict(r._mapping)
            row["changed_at"] = _aware(row["changed_at"])
            row["old_data"], row["new_data"] = _json(row["old_data"]), _json(row["new_data"])
            log.append(row)
        return Source(
            tenants=rows(tables.tenant, "created_at"),
            engagements=rows(tables.audit_engagement),
            observations=rows(tables.observation, "created_at", "closed_at"),
            requirements=rows(tables.compliance_requirement, "created_at"),
            log=log,
        )


def load_legacy(engine: Engine) -> list[dict]:
    """The old job's "DashboardSnapshot" rows (none when the table does not exist), metrics parsed
    here (invalid JSON: MISSING), instants aware."""
    if not inspect(engine).has_table(tables.legacy_dashboard_snapshot.name):
        return []
    t = tables.legacy_dashboard_snapshot
    with engine.connect() as conn:
        return [
            dict(id=r.id, tenantId=r.tenantId, capturedAt=_aware(r.capturedAt), metrics=_json(r.metrics))
            for r in conn.execute(select(t.c.id, t.c.tenantId, t.c.capturedAt, cast(t.c.metrics, Text).label("metrics")))
        ]


LEGACY_METRICS = {
    "healthScore": ("healthScore",),
    "compliance.total": ("compliance", "total"),
    "compliance.compliant": ("compliance", "compliant"),
    "compliance.percentage": ("compliance", "percentage"),
    "severity.total": ("severity", "total"),
    "severity.criticalOpen": ("severity", "criticalOpen"),
    "severity.highOpen": ("severity", "highOpen"),
    "severity.mediumOpen": ("severity", "mediumOpen"),
    "severity.lowOpen": ("severity", "lowOpen"),
}


def json_number(document, path):
    """The number at `path` in a parsed JSON document, as a Decimal; None when there is none (a
    missing key, JSON null, a string, a boolean: JSON's true is no number, though Python's is)."""
    value = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return Decimal(str(value))


def norm(value):
    if value is None:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    return str(value).strip(" \t\r\n").upper()


def half_up(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def day_end(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)


class Reference:
    def __init__(self, source: Source, tz: str = "Asia/Kolkata", fiscal_start_month: int = 4,
                 first_day: dt.date = dt.date(2024, 4, 1)):
        self.s = source
        self.first_day = first_day  # no snapshot exists before the first partition
        self.tz = ZoneInfo(tz)
        self.fiscal_start_month = fiscal_start_month
        self.log_by_record: dict[tuple[str, str], list[dict]] = {}
        for row in sorted(
            (r for r in source.log if r["changed_at"] is not None), key=lambda r: (r["changed_at"], r["id"])
        ):
            self.log_by_record.setdefault((row["table_name"], row["record_id"]), []).append(row)

    def value_as_of(self, table: str, record: dict, field: str, T: dt.datetime):
        rows = self.log_by_record.get((table, record["id"]), [])
        found = MISSING
        for r in rows:
            if r["changed_at"] < T and isinstance(r["new_data"], dict) and field in r["new_data"]:
                found = r["new_data"][field]
        if found is not MISSING:
            return found
        for r in rows:
            if r["changed_at"] >= T and isinstance(r["old_data"], dict) and field in r["old_data"]:
                return r["old_data"][field]
        return record[field]

    def tenants_of(self, day: dt.date) -> list[str]:
        T = day_end(day, self.tz)
        return [
            t["id"]
            for t in self.s.tenants
            if t["onboarding_completed"] is True and t["created_at"] is not None and t["created_at"] < T
        ]

    def severity(self, day: dt.date) -> dict[str, dict]:
        T = day_end(day, self.tz)
        out = {t: dict(critical_open=0, high_open=0, medium_open=0, low_open=0, open_total=0) for t in self.tenants_of(day)}
        for o in self.s.observations:
            if o["tenant_id"] not in out or o["created_at"] is None:
                continue
            if o["created_at"] < T and (o["closed_at"] is None or o["closed_at"] >= T):
                counts = out[o["tenant_id"]]
                counts["open_total"] += 1
                severity = norm(self.value_as_of("observation", o, "severity", T))
                if severity in SEVERITIES:
                    counts[f"{severity.lower()}_open"] += 1
        return out

    def compliance(self, day: dt.date) -> dict[str, dict]:
        T = day_end(day, self.tz)
        out = {t: dict(total=0, compliant=0, percentage=None) for t in self.tenants_of(day)}
        for r in self.s.requirements:
            if r["tenant_id"] not in out or r["created_at"] is None or not r["created_at"] < T:
                continue
            status = norm(self.value_as_of("compliance_requirement", r, "status", T))
            if status != "NOT_APPLICABLE":
                out[r["tenant_id"]]["total"] += 1
            if status == "COMPLIANT":
                out[r["tenant_id"]]["compliant"] += 1
        for counts in out.values():
            if counts["total"]:
                counts["percentage"] = half_up(Decimal(100) * counts["compliant"] / counts["total"], 2)
        return out

    def health(self, day: dt.date) -> dict[str, dict]:
        severity, compliance = self.severity(day), self.compliance(day)
        out = {}
        for tenant, s in severity.items():
            severity_score = max(0, 100 - (10 * s["critical_open"] + 5 * s["high_open"] + 2 * s["medium_open"] + s["low_open"]))
            percentage = compliance[tenant]["percentage"]
            compliance_score = Decimal(100) if percentage is None else percentage
            out[tenant] = dict(
                severity_score=Decimal(severity_score),
                compliance_score=compliance_score,
                health_score=half_up(Decimal("0.5") * compliance_score + Decimal("0.5") * severity_score, 1),
            )
        return out

    def dashboard(self, day: dt.date) -> dict[str, dict]:
        severity, compliance, health = self.severity(day), self.compliance(day), self.health(day)
        return {
            tenant: dict(
                captured_at=day_end(day, self.tz),
                metrics={
                    "healthScore": health[tenant]["health_score"],
                    "compliance": {
                        "total": compliance[tenant]["total"],
                        "compliant": compliance[tenant]["compliant"],
                        "percentage": compliance[tenant]["percentage"],
                    },
                    "severity": {
                        "total": s["open_total"],
                        "criticalOpen": s["critical_open"],
                        "highOpen": s["high_open"],
                        "mediumOpen": s["medium_open"],
                        "lowOpen": s["low_open"],
                    },
                },
            )
            for tenant, s in severity.items()
        }

    def compliance_trend(self, day: dt.date) -> dict[str, dict]:
        window = {d: self.compliance(day - dt.timedelta(days=d)) for d in range(7)
                  if day - dt.timedelta(days=d) >= self.first_day}
        out = {}
        for tenant, today in window[0].items():
            previous = window.get(1, {}).get(tenant)
            change = None
            if previous and today["percentage"] is not None and previous["percentage"] is not None:
                change = today["percentage"] - previous["percentage"]
            values = [w[tenant]["percentage"] for w in window.values() if tenant in w and w[tenant]["percentage"] is not None]
            out[tenant] = dict(
                compliance_percentage=today["percentage"],
                change_1d=change,
                rolling_7d_avg=half_up(sum(values) / len(values), 2) if values else None,
            )
        return out

    def places(self, day: dt.date) -> dict[tuple[str, str], tuple[str, object]]:
        """Every record's place on `day`, for the tenants of that day's snapshot: (record table, id) ->
        (tenant, normalized value, maybe None). A record without a place is absent."""
        T = day_end(day, self.tz)
        tenants = set(self.tenants_of(day))
        out = {}
        for o in self.s.observations:
            if o["tenant_id"] in tenants and o["created_at"] is not None and o["created_at"] < T and (
                o["closed_at"] is None or o["closed_at"] >= T
            ):
                out[("observation", o["id"])] = (o["tenant_id"], norm(self.value_as_of("observation", o, "severity", T)))
        for r in self.s.requirements:
            if r["tenant_id"] in tenants and r["created_at"] is not None and r["created_at"] < T:
                out[("compliance_requirement", r["id"])] = (
                    r["tenant_id"], norm(self.value_as_of("compliance_requirement", r, "status", T)))
        return out

    CHANGES = {
        "observation": {(False, True): "opened", (True, False): "closed", (True, True): "severity_changed"},
        "compliance_requirement": {(False, True): "added", (True, False): "removed", (True, True): "status_changed"},
    }

    def snapshot_change(self, day: dt.date) -> dict[tuple[str, str, str], dict]:
        """The records whose place on `day` differs from the day before's (no place on the day before
        for a tenant that was not in its snapshot): (tenant, record table, id) -> change and values."""
        before, after = self.places(day - dt.timedelta(days=1)), self.places(day)
        tenants = set(self.tenants_of(day))
        out = {}
        for key in before.keys() | after.keys():
            tenant = (after.get(key) or before[key])[0]
            if tenant not in tenants or (key in before and key in after and before[key] == after[key]):
                continue
            out[(tenant, *key)] = dict(
                change=self.CHANGES[key[0]][(key in before, key in after)],
                value_before=before[key][1] if key in before else None,
                value_after=after[key][1] if key in after else None,
            )
        return out

    def repeat_findings(self) -> dict[str, dict]:
        observations = {o["id"]: o for o in self.s.observations}
        onboarded = {t["id"] for t in self.s.tenants if t["onboarding_completed"] is True}
        out = {}
        for o in self.s.observations:
            parent = observations.get(o["repeat_of_id"]) if o["repeat_of_id"] is not None else None
            if o["tenant_id"] not in onboarded or parent is None or parent["tenant_id"] != o["tenant_id"]:
                continue
            chain, seen = [o], {o["id"]}
            while True:
                nxt = observations.get(chain[-1]["repeat_of_id"]) if chain[-1]["repeat_of_id"] is not None else None
                if nxt is None or nxt["tenant_id"] != o["tenant_id"] or nxt["id"] in seen:
                    break
                chain.append(nxt)
                seen.add(nxt["id"])
            original = chain[-1]
            out[o["id"]] = dict(
                tenant_id=o["tenant_id"],
                title=o["title"],
                status=o["status"],
                current_severity=norm(o["severity"]),
                previous_severity=norm(parent["severity"]),
                original_observation_id=original["id"],
                original_date=original["created_at"].astimezone(self.tz).date() if original["created_at"] else None,
                occurrence_count=len(chain),
            )
        return out

    def engagement_progress(self) -> dict[str, dict]:
        onboarded = {t["id"] for t in self.s.tenants if t["onboarding_completed"] is True}
        out = {}
        for e in self.s.engagements:
            if e["tenant_id"] not in onboarded:
                continue
            mine = [o for o in self.s.observations if o["engagement_id"] == e["id"] and o["tenant_id"] == e["tenant_id"]]
            out[e["id"]] = dict(
                tenant_id=e["tenant_id"],
                engagement_name=e["name"],
                engagement_status=e["status"],
                observation_count=len(mine),
                open_count=sum(1 for o in mine if o["closed_at"] is None),
                closed_count=sum(1 for o in mine if o["closed_at"] is not None),
            )
        return out


    # --- the old cron job, compared ------------------------------------------------------------------

    def described_day(self, captured_at: dt.datetime) -> dt.date:
        """The day D with T(D) <= capturedAt < T(D+1)."""
        candidate = captured_at.astimezone(self.tz).date() - dt.timedelta(days=1)
        assert day_end(candidate, self.tz) <= captured_at < day_end(candidate + dt.timedelta(days=1), self.tz)
        return candidate

    def legacy_snapshot_diff(self, legacy: list[dict], first: dt.date, last: dt.date,
                             pipeline: dict[tuple[str, dt.date], dict] | None = None) -> dict:
        """{(tenant, day, metric): (captured_at, legacy_value, pipeline_value, log_rows_between)} for the
        days first..last. `pipeline` maps (tenant, day) to dashboard metrics; by default this
        reference's own dashboard."""
        if pipeline is None:
            pipeline = {}
            day = first
            while day <= last:
                pipeline.update({(tenant, day): r["metrics"] for tenant, r in self.dashboard(day).items()})
                day += dt.timedelta(days=1)
        earliest: dict[tuple[str, dt.date], dict] = {}
        for row in legacy:
            if row["tenantId"] is None or row["capturedAt"] is None:
                continue
            key = (row["tenantId"], self.described_day(row["capturedAt"]))
            if not first <= key[1] <= last:
                continue
            order = (row["capturedAt"], str(row["id"]))  # later ones are re-runs; ties by id
            if key not in earliest or order < (earliest[key]["capturedAt"], str(earliest[key]["id"])):
                earliest[key] = row
        log_times: dict[str, list[dt.datetime]] = {}
        for r in self.s.log:
            if r["tenant_id"] is not None and r["changed_at"] is not None:
                log_times.setdefault(r["tenant_id"], []).append(r["changed_at"])
        for times in log_times.values():
            times.sort()
        out = {}
        for (tenant, day), row in earliest.items():
            times = log_times.get(tenant, [])
            # T(D) <= changed_at < capturedAt
            between = bisect.bisect_left(times, row["capturedAt"]) - bisect.bisect_left(times, day_end(day, self.tz))
            theirs = pipeline.get((tenant, day))
            for metric, path in LEGACY_METRICS.items():
                legacy_value = json_number(row["metrics"], path)
                pipeline_value = None if theirs is None else json_number(theirs, path)
                if legacy_value != pipeline_value:  # None equals None; Decimal("50.0") equals Decimal(50)
                    out[(tenant, day, metric)] = (row["capturedAt"], legacy_value, pipeline_value, between)
        return out


HISTORY_TABLES = {
    # history table: (source table, field, id column, value column)
    "observation_history": ("observation", "severity", "observation_id", "severity"),
    "requirement_history": ("compliance_requirement", "status", "requirement_id", "status"),
}


def history(ref: Reference, table: str, first: dt.date, last: dt.date) -> dict[tuple, dict]:
    """The contract's record history, read off day by day over first..last: every record's place on
    each day, grouped into maximal runs. Valid when nothing changes before `first` or after `last`
    (a run still going on `last` never ends; one going on `first` started there)."""
    source, field, id_column, value_column = HISTORY_TABLES[table]
    records = ref.s.observations if source == "observation" else ref.s.requirements
    out = {}
    for record in records:
        if record["created_at"] is None:
            continue
        run = None
        day = first
        while day <= last:
            T = day_end(day, ref.tz)
            has_place = record["created_at"] < T and (
                source != "observation" or record["closed_at"] is None or record["closed_at"] >= T
            )
            place = norm(ref.value_as_of(source, record, field, T)) if has_place else MISSING
            if run is not None and (place is MISSING or place != run[value_column]):
                run["valid_to"] = day
                run = None
            if place is not MISSING and run is None:
                run = {"tenant_id": record["tenant_id"], value_column: place, "valid_to": None}
                out[(record["id"], day)] = run
            day += dt.timedelta(days=1)
    return out
