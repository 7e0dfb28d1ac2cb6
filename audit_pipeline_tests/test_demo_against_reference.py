"""The whole demo data set (every messy case of the contract) against the plain-Python reference.

The SQL computes the full history in one range; the reference, being slow, checks sample days chosen
around the boundaries that matter (trigger start, fiscal year and quarter ends, mid-history tenants).
The old job's table is compared over the whole history, against the reference's reading of the
comparison rule applied to the pipeline's dashboard_snapshot rows (checked above on the sample days).
"""

import datetime as dt

import pytest

from audit_pipeline.current_state import update_current_findings
from audit_pipeline.calendar import fiscal_quarter
from audit_pipeline.output_checks import change_identity_problems
from audit_pipeline.demo_data import generate, write

from .builder import all_rows, change_rows, rows, warehouse
from .reference import Reference, load_legacy, load_source
from .test_differential import legacy_diff
from .test_legacy import legacy_fingerprint

FIRST, LAST = dt.date(2024, 4, 1), dt.date(2026, 11, 20)
SAMPLE_DAYS = [
    dt.date(2024, 4, 1),
    dt.date(2024, 5, 31),
    dt.date(2024, 6, 1),  # the demo's audit trigger starts on this day
    dt.date(2024, 9, 30),
    dt.date(2025, 3, 31),
    dt.date(2025, 4, 1),
    dt.date(2025, 6, 14),
    dt.date(2026, 1, 1),
    dt.date(2026, 11, 20),
]


@pytest.fixture(scope="module")
def demo():
    return generate(scale=1)


def _norm_metrics(metrics):
    """JSON numbers compare as numbers: 69, 69.0 and Decimal('69.0') are the same value."""
    if isinstance(metrics, dict):
        return {k: _norm_metrics(v) for k, v in metrics.items()}
    return None if metrics is None else (metrics if isinstance(metrics, int) else float(metrics))


def test_every_table_matches_the_reference(engine, demo):
    write(engine, demo)
    old_table = legacy_fingerprint(engine)
    w = warehouse(engine)
    for step in (
        w.writer.severity_snapshot,
        w.writer.compliance_snapshot,
        w.writer.health_snapshot,
        w.writer.dashboard_snapshot,
        w.writer.compliance_trend_daily,
        w.writer.snapshot_change,
    ):
        step(FIRST, LAST)
    w.writer.severity_trend_quarterly(FIRST, LAST)
    update_current_findings(w, full_rebuild=True)
    w.writer.legacy_snapshot_diff(FIRST, LAST)

    ref = Reference(load_source(engine))
    for day in SAMPLE_DAYS:
        assert rows(engine, "severity_snapshot", day) == ref.severity(day), day
        assert rows(engine, "compliance_snapshot", day) == ref.compliance(day), day
        assert rows(engine, "health_snapshot", day) == ref.health(day), day
        dashboard = rows(engine, "dashboard_snapshot", day)
        expected = ref.dashboard(day)
        assert {t: _norm_metrics(r["metrics"]) for t, r in dashboard.items()} == {
            t: _norm_metrics(r["metrics"]) for t, r in expected.items()
        }, day
        assert rows(engine, "compliance_trend_daily", day) == ref.compliance_trend(day), day
        assert change_rows(engine, day) == ref.snapshot_change(day), day
    # Every day of the history: the snapshots' counts follow from the day before's and the changes.
    assert change_identity_problems(w, (FIRST, LAST)) == []

    for day in (dt.date(2025, 3, 31), dt.date(2025, 6, 30), LAST):
        quarter = fiscal_quarter(day, 4)
        expected = ref.severity(day)
        got = {
            r["tenant_id"]: r
            for r in all_rows(engine, "severity_trend_quarterly")
            if r["fiscal_year"] == quarter.fiscal_year and r["fiscal_quarter"] == quarter.quarter
        }
        assert set(got) == set(expected)
        for tenant, counts in expected.items():
            row = got[tenant]
            assert row["as_of_date"] == day
            assert row["quarter_label"] == quarter.label
            assert {k: row[k] for k in ("critical_open", "high_open", "medium_open", "low_open")} == {
                k: counts[k] for k in ("critical_open", "high_open", "medium_open", "low_open")
            }

    assert rows(engine, "repeat_finding", key="observation_id") == ref.repeat_findings()
    assert rows(engine, "engagement_progress", key="engagement_id") == ref.engagement_progress()

    pipeline = {(r["tenant_id"], r["snapshot_date"]): r["metrics"] for r in all_rows(engine, "dashboard_snapshot")}
    expected = ref.legacy_snapshot_diff(load_legacy(engine), FIRST, LAST, pipeline)
    assert legacy_diff(engine, FIRST, LAST) == expected
    # The demo's old job: mostly changes between midnight and its run, a few numbers nothing explains.
    explained = {(t, d) for (t, d, _), v in expected.items() if v[3] > 0}
    unexplained = {(t, d) for (t, d, _), v in expected.items() if v[3] == 0}
    assert len(explained) > 1000 and 10 < len(unexplained) < 100
    assert legacy_fingerprint(engine) == old_table
