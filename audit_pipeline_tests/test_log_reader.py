"""The log reader reads every audit_log row once, whatever order transactions commit in; the sensor
acts on each correction once, when no run can have read the sources without it."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlalchemy import text

from audit_pipeline import log_reader, sensors
from audit_pipeline.log_reader import Gap, LogPosition, advance, read_new_rows, start_position
from audit_pipeline.partitions import RANGE_END_TAG, RANGE_START_TAG
from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import parse_database_url

from .builder import SourceBuilder, ist
from .test_automation import after, materialized, tick  # noqa: F401 (a fixture)

NOW = 1_000_000.0


# --- the position arithmetic, pure ------------------------------------------------------------------


def test_ids_passed_over_are_waited_for_and_read_when_they_appear():
    batch = advance(LogPosition(10), [11, 13, 16], [], limit=100, now=NOW)
    assert batch.position == LogPosition(16, (Gap(12, 12, NOW), Gap(14, 15, NOW)))
    later = advance(batch.position, [14, 17], [], limit=100, now=NOW + 60)
    assert later.position == LogPosition(17, (Gap(12, 12, NOW), Gap(15, 15, NOW)))
    assert later.given_up == ()


def test_an_id_missing_past_the_horizon_is_given_up_and_reported():
    position = LogPosition(16, (Gap(12, 12, NOW), Gap(14, 15, NOW + 100)))
    batch = advance(position, [], [], limit=100, now=NOW + log_reader.LATE_COMMIT_SECONDS + 50)
    assert batch.position == LogPosition(16, (Gap(14, 15, NOW + 100),))
    assert batch.given_up == (Gap(12, 12, NOW),)
    # A row that appears after that horizon of its sighting is still read if it comes before the
    # read that gives it up: the horizon counts from the first sighting, not from the last read.
    assert advance(position, [12], [], 100, NOW + 10 * log_reader.LATE_COMMIT_SECONDS).position.gaps == ()


def test_a_read_cut_short_by_its_limit_leaves_the_rest_for_the_next():
    position = LogPosition(10, (Gap(3, 8, NOW),))
    batch = advance(position, [4, 5], [], limit=2, now=NOW + 10 * log_reader.LATE_COMMIT_SECONDS)
    # 3 was looked at and is long missing; 6..8 and everything above 10 were not looked at.
    assert batch.position == LogPosition(10, (Gap(6, 8, NOW),))
    assert batch.given_up == (Gap(3, 3, NOW),)
    nxt = advance(LogPosition(10), [11, 12, 14], [], limit=3, now=NOW)
    assert nxt.position == LogPosition(14, (Gap(13, 13, NOW),))


def test_the_cursor_stays_bounded(monkeypatch):
    monkeypatch.setattr(log_reader, "MAX_GAP_RANGES", 3)
    batch = advance(LogPosition(0), [2, 4, 6, 8, 10], [], limit=100, now=NOW)
    assert [g.first for g in batch.position.gaps] == [5, 7, 9]
    assert [g.first for g in batch.given_up] == [1, 3]


def test_a_position_survives_its_json_and_reads_the_old_plain_cursor():
    position = LogPosition(42, (Gap(40, 41, NOW),))
    assert LogPosition.from_json(position.to_json()) == position
    assert LogPosition.from_json("17") == LogPosition(17)


# --- on a real database -----------------------------------------------------------------------------------


def insert_log(conn, id_, record="o1", at="2026-11-24 10:00:00", old=None, new=None):
    """An audit_log row as the application's trigger writes it, on the given connection."""
    conn.execute(
        text("INSERT INTO audit_log (id, tenant_id, table_name, record_id, action, old_data, new_data, changed_at) "
             "VALUES (:id, 't1', 'observation', :record, 'UPDATE', :old, :new, :at)"),
        dict(id=id_, record=record, old=old, new=new, at=ist(at)),
    )


CLOSED_IN_THE_PAST = dict(old='{"closed_at": null}', new='{"closed_at": "2024-06-12T15:00:00+05:30"}')
HARMLESS = dict(old='{"title": "a"}', new='{"title": "b"}')


def test_start_position_waits_for_ids_missing_at_the_end(engine):
    src = SourceBuilder(engine)
    src.tenant()
    with engine.begin() as conn:
        for id_ in (1, 2, 5):
            insert_log(conn, id_)
    with engine.connect() as conn:
        position = start_position(conn, now=NOW)
        assert position == LogPosition(5, (Gap(3, 4, NOW),))
        insert_log(conn, 4)
        conn.commit()
        batch = read_new_rows(conn, position, "id, record_id", limit=10, now=NOW + 1)
    assert batch.ids == [4] and batch.position == LogPosition(5, (Gap(3, 3, NOW),))


@pytest.fixture
def sensor_world(engine, materialized):
    """20 days materialized, the sensor started after the log's first row."""
    _, instance, resources = materialized
    _, cursor = tick(instance, resources, None)
    return engine, instance, resources, cursor


