"""snapshot_change on hand-built histories, on SQLite and PostgreSQL (both URL forms).

Expected rows are worked out in the comments. T(D) is 00:00 IST of D+1; a record's place on D is the
record history's: an observation open at T(D), with its severity as of T(D); a requirement from its
creation on, with its status as of T(D). Every test also holds the snapshots of its days to the
contract's identity (D's counts = D-1's + the day's changes).
"""

import datetime as dt
import re
from pathlib import Path

import dagster as dg
from sqlalchemy import text

from audit_pipeline.assets import changes as change_assets
from audit_pipeline.assets import daily
from audit_pipeline.output_checks import change_identity_problems
from audit_pipeline.definitions import defs
from audit_pipeline.history import update_record_history
from audit_pipeline.partitions import daily_partitions
from audit_pipeline.resources import DatabaseResource, create_database_engine
from audit_pipeline.calendar import local_date, parse_day, parse_instant
from audit_pipeline.settings import parse_database_url
from audit_pipeline.sql import changes as change_sql

from .builder import IST, SourceBuilder, all_rows, change_rows, count, ist, number, warehouse

RANGE = (dt.date(2024, 6, 1), dt.date(2024, 6, 20))
OBS, REQ = "observation", "compliance_requirement"
QUERIES = Path(__file__).resolve().parents[1] / "docs" / "cutover.md"


def day(n: int, month: int = 6) -> dt.date:
    return dt.date(2024, month, n)


def written(engine, first=RANGE[0], last=RANGE[1], w=None) -> dict:
    """Write the days' snapshot_change (and the snapshots it explains); its rows as
    (day, tenant, table, record) -> (change, before, after)."""
    w = w or warehouse(engine)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.snapshot_change):
        write(first, last)
    assert change_identity_problems(w, (first, last)) == []
    return {key: (row["change"], row["value_before"], row["value_after"]) for key, row in change_rows(engine).items()}


