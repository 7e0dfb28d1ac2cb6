"""The performance benchmark: full history and one nightly day against both floors, per scale, and
the production paths (the daemon, the UI's backfill) beside the CLI.

    .venv/bin/python benchmarks/run.py [--scales 1 5 10] [--deployed-scales 10] [--prefix audit_bench]
                                       [--admin-url postgresql://root@127.0.0.1:5432/postgres] [--drop]

For each scale it reuses (or generates) the demo data in database <prefix>_s<scale>, starts from
empty output tables and a fresh Dagster instance with PostgreSQL storage (deploy/dagster.yaml), and
measures, each as a whole process:
- the full-history backfill (`audit-pipeline backfill`, as an operator runs it), its seconds in SQL
  (the assets' and checks' own timings) and in Dagster (the rest), and its peak RSS;
- one nightly partition (the last complete day), once the database has settled after the whole
  history (`settle`: vacuum, statistics and a checkpoint, which it would otherwise do during the
  night's run), in five pairs with the one-day floor below, one after the other;
- the bookkeeping floor: one run of five daily assets with empty bodies over the same days, with
  Dagster's default settings (benchmarks/empty_assets.py), on an instance of its own; then the same
  for one day, the floor of a night;
- the I/O floor: reading every source table once (COPY ... TO STDOUT) plus writing every output
  row once (CREATE TABLE ... AS SELECT of each output table).
For each deployed scale it then starts the code server, the webserver and the daemon as the README's
Deploy section does (benchmarks/deployment.py), on a fresh instance, and measures in pairs, the CLI
and the deployed path one after the other on the same instance:
- the nightly run: `audit-pipeline backfill` of the last day (process seconds) against the same day
  launched through the webserver and the daemon (a queued run of the audit_history job, executed by a
  run worker: the schedule's path from the queue on): the run's seconds from start to end as the UI
  shows them, and from being queued to its end;
- the whole history: `audit-pipeline backfill` against an asset backfill of every asset over
  every day, launched as the UI's "Materialize" does (launchPartitionBackfill) and executed by the
  daemon: seconds from the launch to the end of its last run (the data is complete) and to the
  backfill's completion, and when the daemon's first iteration picked it up (it loops every 30 s).
It prints the tables and the load average. Nothing here is a test: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
from audit_pipeline.bookkeeping import SETTINGS as BOOKKEEPING_SETTINGS  # noqa: E402
SOURCE_TABLES = ("tenant", "audit_engagement", "observation", "compliance_requirement", "audit_log")
OUTPUT_TABLES = ("observation_history", "requirement_history",
                 "severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot", "snapshot_change",
                 "compliance_trend_daily", "severity_trend_quarterly", "repeat_finding", "engagement_progress",
                 "legacy_snapshot_diff")
# The pipeline's own tables (the record history's and the current-state tables'): dropped with the outputs, so
# that a full history starts from scratch.
INTERNAL_TABLES = ("history_log_value", "history_log_position", "current_observation", "current_onboarded_tenant")
FIRST_DAY = "2024-04-01"
NIGHT_PAIRS = 5  # nights and one-day floors, one after the other
DAEMON_LOOP_SECONDS = 30  # the backfill daemon's loop (dagster/_daemon/backfill.py), not configurable


def connect(url: str, database: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password or None,
                           dbname=database or u.database, autocommit=autocommit)


def url_for(admin_url: str, database: str) -> str:
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=database).render_as_string(hide_password=False)


def ensure_demo(admin_url: str, prefix: str, scale: int, history_factor: int = 1) -> str:
    name = f"{prefix}_s{scale}" + (f"_h{history_factor}" if history_factor > 1 else "")
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = url_for(admin_url, name)
    with connect(admin_url, name) as conn:
        has_data = conn.execute("SELECT to_regclass('audit_log') IS NOT NULL").fetchone()[0]
    if not has_data:
        began = time.perf_counter()
        run([str(BIN / "audit-pipeline"), "demo-data", "--url", url, "--scale", str(scale),
             "--history-factor", str(history_factor)])
        print(f"  scale {scale}: demo data generated in {time.perf_counter() - began:.0f} s", flush=True)
    drop_outputs(url)
    settle(url)
    return url


def settle(url: str) -> None:
    """What the database does in its own time after a large write, done before a measurement starts:
    vacuum and statistics (else autovacuum works through millions of new rows beside the next run)
    and a checkpoint (else the writes of the last run are flushed during the next). A night runs a
    day after the previous one, not seconds after a whole history."""
    with connect(url, make_url(url).database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def drop_outputs(url: str) -> None:
    """Every whole-history backfill starts from no output tables."""
    with connect(url, make_url(url).database, autocommit=True) as conn:
        for table in (*OUTPUT_TABLES, *INTERNAL_TABLES):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def fresh_instance(admin_url: str, prefix: str, scale: int, role: str = "") -> tuple[Path, dict]:
    name = f"{prefix}_dagster{'_' + role if role else ''}_s{scale}"
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    home = Path(tempfile.mkdtemp(prefix=f"bench-home-s{scale}-"))
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    u = make_url(admin_url)
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_USERNAME": u.username, "DAGSTER_PG_PASSWORD": u.password or "",
           "DAGSTER_PG_HOST": u.host, "DAGSTER_PG_PORT": str(u.port or 5432), "DAGSTER_PG_DB": name}
    return home, env


def run(args: list[str], env: dict | None = None, inherit: bool = True) -> tuple[float, int, str]:
    """Run a process (with this process's environment and `env`, or `env` alone); its wall seconds,
    peak RSS (MB) and output."""
    began = time.perf_counter()
    process = subprocess.Popen(args, env={**(os.environ if inherit else {}), **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output_chunks = []
    assert process.stdout is not None
    for line in process.stdout:
        output_chunks.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    output = "".join(output_chunks)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{output[-3000:]}")
    return seconds, usage.ru_maxrss // 1024, output


def io_floor(url: str) -> float:
    """Read each source table once, write each output table's rows once."""
    database = make_url(url).database
    with connect(url, database) as conn:
        began = time.perf_counter()
        for table in SOURCE_TABLES:
            with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                for _ in copy:
                    pass
        for table in OUTPUT_TABLES:
            conn.execute(f"CREATE TEMP TABLE floor_{table} AS SELECT * FROM {table}")
        seconds = time.perf_counter() - began
        conn.rollback()
    return seconds


def counts(url: str, tables) -> int:
    with connect(url, make_url(url).database) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


def last_complete_day() -> str:
    from audit_pipeline.calendar import last_complete_day as last
    from audit_pipeline.settings import load_settings

    return last(load_settings().tz).isoformat()


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def without_bookkeeping_settings() -> dict:
    """Dagster's defaults, whatever this process's environment says (the floor is measured on them)."""
    return {k: v for k, v in os.environ.items() if k not in BOOKKEEPING_SETTINGS}


def bench(admin_url: str, prefix: str, scale: int, history_factor: int = 1) -> dict:
    print(f"scale {scale}, history x{history_factor} ({load()})", flush=True)
    url = ensure_demo(admin_url, prefix, scale, history_factor)
    last = last_complete_day()
    cli = [str(BIN / "audit-pipeline"), "backfill"]

    home, env = fresh_instance(admin_url, prefix, scale)
    env["AUDIT_PIPELINE_DATABASE_URL"] = url
    backfill_s, rss_mb, output = run([*cli, "--start", FIRST_DAY, "--end", last], env)
    sql_s = float(re.search(r"\(([\d.]+) s in SQL", output).group(1))
    print(f"  backfill {backfill_s:.1f} s ({sql_s:.1f} s in SQL), peak RSS {rss_mb} MB", flush=True)
    settle(url)
    floor_io = io_floor(url)
    output_rows = counts(url, OUTPUT_TABLES)

    floor_home, floor_env = fresh_instance(admin_url, prefix, scale, role="floor")  # the floor's own instance
    floor_env = {**without_bookkeeping_settings(), **floor_env, "PYTHONPATH": str(ROOT)}
    empty_assets = [sys.executable, str(ROOT / "benchmarks" / "empty_assets.py")]
    floor_bk, _, _ = run([*empty_assets, FIRST_DAY, last], floor_env, inherit=False)
    print(f"  floors: bookkeeping {floor_bk:.1f} s, I/O {floor_io:.1f} s ({load()})", flush=True)
    # One night against Dagster's floor for one night (the same empty assets, one day), each as a
    # whole process on its instance after its whole history, in pairs one after the other: the
    # machine's speed drifts by more than the difference measured. Medians of the pairs.
    nightly_runs, floor_runs = [], []
    for _ in range(NIGHT_PAIRS):
        nightly_runs.append(run([*cli, "--start", last, "--end", last], env)[0])
        floor_runs.append(run([*empty_assets, last, last], floor_env, inherit=False)[0])
    nightly_s, floor_nightly = statistics.median(nightly_runs), statistics.median(floor_runs)
    over = statistics.median(n - f for n, f in zip(nightly_runs, floor_runs))
    print(f"  nightly {nightly_s:.2f} s against the one-day floor {floor_nightly:.2f} s, {over:+.2f} s (pairs: "
          f"{', '.join(f'{n:.2f}/{f:.2f}' for n, f in zip(nightly_runs, floor_runs))}) ({load()})", flush=True)
    shutil.rmtree(home)
    shutil.rmtree(floor_home)

    with connect(url, make_url(url).database) as conn:
        tenants = conn.execute("SELECT count(*) FROM tenant").fetchone()[0]
    from datetime import date
    budget = 0.2 * floor_bk + 3 * floor_io
    return dict(
        scale=scale, days=(date.fromisoformat(last) - date.fromisoformat(FIRST_DAY)).days + 1, tenants=tenants,
        source_rows=counts(url, SOURCE_TABLES), output_rows=output_rows, backfill=backfill_s, sql=sql_s,
        dagster=backfill_s - sql_s, floor_bookkeeping=floor_bk, floor_io=floor_io,
        budget=budget, of_budget=backfill_s / budget, nightly=nightly_s, floor_nightly=floor_nightly,
        nightly_over_floor=over, rss_mb=rss_mb,
        history=f"x{history_factor}", sql_per_io=sql_s / floor_io,
        us_per_row=1e6 * sql_s / output_rows,
    )


@contextlib.contextmanager
def instance_at(home: Path, env: dict):
    """The instance at `home`, opened in this process (its yaml reads DAGSTER_PG_* from the environment)."""
    import dagster as dg

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        os.environ.clear()
        os.environ.update(saved)


def wait_for(predicate, timeout: float = 1800, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for a deployed run")
        time.sleep(interval)
    return value


def daemon_nightly(web, instance, day: str) -> dict:
    """The nightly partition through the webserver, the run queue, the daemon and a run worker."""
    launched = time.time()
    run_id = web.launch_run("audit_history", {"dagster/partition": day})
    record = wait_for(lambda: (r := instance.get_run_record_by_id(run_id)) and r.dagster_run.is_finished and r)
    if record.dagster_run.status.value != "SUCCESS":
        raise SystemExit(f"deployed nightly run {run_id} ended {record.dagster_run.status.value}")
    return {"run": record.end_time - record.start_time, "queued_to_end": record.end_time - record.create_timestamp.timestamp(),
            "launch_to_end": record.end_time - launched}


def ui_backfill(web, instance, days: list[str]) -> dict:
    """Every asset over `days`, an asset backfill as the UI launches it, executed by the daemon."""
    import dagster as dg

    launched = time.time()
    backfill_id = web.launch_asset_backfill(list(OUTPUT_TABLES), days)
    backfill = wait_for(lambda: (b := instance.get_backfill(backfill_id)) and b.status.value != "REQUESTED" and b, interval=0.5)
    if backfill.status.value != "COMPLETED_SUCCESS":
        raise SystemExit(f"backfill {backfill_id} ended {backfill.status.value}")
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    runs = sorted((r.create_timestamp.timestamp() - launched, r.start_time - launched, r.end_time - launched,
                   len(r.dagster_run.asset_selection or ())) for r in records)
    return {"data_complete": max(end for _, _, end, _ in runs), "completed": backfill.backfill_end_timestamp - launched,
            "first_iteration": runs[0][0], "runs": runs}


def bench_deployed(admin_url: str, prefix: str, scale: int, pairs_nightly: int = 3, pairs_backfill: int = 2) -> dict:
    from deployment import deployment  # benchmarks/deployment.py

    from audit_pipeline.partitions import daily_partitions

    print(f"scale {scale}, deployed (code server, webserver, daemon) beside the CLI ({load()})", flush=True)
    url = ensure_demo(admin_url, prefix, scale)
    last = last_complete_day()
    days = [day for day in daily_partitions.get_partition_keys() if FIRST_DAY <= day <= last]
    cli = [str(BIN / "audit-pipeline"), "backfill"]
    home, env = fresh_instance(admin_url, prefix, scale)
    # The Deploy section's environment for the three processes; the CLI gets the same.
    env = {**env, "AUDIT_PIPELINE_DATABASE_URL": url, **BOOKKEEPING_SETTINGS}
    cli_nightly, dmn_nightly, cli_backfill, ui = [], [], [], []
    with instance_at(home, env) as instance, deployment(home, env, instance) as web:
        print(f"  deployment up ({load()})", flush=True)
        # A night follows a materialized history: the first run on dropped outputs rebuilds it (not a night).
        warm_up = run([*cli, "--start", last, "--end", last], env)[0]
        print(f"  warm-up (builds the record history): CLI {warm_up:.1f} s", flush=True)
        settle(url)
        for i in range(pairs_nightly):  # A B A B: the same day, the same instance, one after the other
            cli_nightly.append(run([*cli, "--start", last, "--end", last], env)[0])
            dmn_nightly.append(daemon_nightly(web, instance, last))
            print(f"  nightly pair {i + 1}: CLI {cli_nightly[-1]:.2f} s; daemon run {dmn_nightly[-1]['run']:.2f} s "
                  f"(queued to end {dmn_nightly[-1]['queued_to_end']:.2f} s) ({load()})", flush=True)
        for i in range(pairs_backfill):
            drop_outputs(url)
            cli_backfill.append(run([*cli, "--start", FIRST_DAY, "--end", last], env)[0])
            drop_outputs(url)
            ui.append(ui_backfill(web, instance, days))
            runs = "; ".join(f"{n} assets: queued +{c:.1f}, ran +{s:.1f}..+{e:.1f}" for c, s, e, n in ui[-1]["runs"])
            print(f"  whole-history pair {i + 1}: CLI {cli_backfill[-1]:.1f} s; UI backfill: data complete "
                  f"{ui[-1]['data_complete']:.1f} s, backfill completed {ui[-1]['completed']:.1f} s, first daemon "
                  f"iteration +{ui[-1]['first_iteration']:.1f} s [{runs}] ({load()})", flush=True)
    shutil.rmtree(home)
    median = statistics.median
    return dict(
        scale=scale, days=len(days),
        cli_nightly=median(cli_nightly), daemon_nightly_run=median(d["run"] for d in dmn_nightly),
        daemon_nightly_queued=median(d["queued_to_end"] for d in dmn_nightly),
        nightly_over_cli=median(d["run"] - c for d, c in zip(dmn_nightly, cli_nightly)),
        cli_backfill=median(cli_backfill), ui_data_complete=median(u["data_complete"] for u in ui),
        ui_completed=median(u["completed"] for u in ui), first_iteration=median(u["first_iteration"] for u in ui),
        ui_over_cli=median(u["data_complete"] / c for u, c in zip(ui, cli_backfill)),
        ui_completed_over_cli=median(u["completed"] / c for u, c in zip(ui, cli_backfill)),
        # A backfill waits 0..30 s for the daemon to take it up, depending on when it is launched;
        # everything after that is relative to that moment. The same pairs with the longest wait:
        ui_worst_over_cli=median((u["data_complete"] - u["first_iteration"] + DAEMON_LOOP_SECONDS) / c
                                 for u, c in zip(ui, cli_backfill)),
        ui_completed_worst_over_cli=median((u["completed"] - u["first_iteration"] + DAEMON_LOOP_SECONDS) / c
                                           for u, c in zip(ui, cli_backfill)),
    )


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt.format(row[name]) for name, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="*", default=[1, 5, 10])
    parser.add_argument("--deployed-scales", type=int, nargs="*", default=[10])
    parser.add_argument("--long-history", type=int, nargs="*", default=[10], metavar="SCALE",
                        help="also these scales with a history three times as long (same activity per day)")
    parser.add_argument("--prefix", default="audit_bench", help="names of the benchmark's databases: <prefix>_s<scale>, ...")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark's databases at the end")
    parser.add_argument("--admin-url", default=os.environ.get("AUDIT_PIPELINE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    began = load()
    rows = [bench(args.admin_url, args.prefix, scale) for scale in args.scales]
    rows += [bench(args.admin_url, args.prefix, scale, history_factor=3) for scale in args.long_history]
    deployed = [bench_deployed(args.admin_url, args.prefix, scale) for scale in args.deployed_scales]
    print(f"\n{began} at the start, {load()} at the end; {os.cpu_count()} cores")
    if rows:
        print()
        print(table(rows, [("scale", "{}"), ("history", "{}"), ("days", "{}"), ("tenants", "{}"), ("source_rows", "{:,}"), ("output_rows", "{:,}"),
                           ("backfill", "{:.1f}"), ("sql", "{:.1f}"), ("dagster", "{:.1f}"), ("floor_bookkeeping", "{:.1f}"),
                           ("floor_io", "{:.1f}"), ("budget", "{:.1f}"), ("of_budget", "{:.2f}"), ("sql_per_io", "{:.1f}"),
                           ("nightly", "{:.2f}"), ("floor_nightly", "{:.2f}"), ("nightly_over_floor", "{:+.2f}"),
                           ("rss_mb", "{}"), ("us_per_row", "{:.1f}")]))
        print("\nseconds for backfill, sql, dagster, floors, budget (= 0.2 x bookkeeping floor + 3 x I/O floor) and nightly; "
              "of_budget = backfill / budget; nightly and floor_nightly: medians of five pairs, nightly_over_floor the "
              "median of the pairs' differences; us_per_row = SQL microseconds per output row")
    if deployed:
        print()
        print(table(deployed, [("scale", "{}"), ("days", "{}"), ("cli_nightly", "{:.2f}"), ("daemon_nightly_run", "{:.2f}"),
                               ("daemon_nightly_queued", "{:.2f}"), ("nightly_over_cli", "{:+.2f}"), ("cli_backfill", "{:.1f}"),
                               ("ui_data_complete", "{:.1f}"), ("ui_completed", "{:.1f}"), ("first_iteration", "{:.1f}"),
                               ("ui_over_cli", "{:.2f}"), ("ui_completed_over_cli", "{:.2f}"),
                               ("ui_worst_over_cli", "{:.2f}"), ("ui_completed_worst_over_cli", "{:.2f}")]))
        print("\nmedians of the pairs, seconds: the CLI's as whole processes; daemon_nightly_run from the run's start to its "
              "end (as the UI shows it), _queued from being queued; nightly_over_cli = daemon run - CLI, pair by pair; "
              "ui_data_complete / ui_completed from the launch to the end of the backfill's last run / to the backfill's "
              "completion; first_iteration: when the daemon's backfill loop (every 30 s) took it up; ratios to the CLI "
              "pair by pair, _worst_ as if the backfill had waited the whole 30 s for the daemon")
    if args.drop:
        with connect(args.admin_url, autocommit=True) as conn:
            for scale in {*args.scales, *args.deployed_scales}:
                for name in (f"{args.prefix}_s{scale}", f"{args.prefix}_dagster_s{scale}", f"{args.prefix}_dagster_floor_s{scale}"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