def test_a_lower_id_committed_after_a_higher_one_is_handled_on_the_next_tick(sensor_world, db_url):
    engine, instance, resources, cursor = sensor_world
    if engine.dialect.name == "postgresql":
        # Two real transactions: A takes id 2 first, B takes id 3 and commits first.
        slow = create_database_engine(parse_database_url(db_url))
        a = slow.connect()
        insert_log(a, 2, **CLOSED_IN_THE_PAST)
        with engine.begin() as b:
            insert_log(b, 3, **HARMLESS)
    else:  # SQLite has one writer at a time: what the reader sees is the same, id 3 before id 2.
        with engine.begin() as b:
            insert_log(b, 3, **HARMLESS)
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.SkipReason), result  # only the harmless row is visible
    assert after(cursor) == 3
    if engine.dialect.name == "postgresql":
        a.commit()
        a.close()
        slow.dispose()
    else:
        with engine.begin() as conn:
            insert_log(conn, 2, **CLOSED_IN_THE_PAST)
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.RunRequest), result
    assert (result.tags[RANGE_START_TAG], result.tags[RANGE_END_TAG]) == ("2024-06-12", "2024-06-20")
    assert result.run_key == "late-correction:2-2"
    # Acted on once: the next tick finds nothing, and waits for no id any more.
    again, cursor = tick(instance, resources, cursor)
    assert isinstance(again, dg.SkipReason) and "no new audit_log rows" in again.skip_message
    assert sensors.SensorCursor.from_json(cursor).position.gaps == ()


def test_a_rolled_back_id_does_not_hold_the_cursor_back_for_ever(sensor_world, monkeypatch):
    engine, instance, resources, cursor = sensor_world
    with engine.begin() as conn:
        insert_log(conn, 3, **HARMLESS)  # id 2 was rolled back: it never appears
    _, cursor = tick(instance, resources, cursor)
    gap = sensors.SensorCursor.from_json(cursor).position.gaps[0]
    assert (gap.first, gap.last) == (2, 2)
    monkeypatch.setattr(log_reader, "LATE_COMMIT_SECONDS", -1)  # the horizon has passed
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.SkipReason)
    assert sensors.SensorCursor.from_json(cursor).position == LogPosition(3)


def test_a_burst_larger_than_a_tick_is_handled_over_several_ticks_each_row_once(sensor_world, monkeypatch):
    engine, instance, resources, cursor = sensor_world
    monkeypatch.setattr(sensors, "LOG_ROWS_PER_TICK", 3)
    with engine.begin() as conn:
        for id_ in range(2, 10):
            at = f"2024-06-{id_ + 3:02d} 10:00:00"  # backdated: each row changes the days from its own day
            insert_log(conn, id_, at=at, old='{"severity": "HIGH"}', new='{"severity": "LOW"}')
    requests = []
    for _ in range(4):
        result, cursor = tick(instance, resources, cursor)
        if isinstance(result, dg.RunRequest):
            requests.append((result.run_key, result.tags[RANGE_START_TAG]))
    assert requests == [("late-correction:2-4", "2024-06-05"), ("late-correction:5-7", "2024-06-08"),
                        ("late-correction:8-9", "2024-06-11")]
    assert after(cursor) == 9


def test_a_correction_waits_for_a_run_that_read_the_sources_before_it(sensor_world):
    engine, instance, resources, cursor = sensor_world
    # A run writing days 2024-06-10..2024-06-25 started before the correction was seen (21..25 are
    # not materialized yet): re-running now would either miss those days or be overwritten.
    run = instance.create_run_for_job(_any_job(), tags={RANGE_START_TAG: "2024-06-10", RANGE_END_TAG: "2024-06-25"})
    instance.handle_run_event(run.run_id, _event(run, dg.DagsterEventType.RUN_START))
    with engine.begin() as conn:
        insert_log(conn, 2, **CLOSED_IN_THE_PAST)
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and run.run_id in result.skip_message
    # Still waiting, and the row is not read again.
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.SkipReason) and "no new audit_log rows" in result.skip_message
    assert "waiting" in result.skip_message
    instance.handle_run_event(run.run_id, _event(run, dg.DagsterEventType.RUN_SUCCESS))
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.RunRequest), result
    assert result.tags[RANGE_START_TAG] == "2024-06-12" and result.run_key == "late-correction:2-2"
    assert sensors.SensorCursor.from_json(cursor).pending is None


def test_a_run_started_after_the_correction_was_seen_is_not_waited_for(sensor_world):
    engine, instance, resources, cursor = sensor_world
    with engine.begin() as conn:
        insert_log(conn, 2, **CLOSED_IN_THE_PAST)
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.RunRequest)


def test_moving_a_finding_to_another_bank_reaches_back_to_its_creation(sensor_world):
    engine, instance, resources, cursor = sensor_world
    with engine.begin() as conn:  # a partial image: only the tenant; created_at comes from the live row
        insert_log(conn, 2, old='{"tenant_id": "t1"}', new='{"tenant_id": "t2"}')
    result, cursor = tick(instance, resources, cursor)
    assert isinstance(result, dg.RunRequest), result
    assert result.tags[RANGE_START_TAG] == "2024-06-01"  # o1 was created on 2024-06-01


def _any_job():
    from audit_pipeline.definitions import defs

    return defs.resolve_job_def("audit_history")


def _event(run, event_type):
    return dg.DagsterEvent(event_type.value, job_name=run.job_name)
