"""The performance benchmark: full history and one nightly day against both floors, per scale.

    .venv/bin/python benchmarks/run.py [--scales 1 5 10] [--admin-url postgresql://root@127.0.0.1:5432/postgres]

For each scale it reuses (or generates) the demo data in database audit_bench_s<scale>, starts from
empty output tables and a fresh Dagster instance with PostgreSQL storage (deploy/dagster.yaml), and
measures, each as a whole process:
- the full-history backfill (`audit-pipeline backfill`, as an operator runs it), its seconds in SQL
  (the assets' own timings) and in Dagster (the rest), and its peak RSS;
- one nightly partition (the last complete day), the median of three runs;
- the bookkeeping floor: one run of five daily assets with empty bodies over the same days, with
  Dagster's default settings (benchmarks/empty_assets.py);
- the I/O floor: reading every source table once (COPY ... TO STDOUT) plus writing every output
  row once (CREATE TABLE ... AS SELECT of each output table).
It prints one table. Nothing here is a test: figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCE_TABLES = ("tenant", "audit_engagement", "observation", "compliance_requirement", "audit_log")
OUTPUT_TABLES = ("observation_history", "requirement_history",
                 "severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot",
                 "compliance_trend_daily", "severity_trend_quarterly", "repeat_finding", "engagement_progress")
# The record history's own tables: dropped with the outputs, so that a full history starts from scratch.
INTERNAL_TABLES = ("history_log_value", "history_log_position")
FIRST_DAY = "2024-04-01"


def connect(url: str, database: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password or None,
                           dbname=database or u.database, autocommit=autocommit)


def url_for(admin_url: str, database: str) -> str:
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=database).render_as_string(hide_password=False)


def ensure_demo(admin_url: str, scale: int, history_factor: int = 1) -> str:
    name = f"audit_bench_s{scale}" + (f"_h{history_factor}" if history_factor > 1 else "")
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
    with connect(admin_url, name, autocommit=True) as conn:
        for table in (*OUTPUT_TABLES, *INTERNAL_TABLES):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("VACUUM ANALYZE")
    return url


def fresh_instance(admin_url: str, scale: int) -> tuple[Path, dict]:
    name = f"audit_bench_dagster_s{scale}"
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    home = Path(tempfile.mkdtemp(prefix=f"bench-home-s{scale}-"))
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    u = make_url(admin_url)
    env = {"DAGSTER_HOME": str(home), "DAGSTER_PG_USERNAME": u.username, "DAGSTER_PG_PASSWORD": u.password or "",
           "DAGSTER_PG_HOST": u.host, "DAGSTER_PG_PORT": str(u.port or 5432), "DAGSTER_PG_DB": name}
    return home, env


def run(args: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a process; its wall seconds, peak RSS (MB) and output."""
    began = time.perf_counter()
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    sys.path.insert(0, str(ROOT))
    from audit_pipeline.calendar import last_complete_day as last
    from audit_pipeline.settings import load_settings

    return last(load_settings().tz).isoformat()


def bench(admin_url: str, scale: int, history_factor: int = 1) -> dict:
    print(f"scale {scale}" + (f", history x{history_factor}" if history_factor > 1 else ""), flush=True)
    url = ensure_demo(admin_url, scale, history_factor)
    last = last_complete_day()
    cli = [str(BIN / "audit-pipeline"), "backfill"]

    home, env = fresh_instance(admin_url, scale)
    env["AUDIT_PIPELINE_DATABASE_URL"] = url
    backfill_s, rss_mb, output = run([*cli, "--start", FIRST_DAY, "--end", last], env)
    sql_s = float(re.search(r"\(([\d.]+) s in SQL", output).group(1))
    print(f"  backfill {backfill_s:.1f} s ({sql_s:.1f} s in SQL), peak RSS {rss_mb} MB", flush=True)
    # The median of three: on a shared two-core machine one run can be off by a second or two.
    nightly_runs = sorted(run([*cli, "--start", last, "--end", last], env)[0] for _ in range(3))
    nightly_s = nightly_runs[1]
    print(f"  nightly {nightly_s:.2f} s (median of {', '.join(f'{s:.2f}' for s in nightly_runs)})", flush=True)
    floor_io = io_floor(url)
    output_rows = counts(url, OUTPUT_TABLES)
    shutil.rmtree(home)

    home, env = fresh_instance(admin_url, scale)  # the floor gets a fresh instance too
    floor_env = {k: v for k, v in env.items()}
    floor_env["PYTHONPATH"] = str(ROOT)
    os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)  # Dagster's defaults
    floor_bk, _, _ = run([sys.executable, str(ROOT / "benchmarks" / "empty_assets.py"), FIRST_DAY, last], floor_env)
    # Dagster's floor for one night: the same five empty assets, one day, as a whole process.
    floor_nightly = sorted(run([sys.executable, str(ROOT / "benchmarks" / "empty_assets.py"), last, last], floor_env)[0]
                           for _ in range(3))[1]
    print(f"  floors: bookkeeping {floor_bk:.1f} s, one day {floor_nightly:.2f} s, I/O {floor_io:.1f} s", flush=True)
    shutil.rmtree(home)

    with connect(url, make_url(url).database) as conn:
        tenants = conn.execute("SELECT count(*) FROM tenant").fetchone()[0]
    from datetime import date
    return dict(
        scale=scale, days=(date.fromisoformat(last) - date.fromisoformat(FIRST_DAY)).days + 1, tenants=tenants,
        source_rows=counts(url, SOURCE_TABLES), output_rows=output_rows, backfill=backfill_s, sql=sql_s,
        dagster=backfill_s - sql_s, floor_bookkeeping=floor_bk, floor_io=floor_io,
        budget=floor_bk + 3 * floor_io, nightly=nightly_s, floor_nightly=floor_nightly, rss_mb=rss_mb,
        history=f"x{history_factor}", sql_per_io=sql_s / floor_io,
        us_per_row=1e6 * sql_s / output_rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--long-history", type=int, nargs="*", default=[10], metavar="SCALE",
                        help="also these scales with a history three times as long (same activity per day)")
    parser.add_argument("--admin-url", default=os.environ.get("AUDIT_PIPELINE_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    rows = [bench(args.admin_url, scale) for scale in args.scales]
    rows += [bench(args.admin_url, scale, history_factor=3) for scale in args.long_history]
    columns = [("scale", "{}"), ("history", "{}"), ("days", "{}"), ("tenants", "{}"), ("source_rows", "{:,}"), ("output_rows", "{:,}"),
               ("backfill", "{:.1f}"), ("sql", "{:.1f}"), ("dagster", "{:.1f}"), ("floor_bookkeeping", "{:.1f}"),
               ("floor_io", "{:.1f}"), ("budget", "{:.1f}"), ("sql_per_io", "{:.1f}"), ("nightly", "{:.2f}"),
               ("floor_nightly", "{:.2f}"), ("rss_mb", "{}"), ("us_per_row", "{:.1f}")]
    print()
    print("| " + " | ".join(name for name, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt.format(row[name]) for name, fmt in columns) + " |")
    print("\nseconds for backfill, sql, dagster, floors, budget (= bookkeeping floor + 3 x I/O floor) and nightly; "
          "us_per_row = SQL microseconds per output row")


if __name__ == "__main__":
    main()
