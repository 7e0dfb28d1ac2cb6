"""Every asset check, passing on clean data and failing on data made for it."""

import datetime as dt

import dagster as dg
from sqlalchemy import text

from audit_pipeline.current_state import update_current_findings
from audit_pipeline.assets import daily, findings
from audit_pipeline.resources import DatabaseResource
from audit_pipeline.writes import TableWriter

from .builder import SourceBuilder, warehouse

RANGE = (dt.date(2024, 6, 1), dt.date(2024, 6, 5))


ALL_ASSETS = [daily.daily_tables, findings.current_findings]
# Every check is declared on the asset whose table it reads and runs in the step that writes it.
ALL_CHECK_KEYS = [k for d in ALL_ASSETS for k in d.check_keys]


def check(asset: str, name: str, db_url: str) -> dg.AssetCheckEvaluation:
    """Evaluate one check as Dagster does, in a run of its own (so on every day of the table)."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    result = dg.materialize(ALL_ASSETS, resources={"database": DatabaseResource(url=db_url)},
                            selection=dg.AssetSelection.checks(key), raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def clean_history(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2", created="2024-06-03 12:00:00")
    src.observation("a", severity="HIGH")
    src.observation("b", severity="LOW", repeat_of="a")
    src.requirement("r1", status="COMPLIANT")
    w = warehouse(engine)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.health_snapshot,
                  w.writer.dashboard_snapshot, w.writer.compliance_trend_daily, w.writer.snapshot_change):
        write(*RANGE)
    update_current_findings(w, full_rebuild=True)
    return src


def execute(engine, sql):
    with engine.begin() as conn:
        conn.execute(text(sql))


TABLES = ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot", "compliance_trend_daily")


def test_all_checks_pass_on_clean_data(engine, db_url):
    clean_history(engine)
    assert len(ALL_CHECK_KEYS) == 16
    for key in ALL_CHECK_KEYS:
        result = check(key.asset_key.to_user_string(), key.name, db_url)
        assert result.passed, (key, result.metadata)


def test_one_row_per_tenant_and_day_names_missing_and_unexpected_rows(engine, db_url):
    clean_history(engine)
    for table in TABLES:
        execute(engine, f"DELETE FROM {table} WHERE tenant_id = 't2' AND snapshot_date = '2024-06-04'")
    execute(engine, "UPDATE tenant SET onboarding_completed = FALSE WHERE id = 't1'")  # t1's rows now unexpected
    for table in TABLES:
        result = check(table, "one_row_per_tenant_and_day", db_url)
        assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
        assert result.metadata["count"].value == 6  # t2 missing on 06-04, t1 unexpected on 5 days
        assert result.metadata["by_kind"].value == {"missing": 1, "unexpected": 5}
        assert "missing: t2 (2024-06-04" in result.metadata["examples"].value


def test_one_row_per_tenant_and_day_finds_a_wrong_tenant_on_a_day_with_the_right_count(engine, db_url):
    # The check compares days by their counts first: a day with as many rows as tenants, one of them
    # another tenant's, must still fail, tenant by tenant.
    clean_history(engine)
    for table in TABLES:
        execute(engine, f"UPDATE {table} SET tenant_id = 'ghost' WHERE tenant_id = 't2' AND snapshot_date = '2024-06-04'")
    for table in TABLES:
        result = check(table, "one_row_per_tenant_and_day", db_url)
        assert not result.passed
        assert result.metadata["by_kind"].value == {"missing": 1, "unexpected": 1}
        assert "unexpected: ghost (2024-06-04" in result.metadata["examples"].value


def test_values_in_range(engine, db_url):
    clean_history(engine)
    execute(engine, "UPDATE severity_snapshot SET open_total = 0 WHERE tenant_id = 't1' AND snapshot_date = '2024-06-02'")
    execute(engine, "UPDATE health_snapshot SET health_score = 100.5 WHERE tenant_id = 't2'")
    execute(engine, "UPDATE compliance_snapshot SET compliant = 5 WHERE tenant_id = 't1' AND snapshot_date = '2024-06-01'")
    severity = check("severity_snapshot", "values_in_range", db_url)
    assert not severity.passed
    assert severity.metadata["by_kind"].value == {"open_total below the sum of severities": 1}
    health = check("health_snapshot", "values_in_range", db_url)
    assert health.metadata["by_kind"].value == {"health_score outside 0..100": 3}
    compliance = check("compliance_snapshot", "values_in_range", db_url)
    assert compliance.metadata["by_kind"].value == {"compliant outside 0..total": 1}


def test_unknown_enum_values_are_a_warning_with_counts_per_value(engine, db_url):
    src = clean_history(engine)
    src.observation("i1", severity="INFO")
    src.observation("i2", severity="INFO")
    src.observation("i3", severity=" info")
    src.observation("h", severity=" high ")
    src.requirement("r2", status="pending")
    result = check("severity_snapshot", "observation_severity_values_known", db_url)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["unknown_values"].value == {"'INFO'": 2, "' info'": 1}
    assert result.metadata["values_normalized"].value == {"' high '": 1}
    status = check("compliance_snapshot", "compliance_requirement_status_values_known", db_url)
    assert status.metadata["unknown_values"].value == {"'pending'": 1}


def test_closed_before_created_is_a_warning_naming_the_observation(engine, db_url):
    src = clean_history(engine)
    src.observation("backwards", created="2024-06-05 10:00:00", closed="2024-06-01 10:00:00")
    result = check("severity_snapshot", "observations_closed_before_created", db_url)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "closed before created: backwards" in result.metadata["examples"].value


def test_cross_tenant_links_and_cycles_are_warnings(engine, db_url):
    src = clean_history(engine)
    src.observation("other", tenant="t2")
    src.observation("x", repeat_of="other")
    src.observation("p")
    src.observation("q", repeat_of="p")
    src.link("p", "q")
    src.observation("into-cycle", repeat_of="p")  # leads into the cycle but is not on it
    links = check("repeat_finding", "repeat_links_across_tenants", db_url)
    assert not links.passed and links.severity == dg.AssetCheckSeverity.WARN
    assert links.metadata["count"].value == 1 and "x (other)" in links.metadata["examples"].value
    cycles = check("repeat_finding", "repeat_link_cycles", db_url)
    assert not cycles.passed and cycles.metadata["count"].value == 2
    assert "on a cycle: p" in cycles.metadata["examples"].value and "into-cycle" not in cycles.metadata["examples"].value


def test_checks_run_in_the_range_run_and_show_in_the_job(engine, db_url):
    from audit_pipeline.definitions import defs

    clean_history(engine)
    job = defs.resolve_job_def("audit_history")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"database": DatabaseResource(url=db_url)},
        tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-05"},
    )
    evaluations = result.get_asset_check_evaluations()
    assert sorted(e.asset_check_key.to_user_string() for e in evaluations) == sorted(k.to_user_string() for k in ALL_CHECK_KEYS)
    assert all(e.passed for e in evaluations)


def test_a_runs_checks_cover_its_days_and_a_check_run_covers_all(engine, db_url):
    clean_history(engine)
    execute(engine, "DELETE FROM severity_snapshot WHERE tenant_id = 't1' AND snapshot_date = '2024-06-03'")  # t2 keeps the day present
    result = dg.materialize(
        ALL_ASSETS, resources={"database": DatabaseResource(url=db_url)},
        selection=dg.AssetSelection.assets("severity_snapshot").without_checks()
        | dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("severity_snapshot"), "one_row_per_tenant_and_day")),
        tags={"dagster/asset_partition_range_start": "2024-06-04", "dagster/asset_partition_range_end": "2024-06-05"},
    )
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]  # 06-03 is not this run's
    assert not check("severity_snapshot", "one_row_per_tenant_and_day", db_url).passed


def test_a_failed_blocking_check_stops_what_reads_the_table_and_fails_the_run(engine, db_url, monkeypatch):
    clean_history(engine)
    write = TableWriter.severity_snapshot

    def losing_a_row(self, start, end):
        result = write(self, start, end)
        execute(engine, "DELETE FROM severity_snapshot WHERE tenant_id = 't2' AND snapshot_date = '2024-06-05'")
        return result

    monkeypatch.setattr(TableWriter, "severity_snapshot", losing_a_row)
    execute(engine, "DELETE FROM health_snapshot")
    result = dg.materialize(ALL_ASSETS, resources={"database": DatabaseResource(url=db_url)}, partition_key="2024-06-05",
                            selection=dg.AssetSelection.groups("daily_snapshots", "history"), raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [("severity_snapshot", "one_row_per_tenant_and_day")]
    written = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    # compliance does not read severity: written; health and the dashboard read it: not written.
    assert {"severity_snapshot", "compliance_snapshot"} <= set(written)
    assert not set(written) & {"health_snapshot", "dashboard_snapshot"}
    assert count_rows(engine, "health_snapshot") == 0
    # What changed is read off the history alone: written; its preview (health before and after)
    # and its check (which reads the snapshots' counts) are not.
    change = written["snapshot_change"].event_specific_data.materialization.metadata
    assert "dagster/row_count" in change and not any(name.startswith("largest movements") for name in change)
    evaluated = {e.asset_check_key.to_user_string() for e in result.get_asset_check_evaluations()}
    assert "snapshot_change:counts_follow_from_changes" not in evaluated


def count_rows(engine, table):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_history_runs_well_formed_names_each_kind_of_broken_run(engine):
    from audit_pipeline.sql.checks import history_problems

    src = SourceBuilder(engine)
    src.tenant()
    src.observation("ok", created="2024-06-01 10:00:00")
    w = warehouse(engine)  # history built: clean
    table = w.tables.ref("observation_history")
    query = history_problems(w.dialect, table, "observation_id", "severity")
    assert w.reader.find(query) == []
    day = w.dialect.day_param
    broken = [  # (id, severity, valid_from, valid_to)
        ("two-open", "HIGH", dt.date(2024, 6, 1), None), ("two-open", "LOW", dt.date(2024, 6, 5), None),
        ("overlap", "HIGH", dt.date(2024, 6, 1), dt.date(2024, 6, 5)), ("overlap", "LOW", dt.date(2024, 6, 3), dt.date(2024, 6, 9)),
        ("same", "HIGH", dt.date(2024, 6, 1), dt.date(2024, 6, 5)), ("same", "HIGH", dt.date(2024, 6, 5), dt.date(2024, 6, 9)),
        ("empty", "HIGH", dt.date(2024, 6, 5), dt.date(2024, 6, 5)),
        ("messy", " high", dt.date(2024, 6, 1), dt.date(2024, 6, 2)),
    ]
    with engine.begin() as conn:
        for id_, severity, first, after in broken:
            conn.execute(text(f"INSERT INTO {table} (observation_id, tenant_id, severity, valid_from, valid_to) "
                              "VALUES (:id, 't1', :s, :f, :t)"),
                         {"id": id_, "s": severity, "f": day(first), "t": after and day(after)})
    kinds = {(kind, id_) for kind, id_, _ in w.reader.find(query)}
    assert kinds == {("more than one open run", "two-open"), ("overlapping runs", "two-open"),
                     ("overlapping runs", "overlap"), ("not maximal", "same"), ("empty run", "empty"),
                     ("value not normalized", "messy")}
def test_counts_follow_from_changes_names_the_tenant_day_and_counts(engine, db_url):
    src = clean_history(engine)
    # A day with changes: "a" closes and "c" (CRITICAL) opens on 06-03; r1 turns NON_COMPLIANT on 06-04.
    src.observation("c", severity="CRITICAL", created="2024-06-03 09:00:00")
    execute(engine, "UPDATE observation SET closed_at = '2024-06-03 04:00:00+00:00' WHERE id = 'a'")
    src.log("compliance_requirement", "r1", "2024-06-04 10:00:00", old={"status": "COMPLIANT"}, new={"status": "NON_COMPLIANT"})
    w = warehouse(engine)
    for write in (w.writer.severity_snapshot, w.writer.compliance_snapshot, w.writer.snapshot_change):
        write(*RANGE)
    assert check("snapshot_change", "counts_follow_from_changes", db_url).passed
    # A snapshot row tampered with: its day disagrees with the changes, and so does the next one.
    execute(engine, "UPDATE severity_snapshot SET critical_open = 5 WHERE tenant_id = 't1' AND snapshot_date = '2024-06-03'")
    # A change row lost: the compliance counts of 06-04 no longer follow.
    execute(engine, "DELETE FROM snapshot_change WHERE record_id = 'r1'")
    result = check("snapshot_change", "counts_follow_from_changes", db_url)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["count"].value == 3
    assert result.metadata["mismatches"].value == [
        # 06-03: 06-02's 0 + the CRITICAL opened = 1, but the table says 5
        dict(table="severity_snapshot", column="critical_open", tenant_id="t1", day="2024-06-03",
             previous=0, plus=1, minus=0, expected=1, actual=5),
        # 06-04: 06-03's (tampered) 5 + no change = 5, but the table has the right 1
        dict(table="severity_snapshot", column="critical_open", tenant_id="t1", day="2024-06-04",
             previous=5, plus=0, minus=0, expected=5, actual=1),
        # 06-04 without r1's change: compliant stays 1, the table has 0 (total has no change either way)
        dict(table="compliance_snapshot", column="compliant", tenant_id="t1", day="2024-06-04",
             previous=1, plus=0, minus=0, expected=1, actual=0),
    ]
    assert "t1 2024-06-03 severity_snapshot.critical_open (0 + 1 - 0 = 1, table has 5)" in result.metadata["examples"].value


def test_counts_follow_from_changes_checks_the_runs_days_with_the_day_before_from_the_history(engine, db_url):
    clean_history(engine)
    # The day before the run's first is counted from the history (t1 has "a" HIGH and "b" LOW open
    # since May, and r1 COMPLIANT), whatever its row says: here not materialized, or written before
    # a correction that the run took in (its own re-run is the sensor's business).
    execute(engine, "DELETE FROM compliance_snapshot WHERE snapshot_date < '2024-06-04'")
    execute(engine, "UPDATE severity_snapshot SET low_open = 7 WHERE tenant_id = 't1' AND snapshot_date = '2024-06-03'")
    in_run = dg.materialize(
        ALL_ASSETS, resources={"database": DatabaseResource(url=db_url)},
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("snapshot_change"), "counts_follow_from_changes")),
        tags={"dagster/asset_partition_range_start": "2024-06-04", "dagster/asset_partition_range_end": "2024-06-05"},
    )
    assert [e.passed for e in in_run.get_asset_check_evaluations()] == [True]
    # A row of the checked days missing fails its day, which has nothing to compare; the stale row
    # of 06-03 fails 06-03 and 06-04 in a check of every day.
    execute(engine, "DELETE FROM compliance_snapshot WHERE tenant_id = 't2' AND snapshot_date = '2024-06-05'")
    result = check("snapshot_change", "counts_follow_from_changes", db_url)
    assert not result.passed
    assert [(m["table"], m["column"], m["tenant_id"], m["day"], m["expected"], m["actual"])
            for m in result.metadata["mismatches"].value] == [
        ("severity_snapshot", "low_open", "t1", "2024-06-03", 1, 7),
        ("severity_snapshot", "low_open", "t1", "2024-06-04", 7, 1),
        ("compliance_snapshot", "compliant", "t2", "2024-06-05", 0, None),
        ("compliance_snapshot", "total", "t2", "2024-06-05", 0, None),
    ]
