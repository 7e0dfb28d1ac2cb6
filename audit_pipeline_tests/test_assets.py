"""The assets through Dagster: definitions, a partition range as one run, idempotent re-runs."""

import datetime as dt

import dagster as dg

from audit_pipeline.assets import daily, findings, history, snapshots
from audit_pipeline.definitions import defs
from audit_pipeline.partitions import daily_partitions
from audit_pipeline.resources import DATABASE_POOL, DatabaseResource

from .builder import SourceBuilder, change_rows, count, rows

ALL_ASSETS = [daily.daily_tables, findings.current_findings]
DAILY_KEYS = {"severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot", "compliance_trend_daily",
              "snapshot_change", "legacy_snapshot_diff", "observation_history", "requirement_history",
              "severity_trend_quarterly"}
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2024-06-01",
    "dagster/asset_partition_range_end": "2024-06-10",
}


def small_history(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2", created="2024-06-05 12:00:00")
    src.engagement("e1")
    src.observation("o1", severity="HIGH", engagement="e1")
    src.observation("o2", tenant="t2", severity="LOW", created="2024-06-06 10:00:00", closed="2024-06-08 10:00:00")
    src.observation("o3", severity="critical", repeat_of="o1", created="2024-06-02 10:00:00")
    src.requirement("r1")
    src.requirement("r2", tenant="t2", status="NON_COMPLIANT")


def test_definitions_load_with_twelve_assets_and_one_partitions_definition():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == DAILY_KEYS | {"repeat_finding", "engagement_progress"}
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.to_user_string() in DAILY_KEYS:
            assert node.partitions_def is daily_partitions  # the same object: one range run for all
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
        else:
            assert node.partitions_def is None
    assert daily_partitions.timezone == "Asia/Kolkata"
    # However a run starts (the job, or the implicit asset job of the UI and of asset backfills), its
    # steps run in its own process, and every step that works on the application database takes a
    # slot of the pool the instance limits (deploy/dagster.yaml, dagster.yaml).
    for job in (defs.resolve_job_def("audit_history"), defs.resolve_implicit_global_asset_job_def()):
        assert job.executor_def is dg.in_process_executor
        for node in job.graph.node_defs:
            assert (node.pool == DATABASE_POOL) == ("database" in node.required_resource_keys), node.name
    assert daily_partitions.get_first_partition_key() == "2024-04-01"


def test_a_partition_range_is_one_run_and_a_rerun_replaces(engine, db_url):
    small_history(engine)
    resources = {"database": DatabaseResource(url=db_url)}
    result = dg.materialize(ALL_ASSETS, resources=resources, tags=RANGE_TAGS)
    assert result.success
    # One run: each step ran once, for all ten days (the daily tables share a step).
    steps = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    assert sorted(steps) == ["current_findings", "daily_tables"]
    materialized = result.get_asset_materialization_events()
    severity_days = {e.partition for e in materialized if e.asset_key == dg.AssetKey("severity_snapshot")}
    assert len(severity_days) == 10
    change_days = {e.partition for e in materialized if e.asset_key == dg.AssetKey("snapshot_change")}
    assert change_days == severity_days
    # t1 on 10 days, t2 from 06-05 (6 days)
    counts = {t: count(engine, t) for t in ("severity_snapshot", "compliance_snapshot", "health_snapshot",
                                           "dashboard_snapshot", "compliance_trend_daily")}
    assert set(counts.values()) == {16}
    assert rows(engine, "repeat_finding", key="observation_id")["o3"]["occurrence_count"] == 2
    assert rows(engine, "engagement_progress", key="engagement_id")["e1"]["open_count"] == 1

    again = dg.materialize(ALL_ASSETS, resources=resources, tags=RANGE_TAGS)
    assert again.success
    assert {t: count(engine, t) for t in counts} == counts
    # o3 opens on 06-02; t2 enters on 06-05 with r2; o2 opens on 06-06 and closes on 06-08 (o1 and r1
    # have had the same place since May). Replaced by the re-run, not duplicated.
    assert sorted((day.isoformat(), key[2], row["change"]) for (day, *key), row in change_rows(engine).items()) == [
        ("2024-06-02", "o3", "opened"), ("2024-06-05", "r2", "added"),
        ("2024-06-06", "o2", "opened"), ("2024-06-08", "o2", "closed"),
    ]


def test_one_partition_run(engine, db_url):
    small_history(engine)
    # The snapshot counts what the record history holds: it is brought up to date in the same run.
    result = dg.materialize(
        ALL_ASSETS,
        selection=[snapshots.severity_snapshot.key, history.observation_history.key, history.requirement_history.key],
        resources={"database": DatabaseResource(url=db_url)}, partition_key="2024-06-07",
    )
    assert result.success
    assert rows(engine, "severity_snapshot", dt.date(2024, 6, 7)) == {
        "t1": dict(critical_open=1, high_open=1, medium_open=0, low_open=0, open_total=2),
        "t2": dict(critical_open=0, high_open=0, medium_open=0, low_open=1, open_total=1),
    }
    materializations = {m.asset_key: m for m in result.asset_materializations_for_node("daily_tables")}
    assert set(materializations) == {snapshots.severity_snapshot.key, history.observation_history.key,
                                     history.requirement_history.key}  # the selected assets only
    materialization = materializations[snapshots.severity_snapshot.key]
    meta = materialization.metadata
    assert meta["dagster/row_count"].value == 2 and meta["tenants"].value == 2 and meta["days"].value == 1
    assert count(engine, "compliance_snapshot") == 0


def test_asset_functions_can_be_called_directly(engine, db_url):
    small_history(engine)
    context = dg.build_asset_context(partition_key="2024-06-09")
    outputs = list(daily.daily_tables(context, history.HistoryConfig(), DatabaseResource(url=db_url)))
    results = {r.asset_key.to_user_string(): r for r in outputs if isinstance(r, dg.MaterializeResult)}
    assert set(results) == DAILY_KEYS
    checks = {(r.asset_key.to_user_string(), r.check_name): r.passed for r in outputs if isinstance(r, dg.AssetCheckResult)}
    assert len(checks) == 14 and all(checks.values()), checks
    assert checks[("severity_snapshot", "observation_severity_values_known")]
    assert results["compliance_snapshot"].metadata["dagster/row_count"].value == 2
    assert rows(engine, "compliance_snapshot", dt.date(2024, 6, 9))["t2"]["compliant"] == 0
