"""Quarterly severity trend and daily compliance trend on hand-built histories."""

import datetime as dt
from decimal import Decimal

from sqlalchemy import text

from .builder import SourceBuilder, all_rows, rows, warehouse

day = dt.date


def test_quarter_boundaries_in_progress_quarter_and_a_tenant_from_mid_quarter(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("new", created="2025-05-15 09:00:00")
    src.observation("march", severity="HIGH", created="2025-03-01 10:00:00")
    src.observation("april-first", severity="LOW", created="2025-04-01 00:00:00")  # open from 04-01 on
    src.observation("june", severity="CRITICAL", created="2025-06-01 10:00:00", closed="2025-06-30 23:59:59")  # closed on 06-30
    src.observation("july", severity="MEDIUM", tenant="new", created="2025-07-01 00:00:00")
    w = warehouse(engine)
    w.writer.severity_snapshot(day(2025, 3, 25), day(2025, 7, 5))
    w.writer.severity_trend_quarterly(day(2025, 3, 25), day(2025, 7, 5))
    got = {(r["tenant_id"], r["quarter_label"]): r for r in all_rows(engine, "severity_trend_quarterly")}
    assert set(got) == {
        ("t1", "Q4 FY2024-25"), ("t1", "Q1 FY2025-26"), ("t1", "Q2 FY2025-26"),
        ("new", "Q1 FY2025-26"), ("new", "Q2 FY2025-26"),
    }
    q4 = got[("t1", "Q4 FY2024-25")]
    assert (q4["fiscal_year"], q4["fiscal_quarter"], q4["quarter_start"], q4["quarter_end"], q4["as_of_date"]) == (
        2024, 4, day(2025, 1, 1), day(2025, 3, 31), day(2025, 3, 31))
    assert (q4["critical_open"], q4["high_open"], q4["medium_open"], q4["low_open"]) == (0, 1, 0, 0)
    q1 = got[("t1", "Q1 FY2025-26")]
    assert (q1["quarter_start"], q1["quarter_end"], q1["as_of_date"]) == (day(2025, 4, 1), day(2025, 6, 30), day(2025, 6, 30))
    assert (q1["critical_open"], q1["high_open"], q1["low_open"]) == (0, 1, 1)  # 'june' closed before T(06-30)
    q2 = got[("t1", "Q2 FY2025-26")]  # the quarter in progress: its latest snapshot
    assert (q2["fiscal_year"], q2["fiscal_quarter"], q2["as_of_date"]) == (2025, 2, day(2025, 7, 5))
    assert got[("new", "Q1 FY2025-26")]["medium_open"] == 0
    assert got[("new", "Q2 FY2025-26")]["medium_open"] == 1

    # A later run of a few days in mid-quarter rewrites that quarter from all its snapshots (its
    # latest day lies outside the run) and leaves the other quarters as they were.
    w.writer.severity_snapshot(day(2025, 4, 10), day(2025, 4, 12))
    assert w.writer.severity_trend_quarterly(day(2025, 4, 10), day(2025, 4, 12)).rows == 2
    assert {(r["tenant_id"], r["quarter_label"]): r for r in all_rows(engine, "severity_trend_quarterly")} == got

    # A quarter's row follows a later correction of its snapshots, from a run of one of its days.
    with engine.begin() as conn:
        conn.execute(text("UPDATE severity_snapshot SET high_open = 7 WHERE tenant_id = 't1' AND snapshot_date = :d"),
                     {"d": w.dialect.day_param(day(2025, 6, 30))})
    w.writer.severity_trend_quarterly(day(2025, 4, 1), day(2025, 4, 1))
    assert {(r["tenant_id"], r["quarter_label"]): r["high_open"] for r in all_rows(engine, "severity_trend_quarterly")}[
        ("t1", "Q1 FY2025-26")] == 7


def test_fiscal_year_start_month_setting(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    w = warehouse(engine, AUDIT_PIPELINE_FISCAL_YEAR_START_MONTH="1")
    w.writer.severity_snapshot(day(2025, 3, 30), day(2025, 4, 2))
    w.writer.severity_trend_quarterly(day(2025, 3, 30), day(2025, 4, 2))
    assert sorted(r["quarter_label"] for r in all_rows(engine, "severity_trend_quarterly")) == ["Q1 FY2025", "Q2 FY2025"]


def compliance_history(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.requirement("r1", status="COMPLIANT", created="2024-05-20 10:00:00")
    src.requirement("r2", status="COMPLIANT", created="2024-05-20 10:00:00")
    src.log("compliance_requirement", "r2", "2024-06-02 10:00:00", old={"status": "NON_COMPLIANT"}, new={"status": "COMPLIANT"})
    src.requirement("r3", status="NON_COMPLIANT", created="2024-06-03 10:00:00")
    src.requirement("r4", status="COMPLIANT", created="2024-06-06 10:00:00")
    # t2: nothing applies until 06-05
    src.requirement("na", tenant="t2", status="NOT_APPLICABLE", created="2024-05-20 10:00:00")
    src.requirement("r5", tenant="t2", status="COMPLIANT", created="2024-06-05 10:00:00")


def trend(engine, d):
    return {t: (r["compliance_percentage"], r["change_1d"], r["rolling_7d_avg"]) for t, r in rows(engine, "compliance_trend_daily", d).items()}


def test_change_and_rolling_average(engine):
    compliance_history(engine)
    w = warehouse(engine)
    w.writer.compliance_snapshot(day(2024, 6, 1), day(2024, 6, 7))
    w.writer.compliance_trend_daily(day(2024, 6, 1), day(2024, 6, 7))
    # t1 percentages: 06-01 50, 06-02 100, 06-03..05 66.67, 06-06..07 75
    assert trend(engine, day(2024, 6, 1))["t1"] == (Decimal("50"), None, Decimal("50"))  # no 05-31 snapshot
    assert trend(engine, day(2024, 6, 2))["t1"] == (Decimal("100"), Decimal("50"), Decimal("75"))
    assert trend(engine, day(2024, 6, 3))["t1"] == (Decimal("66.67"), Decimal("-33.33"), Decimal("72.22"))
    # 06-07: (50 + 100 + 3 * 66.67 + 2 * 75) / 7 = 500.01 / 7 = 71.43
    assert trend(engine, day(2024, 6, 7))["t1"] == (Decimal("75"), Decimal("0"), Decimal("71.43"))
    # t2: null percentages are left out of the average and give no change
    assert trend(engine, day(2024, 6, 4))["t2"] == (None, None, None)
    assert trend(engine, day(2024, 6, 5))["t2"] == (Decimal("100"), None, Decimal("100"))
    assert trend(engine, day(2024, 6, 6))["t2"] == (Decimal("100"), Decimal("0"), Decimal("100"))


def test_a_missing_previous_day_gives_no_change_and_a_shorter_window(engine):
    compliance_history(engine)
    w = warehouse(engine)
    w.writer.compliance_snapshot(day(2024, 6, 1), day(2024, 6, 3))
    w.writer.compliance_snapshot(day(2024, 6, 5), day(2024, 6, 9))  # 06-04 never materialized
    w.writer.compliance_trend_daily(day(2024, 6, 5), day(2024, 6, 9))
    # 06-05: no 06-04 snapshot; mean of 06-01, 02, 03, 05 = (50 + 100 + 66.67 + 66.67) / 4 = 70.835 -> 70.84
    assert trend(engine, day(2024, 6, 5))["t1"] == (Decimal("66.67"), None, Decimal("70.84"))
    # 06-09: window 06-03..06-09 without 06-04: 66.67, 66.67, 75 x 4 = 433.34 / 6 = 72.2233 -> 72.22
    assert trend(engine, day(2024, 6, 9))["t1"] == (Decimal("75"), Decimal("0"), Decimal("72.22"))
    assert set(rows(engine, "compliance_trend_daily")) == {"t1", "t2"}
