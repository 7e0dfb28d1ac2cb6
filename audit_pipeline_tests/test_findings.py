"""Repeat-finding chains and engagement progress on hand-built histories."""

import datetime as dt

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
    warehouse(engine).writer.repeat_finding()
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
    warehouse(engine).writer.engagement_progress()
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
    w.writer.repeat_finding(), w.writer.engagement_progress()
    src.link("b", None)
    w.writer.repeat_finding(), w.writer.engagement_progress()
    assert rows(engine, "repeat_finding", key="observation_id") == {}
    assert rows(engine, "engagement_progress", key="engagement_id")["e1"]["observation_count"] == 1