def test_opened_and_closed_the_same_day_is_no_change(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("brief", created="2024-06-10 09:00:00", closed="2024-06-10 18:00:00")  # open at no T(D)
    src.observation("backwards", created="2024-06-10 09:00:00", closed="2024-06-09 18:00:00")  # never open
    assert written(engine) == {}


def test_closed_exactly_at_midnight_closes_on_the_day_that_begins(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("at-midnight", created="2024-06-01 09:00:00", closed="2024-06-11 00:00:00")  # closed_at >= T(06-10): open on 06-10
    src.observation("before-midnight", created="2024-06-01 09:00:00", closed="2024-06-10 23:59:59")
    src.observation("created-at-midnight", created="2024-06-11 00:00:00")  # created_at < T(06-10) fails
    assert written(engine) == {
        (day(1), "t1", OBS, "at-midnight"): ("opened", None, "HIGH"),
        (day(1), "t1", OBS, "before-midnight"): ("opened", None, "HIGH"),
        (day(10), "t1", OBS, "before-midnight"): ("closed", "HIGH", None),
        (day(11), "t1", OBS, "at-midnight"): ("closed", "HIGH", None),
        (day(11), "t1", OBS, "created-at-midnight"): ("opened", None, "HIGH"),
    }


def test_a_severity_change_and_back_the_same_day_is_no_change(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("and-back", severity="LOW", created="2024-05-01 10:00:00")
    src.log(OBS, "and-back", "2024-06-10 09:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.log(OBS, "and-back", "2024-06-10 18:00:00", old={"severity": "HIGH"}, new={"severity": " low"})
    # HIGH from 06-12 (23:59:59 is before T(06-12)) to 06-13 (the change at exactly T(06-13) is not before it)
    src.observation("two-days", severity="LOW", created="2024-05-01 10:00:00")
    src.log(OBS, "two-days", "2024-06-12 23:59:59", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.log(OBS, "two-days", "2024-06-14 00:00:00", old={"severity": "HIGH"}, new={"severity": "LOW"})
    assert written(engine) == {
        (day(12), "t1", OBS, "two-days"): ("severity_changed", "LOW", "HIGH"),
        (day(14), "t1", OBS, "two-days"): ("severity_changed", "HIGH", "LOW"),
    }


def test_unknown_and_null_severities_are_places(engine):
    src = SourceBuilder(engine)
    src.tenant()
    # INFO (unknown: open_total only) becomes HIGH on 06-10
    src.observation("info", severity="HIGH", created="2024-05-01 10:00:00")
    src.log(OBS, "info", "2024-06-10 10:00:00", old={"severity": "info "}, new={"severity": " high"})
    # A severity never set (JSON null) becomes MEDIUM on 06-11: it changed, it did not open
    src.observation("unset", severity="MEDIUM", created="2024-05-01 10:00:00")
    src.log(OBS, "unset", "2024-06-11 10:00:00", old={"severity": None}, new={"severity": "medium"})
    # Opened (06-12) and closed (06-13) with a null severity: rows, told apart by `change`
    src.observation("never-set", severity=None, created="2024-06-12 10:00:00")
    src.observation("closed-unset", severity=None, created="2024-05-01 10:00:00", closed="2024-06-13 10:00:00")
    assert written(engine) == {
        (day(10), "t1", OBS, "info"): ("severity_changed", "INFO", "HIGH"),
        (day(11), "t1", OBS, "unset"): ("severity_changed", None, "MEDIUM"),
        (day(12), "t1", OBS, "never-set"): ("opened", None, None),
        (day(13), "t1", OBS, "closed-unset"): ("closed", None, None),
    }


def test_a_requirement_created_the_day_its_status_changes_is_added_with_the_days_status(engine):
    src = SourceBuilder(engine)
    src.tenant()
    # Created NON_COMPLIANT at 09:00, COMPLIANT at 15:00: its place on 06-10 (at T) is COMPLIANT, none on 06-09
    src.requirement("same-day", status="COMPLIANT", created="2024-06-10 09:00:00")
    src.log(REQ, "same-day", "2024-06-10 09:00:00", action="INSERT", new={"id": "same-day", "status": "NON_COMPLIANT"})
    src.log(REQ, "same-day", "2024-06-10 15:00:00", old={"status": "NON_COMPLIANT"}, new={"status": "COMPLIANT"})
    src.requirement("next-day", status="COMPLIANT", created="2024-06-10 09:00:00")
    src.log(REQ, "next-day", "2024-06-10 09:00:00", action="INSERT", new={"id": "next-day", "status": "NON_COMPLIANT"})
    src.log(REQ, "next-day", "2024-06-11 15:00:00", old={"status": "NON_COMPLIANT"}, new={"status": "COMPLIANT"})
    # Before the trigger: an unknown status (in total) becomes NOT_APPLICABLE (out of total) on 06-12
    src.requirement("old", status="not_applicable", created="2024-01-01 10:00:00")
    src.log(REQ, "old", "2024-06-12 10:00:00", old={"status": "Pending"}, new={"status": "not_applicable"})
    assert written(engine) == {
        (day(10), "t1", REQ, "same-day"): ("added", None, "COMPLIANT"),
        (day(10), "t1", REQ, "next-day"): ("added", None, "NON_COMPLIANT"),
        (day(11), "t1", REQ, "next-day"): ("status_changed", "NON_COMPLIANT", "COMPLIANT"),
        (day(12), "t1", REQ, "old"): ("status_changed", "PENDING", "NOT_APPLICABLE"),
    }


def test_a_tenant_entering_the_snapshots_brings_every_record_with_a_place(engine):
    src = SourceBuilder(engine)
    src.tenant("old")
    src.tenant("new", created="2024-06-10 12:00:00")  # in the snapshots from 06-10 on
    src.tenant("waiting", onboarded=False)  # never in them
    src.observation("steady", tenant="old", created="2024-05-01 10:00:00")  # no change at all
    # Open since May, CRITICAL since 06-05: before its tenant entered, so only its place on 06-10 shows
    src.observation("n-open", tenant="new", severity="LOW", created="2024-05-01 10:00:00")
    src.log(OBS, "n-open", "2024-06-05 10:00:00", tenant="new", old={"severity": "LOW"}, new={"severity": "CRITICAL"})
    # Closed on 06-10 before T: no place on 06-10, and none on 06-09 (its tenant was not in): no row
    src.observation("n-gone", tenant="new", created="2024-05-01 10:00:00", closed="2024-06-10 08:00:00")
    src.observation("n-later", tenant="new", severity="MEDIUM", created="2024-06-12 10:00:00")
    src.requirement("n-req", tenant="new", status="NOT_APPLICABLE", created="2024-05-01 10:00:00")  # a place too
    src.observation("w-open", tenant="waiting", created="2024-05-01 10:00:00")
    src.log(OBS, "w-open", "2024-06-11 10:00:00", tenant="waiting", old={"severity": "HIGH"}, new={"severity": "LOW"})
    assert written(engine) == {
        (day(10), "new", OBS, "n-open"): ("opened", None, "CRITICAL"),
        (day(10), "new", REQ, "n-req"): ("added", None, "NOT_APPLICABLE"),
        (day(12), "new", OBS, "n-later"): ("opened", None, "MEDIUM"),
    }


def test_the_first_partition_is_compared_with_the_day_before_by_the_rules(engine, db_url):
    assert daily_partitions.get_first_partition_key() == "2024-04-01"
    first = day(1, month=4)
    src = SourceBuilder(engine)
    src.tenant("t1", created="2024-03-01 10:00:00")  # in the snapshot of 03-31, though no partition holds it
    src.tenant("t-first", created="2024-04-01 10:00:00")  # enters on the first partition
    src.observation("steady", created="2024-03-20 10:00:00")  # the same place on 03-31 and 04-01: no row
    src.observation("eve", created="2024-03-31 23:59:59")  # opened on 03-31: no row
    src.observation("first", created="2024-04-01 00:00:00")  # opened on 04-01
    src.observation("closed-at-T", created="2024-03-20 10:00:00", closed="2024-04-01 00:00:00")  # closed on 04-01
    src.observation("changed", severity="HIGH", created="2024-03-20 10:00:00")
    src.log(OBS, "changed", "2024-04-01 10:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.requirement("r-first", tenant="t-first", created="2024-02-01 10:00:00")  # added: its tenant enters
    expected = {
        (first, "t1", OBS, "first"): ("opened", None, "HIGH"),
        (first, "t1", OBS, "closed-at-T"): ("closed", "HIGH", None),
        (first, "t1", OBS, "changed"): ("severity_changed", "LOW", "HIGH"),
        (first, "t-first", REQ, "r-first"): ("added", None, "COMPLIANT"),
    }
    assert written(engine, first, first) == expected
    # The first partition alone through Dagster, its check included: the same rows.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM snapshot_change"))
    result = dg.materialize(
        [daily.daily_tables], resources={"database": DatabaseResource(url=db_url)}, partition_key="2024-04-01",
        selection=dg.AssetSelection.assets("observation_history", "requirement_history", "severity_snapshot",
                                           "compliance_snapshot", "health_snapshot", "snapshot_change").without_checks()
        | dg.AssetSelection.checks(change_identity_key()),
    )
    assert [e.passed for e in result.get_asset_check_evaluations() if e.asset_check_key == change_identity_key()] == [True]
    assert {k: (r["change"], r["value_before"], r["value_after"]) for k, r in change_rows(engine).items()} == expected


def change_identity_key() -> dg.AssetCheckKey:
    return dg.AssetCheckKey(change_assets.snapshot_change.key, "counts_follow_from_changes")


def test_a_correction_changes_a_past_days_changes_and_a_rerun_replaces_them(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="HIGH", created="2024-06-02 10:00:00", closed="2024-06-12 10:00:00")
    w = warehouse(engine)
    assert written(engine, w=w) == {
        (day(2), "t1", OBS, "o1"): ("opened", None, "HIGH"),
        (day(12), "t1", OBS, "o1"): ("closed", "HIGH", None),
    }
    # Logged late: it was MEDIUM from 06-05 (a row committed after the nights that counted it) and,
    # corrected on 06-15, closed on 06-08. The sensor re-runs the days from 06-05 on.
    with engine.begin() as conn:
        conn.execute(text("UPDATE observation SET severity = 'MEDIUM', closed_at = :closed WHERE id = 'o1'"),
                     {"closed": ist("2024-06-08 10:00:00")})
    src.log(OBS, "o1", "2024-06-05 10:00:00", old={"severity": "HIGH"}, new={"severity": "MEDIUM"})
    src.log(OBS, "o1", "2024-06-15 10:00:00", old={"closed_at": "2024-06-12T04:30:00+00:00"},
            new={"closed_at": "2024-06-08T04:30:00+00:00"})
    assert update_record_history(w).mode == "update"
    assert written(engine, day(5), RANGE[1], w=w) == {
        (day(2), "t1", OBS, "o1"): ("opened", None, "HIGH"),  # before the re-run's days: kept
        (day(5), "t1", OBS, "o1"): ("severity_changed", "HIGH", "MEDIUM"),
        (day(8), "t1", OBS, "o1"): ("closed", "MEDIUM", None),  # and no longer on 06-12
    }
    assert count(engine, "snapshot_change") == 3


def test_a_run_reports_changes_by_kind_and_previews_the_largest_movements(engine, db_url):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.requirement("r1", created="2024-05-01 10:00:00")
    src.log(REQ, "r1", "2024-06-03 11:00:00", old={"status": "COMPLIANT"}, new={"status": "NON_COMPLIANT"})
    src.observation("kyc", severity="CRITICAL", created="2024-06-03 10:00:00", title="KYC gap | branch *12*")
    src.observation("cash", tenant="t2", severity="LOW", created="2024-06-04 10:00:00", title="Cash limit")
    result = defs.resolve_job_def("audit_history").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"database": DatabaseResource(url=db_url)},
        tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-05"},
    )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.asset_key == change_assets.snapshot_change.key)
    metadata = next(e for e in result.get_asset_materialization_events()
                    if e.asset_key == change_assets.snapshot_change.key).materialization.metadata
    assert {k: v.value for k, v in metadata.items() if k.startswith("changes_")} == {
        "changes_opened": 2, "changes_closed": 0, "changes_severity_changed": 0,
        "changes_added": 0, "changes_removed": 0, "changes_status_changed": 1,
    }
    preview = metadata["largest movements (first 10)"].value
    # t1 on 06-03: severity 100 -> 90 (a CRITICAL), compliance 100 -> 0: health 100.0 -> 45.0.
    # t2 on 06-04: severity 99 (a LOW), compliance null (100): health 100.0 -> 99.5.
    assert preview.split("\n") == [
        "**t1**, 2024-06-03: health 100.0 → 45.0 (-55.0), 2 changes",
        "",
        "- opened: finding kyc, “KYC gap \\| branch \\*12\\*”: CRITICAL",
        "- status changed: requirement r1, “Requirement r1”: COMPLIANT → NON\\_COMPLIANT",
        "",
        "**t2**, 2024-06-04: health 100.0 → 99.5 (-0.5), 1 change",
        "",
        "- opened: finding cash, “Cash limit”: LOW",
    ]


def readme_query() -> str:
    """The documented "what changed yesterday" query (docs/cutover.md), as the dashboard runs it."""
    blocks = re.findall(r"```sql\n(.*?)```", QUERIES.read_text(), re.S)
    (query,) = [b for b in blocks if "FROM health_snapshot h" in b]
    return query.strip().rstrip(";")


def test_the_documented_what_changed_yesterday_query(pg_databases):
    engine = create_database_engine(parse_database_url(pg_databases.create()))
    try:
        src = SourceBuilder(engine)
        src.tenant("t1")
        src.requirement("r1", created="2024-05-01 10:00:00")
        src.log(REQ, "r1", "2024-06-03 11:00:00", old={"status": "COMPLIANT"}, new={"status": "NON_COMPLIANT"})
        src.observation("kyc", severity="CRITICAL", created="2024-06-03 10:00:00", title="KYC gap")
        w = warehouse(engine)
        for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot,
                      w.writer.snapshot_change):
            write(day(1), day(5))
        with engine.connect() as conn:
            got = [tuple(r) for r in conn.execute(text(readme_query()), {"tenant_id": "t1", "day": day(3)})]
            quiet = [tuple(r) for r in conn.execute(text(readme_query()), {"tenant_id": "t1", "day": day(4)})]
    finally:
        engine.dispose()
    as_text = lambda rows: [tuple(None if v is None else str(v) for v in r) for r in rows]  # noqa: E731
    # health_before, health_after, movement, change, record_table, record_id, title, value_before, value_after
    assert as_text(got) == [
        ("100.0", "45.0", "-55.0", "opened", "observation", "kyc", "KYC gap", None, "CRITICAL"),
        ("100.0", "45.0", "-55.0", "status_changed", "compliance_requirement", "r1", "Requirement r1", "COMPLIANT", "NON_COMPLIANT"),
    ]
    assert as_text(quiet) == [("45.0", "45.0", "0.0", None, None, None, None, None, None)]  # no change: one row



# --- the largest movements: read off the largest health movements, or counted from every change ---


def expected_movements(engine, first: dt.date, last: dt.date) -> list[tuple]:
    """The preview's movements worked out in Python from the tables, by the contract's order: the
    tenant-days of the days with changes, both healths known first, then the size of the movement,
    the number of changes, the latest day, the tenant. As (tenant, day, before, after, entered, changes)."""
    health = {(r["tenant_id"], r["snapshot_date"]): r["health_score"] for r in all_rows(engine, "health_snapshot")}
    with engine.connect() as conn:
        first_days = {id_: local_date(parse_instant(created), IST)
                      for id_, created in conn.execute(text("SELECT id, created_at FROM tenant"))}
    changes: dict = {}
    for d, tenant, _, _ in change_rows(engine):
        if first <= d <= last:
            changes[(tenant, d)] = changes.get((tenant, d), 0) + 1
    ordered = []
    for (tenant, d), n in changes.items():
        before, after = health.get((tenant, d - dt.timedelta(days=1))), health.get((tenant, d))
        unknown = before is None or after is None
        key = (unknown, 0 if unknown else -abs(after - before), -n, -d.toordinal(), tenant)
        ordered.append((key, (tenant, d, before, after, int(first_days[tenant] == d), n)))
    return [movement for _, movement in sorted(ordered)[:10]]


def previewed_movements(w, first: dt.date, last: dt.date) -> list[tuple]:
    """largest_movements' tenant-days, in its order, as expected_movements has them."""
    bounds = {"range_start": w.dialect.day_param(first), "range_after": w.dialect.day_param(last + dt.timedelta(days=1))}
    sql = change_sql.largest_movements(w.dialect, w.tables.ref("snapshot_change"), w.tables.ref("health_snapshot"))
    found = {}
    for movement, tenant, d, before, after, entered, n, *_ in w.reader.find(sql, **bounds):
        found.setdefault(movement, (tenant, parse_day(d), number(before), number(after), int(entered), int(n)))
    return [found[m] for m in sorted(found)]


def test_the_largest_movements_read_off_the_largest_health_movements_are_those_of_every_change(engine, monkeypatch):
    src = SourceBuilder(engine)
    # Fourteen tenants, each with its own movement on its own day: k CRITICAL findings opened take
    # 5*k off the health score. A fifteenth enters on 06-05 (no health the day before), and t0
    # changes a LOW to a MEDIUM (-0.5) on every day: many small movements, and ties among them.
    for k in range(1, 15):
        src.tenant(f"t{k:02}")
        for i in range(k):
            src.observation(f"o{k}-{i}", tenant=f"t{k:02}", severity="CRITICAL", created=f"2024-06-{k % 9 + 2:02} 10:00:00")
    src.tenant("late", created="2024-06-05 09:00:00")
    src.observation("late-1", tenant="late", severity="CRITICAL", created="2024-05-20 10:00:00")
    src.tenant("t0")
    for n in range(1, 11):
        src.observation(f"small-{n}", tenant="t0", severity="LOW", created="2024-05-01 10:00:00")
        src.log(OBS, f"small-{n}", f"2024-06-{n:02} 11:00:00", tenant="t0", old={"severity": "LOW"}, new={"severity": "MEDIUM"})
    w = warehouse(engine)
    first, last = day(1), day(12)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot, w.writer.snapshot_change):
        write(first, last)
    expected = expected_movements(engine, first, last)
    assert [m[0] for m in expected[:3]] == ["t14", "t13", "t12"] and len(expected) == 10
    # Proven from the first ranked health movements (10 of 14 big ones, and the read stops before the
    # ties), or not (so few read that the ties reach the end, or all of them): the same movements.
    for read in (10, 12, 50, 1000):
        monkeypatch.setattr(change_sql, "MOVEMENTS_READ", read)
        assert previewed_movements(w, first, last) == expected, read
    # Short ranges: few tenant-days, ties at 0.5 and a tenant entering.
    for days in ((day(5), day(5)), (day(1), day(3)), (day(9), day(12))):
        assert previewed_movements(w, *days) == expected_movements(engine, *days), days
    # A health row that moved with no change (written before a correction, say) is no candidate,
    # however large its movement: read first, it must be passed over.
    with engine.begin() as conn:
        conn.execute(text("UPDATE health_snapshot SET health_score = 1 WHERE tenant_id = 't0' AND snapshot_date = :d"),
                     {"d": w.dialect.day_param(day(11))})
    expected = expected_movements(engine, first, last)
    assert all(m[0] != "t0" or m[1] not in (day(11), day(12)) for m in expected)
    for read in (10, 12, 50):
        monkeypatch.setattr(change_sql, "MOVEMENTS_READ", read)
        assert previewed_movements(w, first, last) == expected, read
