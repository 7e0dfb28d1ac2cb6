"""Each rule of the data contract on a small hand-built history, on SQLite and PostgreSQL (both URL
forms). Expected numbers are worked out by hand in the comments; T(D) is 00:00 IST of D+1."""

import datetime as dt
from decimal import Decimal

from .builder import SourceBuilder, count, rows, sqlite_engine, warehouse

D = dt.date(2024, 6, 10)  # T(D) = 2024-06-11 00:00 IST
RANGE = (dt.date(2024, 6, 1), dt.date(2024, 6, 20))


def snapshots(engine, *tables):
    w = warehouse(engine)
    writers = {
        "severity_snapshot": w.writer.severity_snapshot,
        "compliance_snapshot": w.writer.compliance_snapshot,
        "health_snapshot": w.writer.health_snapshot,
        "dashboard_snapshot": w.writer.dashboard_snapshot,
    }
    for name in tables or writers:
        writers[name](*RANGE)


def severity(engine, day):
    return rows(engine, "severity_snapshot", day)


def test_open_at_midnight_boundaries(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("created-at-T", created="2024-06-11 00:00:00")  # not open at T(06-10): created_at < T fails
    src.observation("created-just-before", created="2024-06-10 23:59:59")  # open at T(06-10)
    src.observation("closed-at-T", created="2024-06-01 09:00:00", closed="2024-06-11 00:00:00")  # closed_at >= T: open on 06-10
    src.observation("closed-just-before", created="2024-06-01 09:00:00", closed="2024-06-10 23:59:59")  # closed on 06-10
    snapshots(engine, "severity_snapshot")
    # 06-09: created-at-T no, created-just-before no (created after T(06-09)), both closed-* open -> 2
    assert severity(engine, dt.date(2024, 6, 9))["t1"]["open_total"] == 2
    # 06-10: created-just-before + closed-at-T -> 2
    assert severity(engine, D)["t1"]["high_open"] == 2
    # 06-11: created-at-T + created-just-before -> 2 (closed-at-T closed at T(06-10) < T(06-11))
    assert severity(engine, dt.date(2024, 6, 11))["t1"]["open_total"] == 2


def test_severity_as_of_from_new_data_before_T(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="LOW", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-01 10:00:00", action="INSERT", new={"id": "o1", "severity": "HIGH"})
    src.log("observation", "o1", "2024-06-12 10:00:00", old={"severity": "HIGH"}, new={"severity": "LOW"})
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"]["high_open"] == 1  # last new_data before T(06-10): HIGH
    assert severity(engine, dt.date(2024, 6, 11))["t1"]["high_open"] == 1  # 06-12 change is after T(06-11)
    assert severity(engine, dt.date(2024, 6, 12))["t1"]["low_open"] == 1


def test_severity_as_of_from_old_data_after_T_when_history_starts_later(engine):
    src = SourceBuilder(engine)
    src.tenant()
    # Created before the trigger existed: its first log row is a later update.
    src.observation("o1", severity="low", created="2024-05-01 10:00:00")
    src.log("observation", "o1", "2024-06-12 10:00:00", old={"severity": " critical"}, new={"severity": "low"})
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"]["critical_open"] == 1  # first old_data at/after T: ' critical'
    assert severity(engine, dt.date(2024, 6, 12))["t1"]["low_open"] == 1


def test_partial_images_only_count_rows_that_have_the_field(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="HIGH", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-01 10:00:00", action="INSERT", new={"status": "OPEN"})  # no severity
    src.log("observation", "o1", "2024-06-05 10:00:00", old={"status": "OPEN"}, new={"status": "IN_PROGRESS"})
    src.log("observation", "o1", "2024-06-12 10:00:00", old={"severity": "MEDIUM"}, new={"severity": "HIGH"})
    snapshots(engine, "severity_snapshot")
    # No new_data with severity before 06-12: the first old_data with severity at/after T is MEDIUM.
    assert severity(engine, dt.date(2024, 6, 7))["t1"]["medium_open"] == 1
    assert severity(engine, dt.date(2024, 6, 12))["t1"]["high_open"] == 1


def test_last_change_of_the_day_wins_and_ties_break_on_id(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="LOW", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-10 09:00:00", old={"severity": "LOW"}, new={"severity": "HIGH"})
    src.log("observation", "o1", "2024-06-10 18:00:00", old={"severity": "HIGH"}, new={"severity": "MEDIUM"})
    src.log("observation", "o1", "2024-06-10 18:00:00", old={"severity": "MEDIUM"}, new={"severity": "CRITICAL"})  # same instant, higher id
    src.log("observation", "o1", "2024-06-11 00:00:00", old={"severity": "CRITICAL"}, new={"severity": "LOW"})  # exactly T
    snapshots(engine, "severity_snapshot")
    assert severity(engine, dt.date(2024, 6, 9))["t1"]["low_open"] == 1  # first old_data after T(06-09)
    assert severity(engine, D)["t1"]["critical_open"] == 1  # the 00:00 change is not < T(06-10)
    assert severity(engine, dt.date(2024, 6, 11))["t1"]["low_open"] == 1


def test_no_history_messy_and_unknown_values(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("medium", severity=" Medium ")
    src.observation("tab", severity="\thigh\n")
    src.observation("info", severity="INFO")  # unknown: open_total only
    src.observation("none", severity=None)
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"] == dict(critical_open=0, high_open=1, medium_open=1, low_open=0, open_total=4)


def test_json_null_severity_in_log_is_a_value_not_a_missing_field(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="LOW", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-05 10:00:00", old={"severity": "LOW"}, new={"severity": None})
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"] == dict(critical_open=0, high_open=0, medium_open=0, low_open=0, open_total=1)
    assert severity(engine, dt.date(2024, 6, 4))["t1"]["low_open"] == 1


def test_log_images_that_are_not_objects_have_no_fields(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="LOW", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-05 10:00:00", old="severity", new=["severity", "HIGH"])
    src.log("observation", "o1", "2024-06-06 10:00:00", old=None, new="CRITICAL")
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"]["low_open"] == 1


def test_invalid_json_text_in_sqlite_is_ignored(tmp_path):
    # SQLite only: PostgreSQL's json type cannot hold invalid JSON.
    engine = sqlite_engine(tmp_path / "invalid.sqlite")
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", severity="LOW", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-05 10:00:00", old="{not json", new='{"severity": "HIGH"', raw=True)
    snapshots(engine, "severity_snapshot")
    assert severity(engine, D)["t1"]["low_open"] == 1


def test_closed_before_created_and_deleted_records_are_never_open(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("backwards", created="2024-06-05 10:00:00", closed="2024-06-01 10:00:00")
    src.log("observation", "gone", "2024-06-02 10:00:00", action="INSERT", new={"id": "gone", "severity": "HIGH"})
    src.log("observation", "gone", "2024-06-03 10:00:00", action="DELETE", old={"id": "gone", "severity": "HIGH"})
    snapshots(engine, "severity_snapshot")
    assert all(severity(engine, dt.date(2024, 6, d))["t1"]["open_total"] == 0 for d in (1, 2, 5, 10))


def test_tenants_not_yet_created_or_not_onboarded(engine):
    src = SourceBuilder(engine)
    src.tenant("early")
    src.tenant("mid", created="2024-06-11 00:00:00")  # in snapshots from 06-11 on
    src.tenant("late-ish", created="2024-06-10 23:59:59")  # in the snapshot of 06-10
    src.tenant("onboarding", onboarded=False)
    src.observation("o-mid", tenant="mid", created="2024-06-01 10:00:00")  # older than its tenant
    snapshots(engine)
    for table in ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot"):
        assert set(rows(engine, table, D)) == {"early", "late-ish"}, table
        assert set(rows(engine, table, dt.date(2024, 6, 11))) == {"early", "late-ish", "mid"}, table
    assert severity(engine, dt.date(2024, 6, 11))["mid"]["high_open"] == 1


def test_compliance_as_of_and_percentage(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.requirement("r1", status="COMPLIANT")
    src.requirement("r2", status=" compliant ")
    src.requirement("r3", status="NON_COMPLIANT")
    src.requirement("r4", status="not_applicable")  # not in total
    src.requirement("r5", status="UNKNOWN")  # in total, not compliant
    src.requirement("r6", status="COMPLIANT", created="2024-06-11 00:00:00")  # from 06-11 on
    # r3 became compliant on 06-12 (logged); before that the old image says NON_COMPLIANT
    src.log("compliance_requirement", "r3", "2024-06-12 08:00:00", old={"status": "NON_COMPLIANT"}, new={"status": "COMPLIANT"})
    snapshots(engine, "compliance_snapshot")
    c = rows(engine, "compliance_snapshot", D)["t1"]
    assert (c["total"], c["compliant"], c["percentage"]) == (4, 2, Decimal("50.00"))  # r1 r2 r3 r5
    c = rows(engine, "compliance_snapshot", dt.date(2024, 6, 11))["t1"]
    assert (c["total"], c["compliant"], c["percentage"]) == (5, 3, Decimal("60.00"))  # + r6
    c = rows(engine, "compliance_snapshot", dt.date(2024, 6, 12))["t1"]
    assert (c["total"], c["compliant"], c["percentage"]) == (5, 4, Decimal("80.00"))


def test_percentage_rounding_and_null_when_nothing_applies(engine):
    src = SourceBuilder(engine)
    src.tenant("thirds")
    src.tenant("nothing-applies")
    src.tenant("empty")
    for i, status in enumerate(["COMPLIANT", "COMPLIANT", "NON_COMPLIANT"]):
        src.requirement(f"th{i}", tenant="thirds", status=status)
    src.requirement("na", tenant="nothing-applies", status="NOT_APPLICABLE")
    snapshots(engine, "compliance_snapshot", "severity_snapshot", "health_snapshot")
    c = rows(engine, "compliance_snapshot", D)
    assert c["thirds"]["percentage"] == Decimal("66.67")  # 66.666...
    assert (c["nothing-applies"]["total"], c["nothing-applies"]["percentage"]) == (0, None)
    assert (c["empty"]["total"], c["empty"]["percentage"]) == (0, None)
    h = rows(engine, "health_snapshot", D)
    assert h["nothing-applies"]["compliance_score"] == 100  # null percentage scores 100
    assert h["thirds"]["health_score"] == Decimal("83.3")  # 0.5 * 66.67 + 0.5 * 100 = 83.335


def test_health_score_formula_and_half_up_rounding(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("c", severity="CRITICAL")
    src.observation("h", severity="HIGH")
    src.observation("l", severity="LOW")  # 100 - (10 + 5 + 1) = 84
    for i in range(8):  # 5 of 8 compliant = 62.5
        src.requirement(f"r{i}", status="COMPLIANT" if i < 5 else "NON_COMPLIANT")
    snapshots(engine)
    h = rows(engine, "health_snapshot", D)["t1"]
    # 0.5 * 62.5 + 0.5 * 84 = 73.25 -> 73.3 (half up; banker's rounding would give 73.2)
    assert (h["severity_score"], h["compliance_score"], h["health_score"]) == (84, Decimal("62.5"), Decimal("73.3"))


def test_severity_score_floors_at_zero(engine):
    src = SourceBuilder(engine)
    src.tenant()
    for i in range(11):
        src.observation(f"c{i}", severity="CRITICAL")
    snapshots(engine)
    h = rows(engine, "health_snapshot", D)["t1"]
    assert (h["severity_score"], h["compliance_score"], h["health_score"]) == (0, 100, 50)


def test_dashboard_metrics_shape_and_captured_at(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("c", severity="critical")
    src.observation("m", severity="MEDIUM")
    src.observation("x", severity="INFO")
    src.requirement("r1", status="COMPLIANT")
    src.requirement("r2", status="NON_COMPLIANT")
    snapshots(engine)
    d = rows(engine, "dashboard_snapshot", D)["t1"]
    # severity score 100 - (10 + 2) = 88; compliance 50; health 69.0
    assert d["metrics"] == {
        "healthScore": 69,
        "compliance": {"total": 2, "compliant": 1, "percentage": 50},
        "severity": {"total": 3, "criticalOpen": 1, "highOpen": 0, "mediumOpen": 1, "lowOpen": 0},
    }
    captured = d["captured_at"]
    if isinstance(captured, str):
        captured = dt.datetime.fromisoformat(captured)
    if captured.tzinfo is None:  # SQLite: UTC text
        captured = captured.replace(tzinfo=dt.timezone.utc)
    assert captured == dt.datetime(2024, 6, 10, 18, 30, tzinfo=dt.timezone.utc)  # 2024-06-11 00:00 IST


def test_other_time_zone_moves_the_day_boundary(engine):
    src = SourceBuilder(engine)
    src.tenant()
    # 2024-06-10 23:00 IST is 2024-06-10 17:30 UTC: the same day in both zones...
    src.observation("a", created="2024-06-10 23:00:00")
    # ...but 2024-06-11 04:00 IST is 2024-06-10 22:30 UTC: 06-10 in UTC, 06-11 in IST.
    src.observation("b", created="2024-06-11 04:00:00")
    w = warehouse(engine, AUDIT_PIPELINE_TIMEZONE="UTC")
    w.writer.severity_snapshot(*RANGE)
    assert severity(engine, D)["t1"]["open_total"] == 2
    warehouse(engine).writer.severity_snapshot(*RANGE)
    assert severity(engine, D)["t1"]["open_total"] == 1


def test_rerun_replaces_and_a_subrange_leaves_other_days(engine):
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1")
    snapshots(engine)
    before = {t: count(engine, t) for t in ("severity_snapshot", "dashboard_snapshot")}
    assert before["severity_snapshot"] == 20
    src.observation("o2", created="2024-06-02 10:00:00")
    w = warehouse(engine)
    w.writer.severity_snapshot(dt.date(2024, 6, 5), dt.date(2024, 6, 6))
    assert {t: count(engine, t) for t in before} == before  # no duplicates
    assert severity(engine, dt.date(2024, 6, 5))["t1"]["open_total"] == 2  # replaced
    assert severity(engine, dt.date(2024, 6, 7))["t1"]["open_total"] == 1  # untouched


def test_source_rows_with_quotes_and_non_ascii(engine):
    src = SourceBuilder(engine)
    src.tenant("t'1; DROP TABLE tenant;--", name='Bank "Ünité" सहकारी')
    src.observation("o'1", tenant="t'1; DROP TABLE tenant;--", severity="HIGH")
    snapshots(engine)
    assert severity(engine, D)["t'1; DROP TABLE tenant;--"]["high_open"] == 1
