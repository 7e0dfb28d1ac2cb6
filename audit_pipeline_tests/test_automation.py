"""Schedules, sensors and alerts: the automation that replaces the cron job."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from audit_pipeline.assets import daily, findings
from audit_pipeline.checks import freshness_checks, required_day
from audit_pipeline.corrections import FROM_THE_START, LogRow, earliest_affected_day, reaches_back_to
from audit_pipeline.definitions import defs
from audit_pipeline.resources import DatabaseResource
from audit_pipeline.sensors import SensorCursor, late_correction_sensor, run_failure_alert

from .builder import SourceBuilder, ist

IST = ZoneInfo("Asia/Kolkata")
ALL_ASSETS = [daily.daily_tables, findings.current_findings]


# --- the nightly schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tick, partition",
    [
        ("2026-11-25 01:00", "2026-11-24"),  # the nightly tick: the day that just ended
        ("2025-04-01 01:00", "2025-03-31"),  # fiscal year end
        ("2026-11-25 00:30", "2026-11-24"),  # just after IST midnight (still 2026-11-24 in UTC)
        ("2026-11-24 23:59", "2026-11-23"),  # just before IST midnight
    ],
)
def test_nightly_schedule_targets_the_day_that_ended(tick, partition):
    schedule = defs.resolve_schedule_def("nightly_audit_history")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 1 * * *", "Asia/Kolkata")
    when = dt.datetime.fromisoformat(tick).replace(tzinfo=IST)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == [partition]


# --- freshness --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now, day",
    [("2026-11-25 01:59", "2026-11-23"), ("2026-11-25 02:00", "2026-11-24"), ("2026-11-25 23:59", "2026-11-24")],
)
def test_freshness_deadline_is_2am_in_the_reporting_time_zone(now, day):
    assert required_day(dt.datetime.fromisoformat(now).replace(tzinfo=IST), IST) == dt.date.fromisoformat(day)


FRESHNESS = dg.AssetCheckKey(dg.AssetKey("dashboard_snapshot"), "yesterday_materialized_by_2am")


def test_freshness_check_fails_until_yesterday_is_materialized(engine, db_url):
    src = SourceBuilder(engine)
    src.tenant()
    required = required_day(dt.datetime.now(dt.timezone.utc), IST).isoformat()
    resources = {"database": DatabaseResource(url=db_url)}
    with dg.DagsterInstance.ephemeral() as instance:
        before = dg.materialize([*ALL_ASSETS, *freshness_checks], instance=instance, resources=resources,
                                selection=dg.AssetSelection.checks(FRESHNESS))
        assert [e.passed for e in before.get_asset_check_evaluations()] == [False]
        assert before.get_asset_check_evaluations()[0].metadata["required_day"].value == required
        assert before.success  # outside the freshness job a failed check is only recorded
        dg.materialize(ALL_ASSETS, instance=instance, resources=resources, partition_key=required,
                       selection=dg.AssetSelection.assets("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot"))
        after = dg.materialize([*ALL_ASSETS, *freshness_checks], instance=instance, resources=resources,
                               selection=dg.AssetSelection.checks(FRESHNESS))
        assert [e.passed for e in after.get_asset_check_evaluations()] == [True]


def test_the_freshness_run_fails_when_a_day_is_missing_at_the_deadline(engine, db_url):
    SourceBuilder(engine).tenant()
    required = required_day(dt.datetime.now(dt.timezone.utc), IST).isoformat()
    resources = {"database": DatabaseResource(url=db_url)}
    job = defs.resolve_job_def("freshness_check")
    with dg.DagsterInstance.ephemeral() as instance:
        # Only compliance_trend_daily is missing: its check fails, and so does the run.
        dg.materialize(ALL_ASSETS, instance=instance, resources=resources, partition_key=required,
                       selection=dg.AssetSelection.assets("observation_history", "requirement_history", "severity_snapshot",
                                                          "compliance_snapshot", "health_snapshot", "dashboard_snapshot",
                                                          "snapshot_change"))
        result = job.execute_in_process(instance=instance, resources=resources, raise_on_error=False)
        assert not result.success
        evaluations = {e.asset_key.to_user_string(): e.passed for e in result.get_asset_check_evaluations()}
        assert evaluations == {"severity_snapshot": True, "compliance_snapshot": True, "health_snapshot": True,
                               "dashboard_snapshot": True, "snapshot_change": True, "compliance_trend_daily": False}
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert f"{required} is not materialized" in failure.step_failure_data.error.message
        assert "compliance_trend_daily" in failure.step_failure_data.error.message
        # Once it is there, the run succeeds.
        dg.materialize(ALL_ASSETS, instance=instance, resources=resources, partition_key=required,
                       selection=dg.AssetSelection.assets("compliance_trend_daily"))
        assert job.execute_in_process(instance=instance, resources=resources).success


# --- which days a correction reaches back to ----------------------------------------------------------


def row(action="UPDATE", old=None, new=None, at="2026-11-24 10:00:00", table="observation", id=1):
    return LogRow(id, table, "o1", action, old, new, ist(at))


def test_an_ordinary_update_reaches_back_only_to_its_own_time():
    whole_old = {"id": "o1", "severity": "LOW", "created_at": "2024-05-01T10:00:00+05:30", "closed_at": None}
    whole_new = {**whole_old, "severity": "HIGH"}
    assert reaches_back_to(row(old=whole_old, new=whole_new)) == ist("2026-11-24 10:00:00")


def test_moving_closed_at_or_created_at_reaches_back_to_the_earlier_value():
    old = {"closed_at": "2025-03-10T12:00:00+05:30"}
    new = {"closed_at": "2025-01-05T09:00:00+05:30"}
    assert reaches_back_to(row(old=old, new=new)) == ist("2025-01-05 09:00:00")
    assert reaches_back_to(row(old={"closed_at": None}, new={"closed_at": "2025-02-01T00:00:00+05:30"})) == ist("2025-02-01 00:00:00")
    assert reaches_back_to(row(old={"created_at": "2025-06-01T10:00:00Z"}, new={"created_at": "2025-07-01T10:00:00Z"})) == dt.datetime(2025, 6, 1, 10, tzinfo=dt.timezone.utc)


def test_inserts_with_a_past_created_at_deletes_and_tenant_changes():
    assert reaches_back_to(row("INSERT", None, {"id": "o1", "created_at": "2024-12-31T23:59:59+05:30"})) == ist("2024-12-31 23:59:59")
    assert reaches_back_to(row("DELETE", {"id": "o1", "created_at": "2024-08-01T08:00:00+05:30"}, None)) == ist("2024-08-01 08:00:00")
    assert reaches_back_to(row("DELETE", None, None)) is FROM_THE_START
    tenant = row(table="tenant", old={"onboarding_completed": False}, new={"onboarding_completed": True})
    assert reaches_back_to(tenant, ist("2024-02-01 00:00:00")) == ist("2024-02-01 00:00:00")
    assert reaches_back_to(row(table="tenant", old={"created_at": "2025-01-01T00:00:00+05:30"}, new={"created_at": "2024-06-01T00:00:00+05:30"})) == ist("2024-06-01 00:00:00")


def test_earliest_affected_day_is_a_day_in_the_reporting_time_zone():
    rows = [row(old={"closed_at": None}, new={"closed_at": "2025-02-01T00:00:00+05:30"}),  # 2025-01-31 18:30 UTC
            row(old={"severity": "LOW"}, new={"severity": "HIGH"}, at="2026-11-24 10:00:00", id=2)]
    assert earliest_affected_day(rows, IST, dt.date(2024, 4, 1)) == dt.date(2025, 2, 1)
    assert earliest_affected_day([row("DELETE", None, None)], IST, dt.date(2024, 4, 1)) == dt.date(2024, 4, 1)
    assert earliest_affected_day([row(old="x", new=[1], at="2023-01-01 00:00:00")], IST, dt.date(2024, 4, 1)) == dt.date(2024, 4, 1)


# --- the late-correction sensor on a real database ------------------------------------------------------


@pytest.fixture
def materialized(engine, db_url):
    """Days 2024-06-01..2024-06-20 materialized in an instance; the sensor's cursor at the log's end."""
    src = SourceBuilder(engine)
    src.tenant()
    src.observation("o1", created="2024-06-01 10:00:00")
    src.log("observation", "o1", "2024-06-01 10:00:00", action="INSERT", new={"id": "o1", "severity": "HIGH"})
    resources = {"database": DatabaseResource(url=db_url)}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(ALL_ASSETS, instance=instance, resources=resources,
                                tags={"dagster/asset_partition_range_start": "2024-06-01",
                                      "dagster/asset_partition_range_end": "2024-06-20"})
        assert result.success
        yield src, instance, resources


def tick(instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return late_correction_sensor(context), context.cursor


def after(cursor: str) -> int:
    return SensorCursor.from_json(cursor).position.after


def test_first_tick_starts_after_the_existing_log(materialized):
    src, instance, resources = materialized
    result, cursor = tick(instance, resources, None)
    assert isinstance(result, dg.SkipReason) and "after id 1" in result.skip_message
    assert after(cursor) == 1


@pytest.mark.parametrize(
    "change, first_day",
    [
        # closed_at edited into the past
        (dict(old={"closed_at": None}, new={"closed_at": "2024-06-12T15:00:00+05:30"}), "2024-06-12"),
        # created_at moved earlier (IST midnight exactly)
        (dict(old={"created_at": "2024-06-01T10:00:00+05:30"}, new={"created_at": "2024-06-05T00:00:00+05:30"}), "2024-06-01"),
        # a record inserted with a past created_at
        (dict(action="INSERT", new={"id": "o2", "created_at": "2024-06-15T23:59:59+05:30", "severity": "LOW"}), "2024-06-15"),
        # a record deleted
        (dict(action="DELETE", old={"id": "o1", "created_at": "2024-06-03T08:00:00+05:30"}), "2024-06-03"),
        # a tenant's onboarding changed: all its days
        (dict(table="tenant", record="t1", old={"onboarding_completed": True}, new={"onboarding_completed": False}), "2024-06-01"),
        # a tenant's created_at changed: from the earlier of the two values
        (dict(table="tenant", record="t1", old={"created_at": "2024-06-18T10:00:00+05:30"}, new={"created_at": "2024-06-14T10:00:00+05:30"}), "2024-06-14"),
    ],
)
def test_each_kind_of_retroactive_change_requests_exactly_its_days(materialized, change, first_day):
    src, instance, resources = materialized
    _, cursor = tick(instance, resources, None)
    src.log(change.get("table", "observation"), change.get("record", "o1"), "2026-11-24 10:00:00",
            action=change.get("action", "UPDATE"), old=change.get("old"), new=change.get("new"))
    result, new_cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.RunRequest), result
    assert result.tags["dagster/asset_partition_range_start"] == first_day
    assert result.tags["dagster/asset_partition_range_end"] == "2024-06-20"
    assert result.run_key == "late-correction:2-2"
    assert after(new_cursor) == 2
    # Nothing new: nothing requested again, cursor unchanged.
    again, same_cursor = tick(instance, resources, new_cursor)
    assert isinstance(again, dg.SkipReason) and same_cursor == new_cursor


def test_new_rows_that_change_no_materialized_day_request_nothing(materialized):
    src, instance, resources = materialized
    _, cursor = tick(instance, resources, None)
    src.log("observation", "o1", "2026-11-24 10:00:00", old={"severity": "HIGH"}, new={"severity": "LOW"})
    result, new_cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "change no materialized day (earliest day they change: 2026-11-24; materialized through: 2024-06-20)" in result.skip_message
    assert after(new_cursor) == 2


def test_a_second_correction_of_the_same_days_gets_its_own_run_key(materialized):
    src, instance, resources = materialized
    _, cursor = tick(instance, resources, None)
    keys = []
    for i in range(2):
        src.log("observation", "o1", "2026-11-24 10:00:00", old={"closed_at": None}, new={"closed_at": "2024-06-10T10:00:00+05:30"})
        result, cursor = tick(instance, resources, cursor)
        keys.append(result.run_key)
    assert keys == ["late-correction:2-2", "late-correction:3-3"]


# --- failure alerts ---------------------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AUDIT_PIPELINE_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/alerts")
    yield Receiver.received
    server.shutdown()


def test_a_failed_run_is_posted_with_its_run_assets_days_and_error(webhook, tmp_path):
    empty = f"sqlite:///{tmp_path / 'no-tables.sqlite'}"  # no source tables: the run fails
    job = defs.resolve_job_def("audit_history")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance, resources={"database": DatabaseResource(url=empty)}, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-03"},
        )
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert", dagster_event=failure.event_log_entry.dagster_event,
            dagster_instance=instance, dagster_run=run,
        ).for_run_failure()
        run_failure_alert(context)
    assert len(webhook) == 1
    content_type, alert = webhook[0]
    assert content_type == "application/json"
    assert alert["run_id"] == result.run_id and alert["job"] == "audit_history"
    assert alert["days"] == "2024-06-01..2024-06-03"
    assert "severity_snapshot" in alert["assets"]
    assert any("no such table" in step["error"] for step in alert["failed_steps"])
