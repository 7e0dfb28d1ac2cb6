"""The Dagster UI in a real browser: the webserver on the demo database, driven by headless Chromium.

Finds the assets in the asset graph, the schedules and sensors, launches a backfill of a few days of
the daily assets from the UI, waits for it to succeed and finds the day's changes previewed on
snapshot_change's page. Screenshots go to
test-artifacts/ui/. Needs Debian's `chromium` (.ci/run installs it); without it the test is skipped
with the reason, unless AUDIT_PIPELINE_REQUIRE_BROWSER=1 (CI), which makes that a failure.
"""

import datetime as dt
import os
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import text

from audit_pipeline.calendar import last_complete_day
from audit_pipeline.demo_data import HISTORY_END
from audit_pipeline.resources import create_database_engine
from audit_pipeline.settings import load_settings

from .builder import instance_at
from .dagster_dev import dagster_dev
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("AUDIT_PIPELINE_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSETS = ["observation_history", "requirement_history", "severity_snapshot", "compliance_snapshot",
          "health_snapshot", "dashboard_snapshot", "snapshot_change", "compliance_trend_daily",
          "severity_trend_quarterly", "repeat_finding", "engagement_progress", "legacy_snapshot_diff"]
GROUPS = ["history", "daily_snapshots", "trends", "findings", "cutover"]
AUTOMATIONS = ["nightly_audit_history", "freshness_at_2am", "late_correction_sensor", "run_failure_alert"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_unavailable_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    reason = browser_unavailable_reason()
    if reason:
        if os.environ.get("AUDIT_PIPELINE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (AUDIT_PIPELINE_REQUIRE_BROWSER=1: the browser test must run)")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("ui")
    try:
        with dagster_dev(work) as started:
            yield started
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "dagster-dev.log", ARTIFACTS / "dagster-dev.log")


@pytest.fixture(scope="module")
def page(webserver):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def dismiss_welcome(page):
    page.wait_for_timeout(2000)
    skip = page.get_by_role("button", name="Skip")
    if skip.count():  # the first visit's "Join the Dagster community" dialog
        skip.click()


def found(page, names):
    return [n for n in names if page.get_by_text(n, exact=True).count()]


def test_asset_graph_shows_the_assets(webserver, page):
    base, _, _ = webserver
    page.goto(f"{base}/asset-groups")
    page.get_by_text("daily_snapshots", exact=True).first.wait_for()
    dismiss_welcome(page)
    # Groups start collapsed; each group node in the graph has an "unfold_more" button.
    for _ in range(len(GROUPS)):
        unfold = page.locator("[aria-label=unfold_more]")
        if not unfold.count():
            break
        unfold.first.dispatch_event("click")  # the side panel's divider may overlap a group node
        page.wait_for_timeout(1500)
    # The graph renders only the nodes in view: zoom out for the picture, and open the sidebar's
    # tree of the graph, which lists every asset.
    for _ in range(3):
        page.locator("[aria-label=zoom_out]").first.click()
        page.wait_for_timeout(300)
    carets = page.locator("[class*=AssetSidebarNode_itemContainer] button:has([aria-label=arrow_drop_down])")
    for k in range(carets.count()):
        carets.nth(k).click()
        page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "01-asset-graph.png"))
    assert found(page, ASSETS) == ASSETS


def test_automation_shows_schedules_and_sensors(webserver, page):
    base, _, _ = webserver
    page.goto(f"{base}/automation")
    page.get_by_text("nightly_audit_history", exact=True).wait_for()
    dismiss_welcome(page)
    page.screenshot(path=str(ARTIFACTS / "02-automation.png"))
    assert found(page, AUTOMATIONS) == AUTOMATIONS
    assert page.get_by_text("At 01:00 AM", exact=False).count()  # in the reporting time zone, GMT+5:30


def materialize_from_the_ui(page, base, home, group: str, first_day: dt.date, last_day: dt.date):
    """An asset group's "Materialize all" for a range of days, as an operator launches it (one day:
    a run; several: a backfill); its backfill (None for a run) and runs, once they have ended."""
    page.goto(f"{base}/locations/audit_pipeline/asset-groups/{group}")
    page.get_by_role("button", name="Materialize all").wait_for()
    dismiss_welcome(page)
    page.get_by_role("button", name="Materialize all").click()
    partitions = page.get_by_placeholder("No matching partitions")
    partitions.fill(f"[{first_day}...{last_day}]")
    partitions.press("Enter")
    days = (last_day - first_day).days + 1
    page.get_by_text(f"{days} partition{'s' if days > 1 else ''}").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / f"03-launch-{group}.png"))
    with instance_at(home) as instance:
        before = {r.run_id for r in instance.get_runs()}
        page.get_by_role("button", name="Launch 1 run" if days == 1 else "Launch backfill").click()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            backfill = instance.get_backfills()[0] if days > 1 and instance.get_backfills() else None
            runs = [r for r in instance.get_runs() if r.run_id not in before]
            if (backfill.status.value != "REQUESTED" if backfill else runs and all(r.is_finished for r in runs)):
                break
            time.sleep(2)
        if backfill:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    return backfill, runs


def test_a_backfill_launched_from_the_ui_succeeds(webserver, page):
    base, home, database = webserver
    last = last_complete_day(load_settings().tz)
    # An operator's first step: the record history the daily snapshots are counted from. Any of its
    # days brings the whole history up to date (one run of the daily tables' step).
    _, runs = materialize_from_the_ui(page, base, home, "history", last, last)
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    # Days on which the demo's application was still active (its data ends on HISTORY_END): the
    # next test reads their changes.
    active = HISTORY_END.date()
    first_day, last_day = active - dt.timedelta(days=4), active - dt.timedelta(days=2)
    backfill, runs = materialize_from_the_ui(page, base, home, "daily_snapshots", first_day, last_day)
    statuses = [r.status for r in runs]
    page.goto(f"{base}/runs/b/{backfill.backfill_id}?tab=runs")
    page.wait_for_timeout(3000)
    page.screenshot(path=str(ARTIFACTS / "04-backfill-done.png"))
    assert backfill.status.value == "COMPLETED_SUCCESS", statuses
    assert statuses == [dg.DagsterRunStatus.SUCCESS]  # a range of days is one run
    engine = create_database_engine(URL.create("sqlite", database=str(database)))
    with engine.connect() as conn:
        days = conn.execute(text("SELECT count(DISTINCT snapshot_date) FROM dashboard_snapshot")).scalar_one()
    engine.dispose()
    assert days == 3


def test_the_runs_changes_and_largest_movements_show_on_the_asset_page(webserver, page):
    base, _, _ = webserver  # after the backfill above, which materialized snapshot_change
    page.goto(f"{base}/assets/snapshot_change?view=events")
    page.get_by_text("changes_opened").first.wait_for()
    dismiss_welcome(page)
    page.screenshot(path=str(ARTIFACTS / "05-snapshot-change-metadata.png"))
    assert page.get_by_text("largest movements (first 10)").count()
    # The markdown is rendered (in the table, or behind "Show Markdown" when it is long): tenant,
    # day, health before -> after, changes.
    show = page.get_by_text("[Show Markdown]")
    if show.count():
        show.first.click()
    preview = page.get_by_text(re.compile(r"health .* → .*, \d+ changes?"))
    preview.first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "06-largest-movements.png"))
    assert preview.count(), "no rendered preview of the largest movements"
