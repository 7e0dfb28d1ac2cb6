"""Runs launched as the UI and the daemon launch them: the database pool, failure alerts, SQLite readers.

The pool test starts `dagster dev` (webserver, daemon, code server: what `make dev` runs) on the local
instance configuration, launches runs of the implicit asset job through the webserver's GraphQL API
(the UI's Materialize and an asset backfill), and reads from the instance's event log which steps ran
at the same time.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from audit_pipeline.assets import daily, findings
from audit_pipeline.checks import freshness_checks
from audit_pipeline.definitions import defs
from audit_pipeline.log_reader import LogPosition
from audit_pipeline.resources import DATABASE_POOL, DatabaseResource, create_database_engine
from audit_pipeline.sensors import run_failure_alert
from audit_pipeline.settings import parse_database_url

from .builder import SourceBuilder, instance_at, warehouse
from .dagster_dev import dagster_dev

DAILY_SNAPSHOTS = ["severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot"]
POOL_LIMIT = 2  # dagster.yaml, deploy/dagster.yaml

LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) { launchRun(executionParams: $executionParams) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }
"""
LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $backfillParams) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""


def graphql(base: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    assert not answer.get("errors"), answer
    return answer["data"]


def materialize(base: str, first_day: str, last_day: str) -> str:
    """What the UI's Materialize of the daily snapshots for a range of days sends."""
    params = {
        "selector": {"repositoryLocationName": "audit_pipeline", "repositoryName": "__repository__",
                     "jobName": "__ASSET_JOB", "assetSelection": [{"path": [key]} for key in DAILY_SNAPSHOTS]},
        "executionMetadata": {"tags": [{"key": "dagster/asset_partition_range_start", "value": first_day},
                                       {"key": "dagster/asset_partition_range_end", "value": last_day}]},
        "runConfigData": {},
    }
    result = graphql(base, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def backfill(base: str, days: list[str]) -> str:
    """What the UI's "Launch backfill" of the daily snapshots for a range of days sends."""
    params = {"assetSelection": [{"path": [key]} for key in DAILY_SNAPSHOTS], "partitionNames": days}
    result = graphql(base, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def pool_step_intervals(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    """(start, end) of each step of the run that is in the database pool."""
    pooled = {node.name for node in defs.resolve_implicit_global_asset_job_def().graph.node_defs if node.pool == DATABASE_POOL}
    starts, intervals = {}, []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key not in pooled:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            intervals.append((starts.pop(event.step_key), entry.timestamp))
    return intervals


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.slow
def test_the_database_pool_holds_for_runs_launched_from_the_ui(tmp_path):
    # No job tags reach runs of the implicit asset job: only the pool can hold them back.
    with dagster_dev(tmp_path) as (base, home, _):
        # Each run's daily tables are one step: ranges long enough (seconds each) that the four runs'
        # steps would overlap if the pool let them, though their workers start a second or so apart.
        ranges = [("2024-04-01", "2025-03-31"), ("2025-04-01", "2026-03-31"), ("2024-10-01", "2025-09-30"), ("2025-10-01", "2026-09-30")]
        run_ids = [materialize(base, first, last) for first, last in ranges]
        backfill_id = backfill(base, [f"2024-08-{day:02}" for day in range(1, 32)])

        with instance_at(home) as instance:
            deadline = time.monotonic() + 240
            while True:
                backfill_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                runs = [instance.get_run_by_id(run_id) for run_id in run_ids] + list(backfill_runs)
                if backfill_runs and all(run.is_finished for run in runs):
                    break
                assert time.monotonic() < deadline, [(run.run_id, run.status) for run in runs]
                time.sleep(1)
            assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * len(runs)
            assert {run.job_name for run in runs} == {"__ASSET_JOB"}
            for run in runs:  # the definitions' executor reached the implicit asset job's runs
                engine_events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                assert any(event.message.startswith("Executing steps in process") for event in engine_events)
            intervals = [interval for run in runs for interval in pool_step_intervals(instance, run.run_id)]
            assert len(intervals) == len(runs)  # each run: one step writes its daily tables and checks them
            # Five runs of up to four at once; their database steps two at a time, never more.
            assert most_at_once(intervals) == POOL_LIMIT
            assert instance.event_log_storage.get_concurrency_info(DATABASE_POOL).slot_count == POOL_LIMIT


# --- every failed run is alerted -----------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Receiver.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failed_run_is_alerted_whichever_job_it_ran(tmp_path, monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AUDIT_PIPELINE_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/alerts")
    # The project's assets and jobs on a database without source tables: every run of them fails.
    broken = dg.Definitions(
        assets=[daily.daily_tables, findings.current_findings],
        asset_checks=freshness_checks,
        jobs=[defs.resolve_job_def("freshness_check")],
        resources={"database": DatabaseResource(url=f"sqlite:///{tmp_path / 'no-tables.sqlite'}")},
    )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            def tick(cursor):
                return run_failure_alert.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)).cursor

            cursor = tick(None)  # the sensor's first tick starts after the runs that exist
            failed = [
                # the UI's Materialize of one day, and an asset backfill's runs: the implicit asset job
                broken.resolve_implicit_global_asset_job_def().execute_in_process(
                    instance=instance, partition_key="2024-06-01", asset_selection=[dg.AssetKey("severity_snapshot")],
                    raise_on_error=False),
                # the 02:00 freshness run, with yesterday missing
                broken.resolve_job_def("freshness_check").execute_in_process(instance=instance, raise_on_error=False),
            ]
            assert [result.success for result in failed] == [False, False]
            tick(cursor)
    finally:
        server.shutdown()
    posted = json.dumps(Receiver.received)
    assert len(Receiver.received) == 2
    assert all(result.run_id in posted for result in failed)


# --- SQLite: readers do not wait for writers -------------------------------------------------------


def test_on_sqlite_a_reader_does_not_wait_for_a_writer(tmp_path):
    url = parse_database_url(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    engine = create_database_engine(url)
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1")
    warehouse(engine).tables.prepare()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"

    # Another process's engine that does not wait at all for a lock (busy timeout 0): with a lock to
    # wait for, a statement fails at once with "database is locked".
    impatient = create_database_engine(url)
    event.listen(impatient, "connect", lambda dbapi_connection, _: dbapi_connection.execute("PRAGMA busy_timeout = 0"))
    w = warehouse(impatient)
    w.tables._prepared = True  # the tables exist; prepare() writes (DDL)
    reader = w.reader

    with engine.begin() as backfill:  # a backfill's write transaction holds the write lock...
        backfill.execute(text("DELETE FROM severity_snapshot"))
        # ...and the sensor's and the checks' reads still read the last committed state...
        assert reader.start_log_position().after >= 0
        assert reader.read_log_rows(LogPosition(0), 10).rows == []
        assert reader.created_at({("tenant", "t1")})
        assert reader.find("SELECT count(*) FROM observation") == [(1,)]
        # ...while a second writer has to wait for it.
        with pytest.raises(OperationalError, match="locked"):
            with impatient.begin() as other_writer:
                other_writer.execute(text("DELETE FROM compliance_snapshot"))
    impatient.dispose()
    engine.dispose()
