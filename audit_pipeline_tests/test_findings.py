"""Repeat-finding chains and engagement progress on hand-built histories, rebuilt whole and kept up
to date from the log."""

import datetime as dt

import dagster as dg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit_pipeline import current_state
from audit_pipeline.assets import findings
from audit_pipeline.current_state import CROSS_TENANT_CHECK, CYCLE_CHECK, update_current_findings
from audit_pipeline.resources import DatabaseResource

from .builder import SourceBuilder, rows, warehouse


def test_repeat_chains_of_length_one_to_four_cycles_and_other_tenants(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.tenant("onboarding", onboarded=False)
    src.observation("a", severity="low", created="2024-04-01 02:00:00")  # 2024-03-31 20:30 UTC
    src.observation("b", severity=" high ", repeat_of="a")
    src.observation("c", severity="MEDIUM", repeat_of="b")
    src.observation("d", severity="Critical", repeat_of="c")
    src.observation("self", severity="LOW", repeat_of="self")  # links to itself: a chain of one
    src.observation("p", severity="HIGH")
    src.observation("q", severity="LOW", repeat_of="p")
    src.link("p", "q")  # a cycle of two
    src.observation("foreign", tenant="t2", severity="HIGH")
    src.observation("x", severity="LOW", repeat_of="foreign")  # link into t2: no row, and a check
    src.observation("f", severity="LOW", repeat_of="foreign")
    src.observation("e", severity="HIGH", repeat_of="f")  # e -> f, then f -> t2: the chain stops at f
    src.observation("o1", tenant="onboarding", severity="LOW")
    src.observation("o2", tenant="onboarding", severity="LOW", repeat_of="o1")
    update_current_findings(warehouse(engine), full_rebuild=True)
    got = rows(engine, "repeat_finding", key="observation_id")
    assert set(got) == {"b", "c", "d", "self", "p", "q", "e"}
    summary = {k: (v["occurrence_count"], v["original_observation_id"], v["previous_severity"]) for k, v in got.items()}
    assert summary == {
        "b": (2, "a", "LOW"),
        "c": (3, "a", "HIGH"),
        "d": (4, "a", "MEDIUM"),
        "self": (1, "self", "LOW"),
        "p": (2, "q", "LOW"),
        "q": (2, "p", "HIGH"),
        "e": (2, "f", "LOW"),
    }
    assert got["d"]["current_severity"] == "CRITICAL" and got["b"]["current_severity"] == "HIGH"
    assert got["d"]["original_date"] == dt.date(2024, 4, 1)  # the IST day, not the UTC one
    assert (got["d"]["tenant_id"], got["d"]["title"], got["d"]["status"]) == ("t1", "Finding d", "OPEN")


def test_engagement_progress_counts_only_its_tenants_observations(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.tenant("onboarding", onboarded=False)
    src.engagement("e1", name="Credit review", status=" in_progress")
    src.engagement("e2")
    src.engagement("e3", tenant="onboarding")
    src.observation("open", engagement="e1")
    src.observation("closed", engagement="e1", closed="2024-06-01 10:00:00")
    src.observation("backwards", engagement="e1", created="2024-06-05 10:00:00", closed="2024-06-01 10:00:00")
    src.observation("other-tenant", tenant="t2", engagement="e1")
    update_current_findings(warehouse(engine), full_rebuild=True)
    got = rows(engine, "engagement_progress", key="engagement_id")
    assert got == {
        "e1": dict(tenant_id="t1", engagement_name="Credit review", engagement_status=" in_progress",
                   observation_count=3, open_count=1, closed_count=2),
        "e2": dict(tenant_id="t1", engagement_name="Engagement", engagement_status="IN_PROGRESS",
                   observation_count=0, open_count=0, closed_count=0),
    }


def test_rebuilding_whole_tables_replaces_them(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.engagement("e1")
    src.observation("a")
    src.observation("b", repeat_of="a", engagement="e1")
    w = warehouse(engine)
    update_current_findings(w, full_rebuild=True)
    src.link("b", None)
    update_current_findings(w, full_rebuild=True)
    assert rows(engine, "repeat_finding", key="observation_id") == {}
    assert rows(engine, "engagement_progress", key="engagement_id")["e1"]["observation_count"] == 1


# --- kept up to date from the log (current_state.py) ----------------------------------------------------


def summary(engine) -> dict:
    return {k: (v["occurrence_count"], v["original_observation_id"]) for k, v in
            rows(engine, "repeat_finding", key="observation_id").items()}


def progress(engine) -> dict:
    return {k: (v["observation_count"], v["open_count"], v["closed_count"]) for k, v in
            rows(engine, "engagement_progress", key="engagement_id").items()}


def rebuilt(engine, w) -> tuple[dict, dict]:
    """The tables as a rebuild gives them (the update's rows must be the same)."""
    before = summary(engine), progress(engine), rows(engine, "repeat_finding", key="observation_id")
    assert update_current_findings(w, full_rebuild=True).mode == "rebuild"
    assert (summary(engine), progress(engine), rows(engine, "repeat_finding", key="observation_id")) == before
    return before[:2]


def test_an_update_derives_descendants_changed_tenants_and_engagements_again(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2", onboarded=False)
    src.engagement("e1")
    src.engagement("e2")
    src.observation("a", engagement="e1")
    src.observation("b", repeat_of="a", engagement="e1")
    src.observation("c", repeat_of="b")
    src.observation("d", repeat_of="c", engagement="e2", closed="2024-06-01 10:00:00")
    src.observation("x", tenant="t2")
    src.observation("y", tenant="t2", repeat_of="x")
    w = warehouse(engine)
    first = update_current_findings(w)
    assert (first.mode, first.reason) == ("rebuild", "no copy of the current state yet")
    assert summary(engine) == {"b": (2, "a"), "c": (3, "a"), "d": (4, "a")}
    assert progress(engine) == {"e1": (2, 2, 0), "e2": (1, 0, 1)}

    # b's link cut: c and d, which no log row names, are derived again through b.
    src.link("b", None)
    src.log("observation", "b", "2024-06-05 10:00:00", new={"repeat_of_id": None})
    update = update_current_findings(w)
    assert (update.mode, update.log_rows_read, update.observations_touched, update.observations_derived) == ("update", 1, 1, 3)
    assert summary(engine) == {"c": (2, "b"), "d": (3, "b")}

    # a linked to d and b to a again: four observations on a cycle, each chain of four.
    src.link("a", "d")
    src.link("b", "a")
    src.log("observation", "a", "2024-06-05 11:00:00", new={"repeat_of_id": "d"})
    src.log("observation", "b", "2024-06-05 11:00:00", new={"repeat_of_id": "a"})
    update = update_current_findings(w)
    assert summary(engine) == {"a": (4, "b"), "b": (4, "c"), "c": (4, "d"), "d": (4, "a")}
    assert [id_ for _, id_, _ in update.problems[CYCLE_CHECK]] == ["a", "b", "c", "d"]

    # c deleted (its child's link dangles or is nulled: the same); d moved to e1 and reopened.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM observation WHERE id = 'c'"))
        conn.execute(text("UPDATE observation SET engagement_id = 'e1', closed_at = NULL WHERE id = 'd'"))
    src.log("observation", "c", "2024-06-05 12:00:00", action="DELETE")
    src.log("observation", "d", "2024-06-05 12:00:01", new={"engagement_id": "e1", "closed_at": None})
    update = update_current_findings(w)
    assert update.problems[CYCLE_CHECK] == []
    assert summary(engine) == {"a": (2, "d"), "b": (3, "d")}
    assert progress(engine) == {"e1": (3, 3, 0), "e2": (0, 0, 0)}

    # Without any log row: t2 onboarded, e2 renamed and moved to t2.
    with engine.begin() as conn:
        conn.execute(text("UPDATE tenant SET onboarding_completed = TRUE WHERE id = 't2'"))
        conn.execute(text("UPDATE audit_engagement SET name = 'Moved', tenant_id = 't2' WHERE id = 'e2'"))
    update = update_current_findings(w)
    assert (update.log_rows_read, update.tenants_changed, update.engagements_derived) == (0, 1, 1)
    assert summary(engine) == {"a": (2, "d"), "b": (3, "d"), "y": (2, "x")}
    assert rows(engine, "engagement_progress", key="engagement_id")["e2"]["engagement_name"] == "Moved"
    assert rebuilt(engine, w) == (summary(engine), progress(engine))


def test_a_rebuild_on_request_on_a_new_time_zone_and_above_the_backlog(engine):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.observation("a", created="2024-04-01 02:00:00")  # 2024-03-31 in UTC
    src.observation("b", repeat_of="a")
    w = warehouse(engine)
    assert update_current_findings(w).mode == "rebuild"
    assert update_current_findings(w).mode == "update"
    assert update_current_findings(w, full_rebuild=True).reason == "full rebuild requested"
    # original_date is a day of the reporting time zone: another zone derives every row again.
    utc = warehouse(engine, AUDIT_PIPELINE_TIMEZONE="UTC")
    assert update_current_findings(utc).reason == "the reporting time zone changed from Asia/Kolkata to UTC"
    assert rows(engine, "repeat_finding", key="observation_id")["b"]["original_date"] == dt.date(2024, 3, 31)
    for i in range(3):
        src.log("observation", "b", f"2024-06-05 10:00:0{i}")
    assert update_current_findings(utc, max_update_rows=3).reason == "more than 3 new log rows"
    assert update_current_findings(utc, max_update_rows=3).mode == "update"
    with engine.begin() as conn:  # the pipeline's copy lost (dropped and created again)
        conn.execute(text("DELETE FROM current_observation"))
    assert update_current_findings(utc).reason == "the copy of the observations is empty"
    assert rows(engine, "repeat_finding", key="observation_id")["b"]["occurrence_count"] == 2
    # Each consumer has its own position: the record history's is still there.
    with engine.connect() as conn:
        consumers = set(conn.execute(text("SELECT consumer FROM history_log_position")).scalars())
    assert consumers == {"record_history", "current_findings"}


def test_a_failed_update_leaves_the_tables_and_the_position_as_they_were(engine, monkeypatch):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.observation("a")
    src.observation("b", repeat_of="a")
    w = warehouse(engine)
    update_current_findings(w)
    src.link("b", None)
    src.log("observation", "b", "2024-06-05 10:00:00")

    statements = current_state.update_statements

    def failing(w):  # the copy and repeat_finding are written, then a statement fails
        return [*statements(w)[:-2], "SELECT * FROM no_such_table"]

    monkeypatch.setattr(current_state, "update_statements", failing)
    with pytest.raises(DBAPIError):
        update_current_findings(w)
    assert summary(engine) == {"b": (2, "a")}
    monkeypatch.undo()
    update = update_current_findings(w)
    assert (update.mode, update.log_rows_read) == ("update", 1)  # the same row, read again
    assert summary(engine) == {}


def test_the_asset_updates_both_tables_and_reports_the_checks_from_its_copy(engine, db_url):
    src = SourceBuilder(engine)
    src.tenant("t1")
    src.tenant("t2")
    src.engagement("e1")
    src.observation("a", engagement="e1")
    src.observation("b", repeat_of="a")
    src.observation("other", tenant="t2")
    resources = {"database": DatabaseResource(url=db_url)}

    def run(selection, **config):
        result = dg.materialize([findings.current_findings], resources=resources, selection=selection,
                                run_config={"ops": {"current_findings": {"config": config}}} if config else None)
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        return {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("current_findings")}, checks

    materialized, checks = run([findings.repeat_finding.key, findings.engagement_progress.key])
    assert materialized["repeat_finding"]["mode"].value == "rebuild"
    assert materialized["repeat_finding"]["dagster/row_count"].value == 1
    assert checks[CROSS_TENANT_CHECK].passed and checks[CYCLE_CHECK].passed
    src.link("a", "other")
    src.log("observation", "a", "2024-06-05 10:00:00")
    # One table selected: both are brought up to date (they share the log position), one reported.
    materialized, checks = run([findings.engagement_progress.key])
    assert set(materialized) == {"engagement_progress"} and checks == {}
    assert materialized["engagement_progress"]["log_rows_read"].value == 1
    materialized, checks = run([findings.repeat_finding.key], full_rebuild=True)
    assert materialized["repeat_finding"]["reason"].value == "full rebuild requested"
    assert not checks[CROSS_TENANT_CHECK].passed and checks[CROSS_TENANT_CHECK].metadata["count"].value == 1
    assert "cross-tenant link: a (other)" in checks[CROSS_TENANT_CHECK].metadata["examples"].value


def test_backfill_rebuild_history_rebuilds_the_current_state_too(engine, db_url, tmp_path, monkeypatch, capsys):
    """`audit-pipeline backfill --rebuild-history` (in this process: the run config is the point)."""
    from audit_pipeline import bookkeeping, cli

    src = SourceBuilder(engine)
    src.tenant("t1")
    src.observation("a")
    src.observation("b", repeat_of="a")
    monkeypatch.setenv("AUDIT_PIPELINE_DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    for name in bookkeeping.SETTINGS:  # the CLI sets them in its process: restored after the test
        monkeypatch.setenv(name, bookkeeping.SETTINGS[name])
    args = ["backfill", "--start", "2024-06-01", "--end", "2024-06-02"]
    reasons = []
    for extra in ([], [], ["--rebuild-history"]):
        assert cli.main([*args, *extra]) == 0, capsys.readouterr().err
        with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
            event = instance.get_latest_materialization_event(findings.repeat_finding.key)
            reasons.append(event.asset_materialization.metadata["reason"].value)
    assert reasons == ["no copy of the current state yet", "new log rows", "full rebuild requested"]
