"""`audit-pipeline`: the operator's command line.

    audit-pipeline backfill --start YYYY-MM-DD [--end YYYY-MM-DD] [--rebuild-history]
    audit-pipeline demo-data [--url URL] [--scale N] [--force]

Errors are one line on stderr and a non-zero exit; a database password is never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import logging
import os
import sys
import time
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from .calendar import last_complete_day
from .settings import DEMO_DATABASE_PATH, Settings, SettingsError, load_settings, parse_database_url, redact
from .tables import SOURCE_TABLES

LOCAL_DAGSTER_HOME = Path(".dagster_home")
# The instance the CLI makes where DAGSTER_HOME has none: the local one of dagster.yaml (SQLite,
# materializations written in batches; see audit_pipeline/sqlite_event_log.py).
LOCAL_INSTANCE_YAML = """event_log_storage:
  module: audit_pipeline.sqlite_event_log
  class: BatchingSqliteEventLogStorage
  config: {}
telemetry:
  enabled: false
"""


class CommandError(RuntimeError):
    """A failure worth one line to the operator."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    backfill = commands.add_parser("backfill", help="materialize every asset for a range of days, through Dagster")
    backfill.add_argument("--start", required=True, type=_iso_date, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=_iso_date, help="last day, YYYY-MM-DD (default: the last complete day)")
    backfill.add_argument(
        "--rebuild-history", action="store_true",
        help="derive the record history from the whole audit_log again, not only from its new rows, and "
        "repeat_finding and engagement_progress from every observation",
    )

    demo = commands.add_parser("demo-data", help="write the deterministic demo source tables")
    demo.add_argument("--url", help=f"SQLAlchemy URL (default: the SQLite file {DEMO_DATABASE_PATH})")
    demo.add_argument("--scale", type=int, default=1, help="1 = 40 tenants; N = N times as many")
    demo.add_argument("--force", action="store_true", help="replace the default SQLite demo file if it exists")
    demo.add_argument("--history-factor", type=int, default=1, help="N times as long a history (benchmarks)")

    args = parser.parse_args(argv)
    try:
        if args.command == "backfill":
            return run_backfill(args.start, args.end, args.rebuild_history)
        return run_demo_data(args.url, args.scale, args.force, args.history_factor)
    except (SettingsError, CommandError) as error:
        print(f"audit-pipeline: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("audit-pipeline: interrupted", file=sys.stderr)
        return 130


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


# --- backfill --------------------------------------------------------------------------------------


def run_backfill(start: dt.date, end: dt.date | None, rebuild_history: bool = False) -> int:
    settings = load_settings()
    last_day = last_complete_day(settings.tz)
    end = end or last_day
    check_range(settings, start, end, last_day)
    url = _database_url(settings)
    check_database(url)
    home = _dagster_home()
    # For a long range the instance's bookkeeping, not the SQL, is the largest cost: write its
    # events in batches, one planned event per asset (bookkeeping.py; README, Performance).
    from . import bookkeeping

    bookkeeping.apply_defaults()

    from .definitions import defs
    from .jobs import AUDIT_HISTORY_JOB
    from .partitions import RANGE_END_TAG, RANGE_START_TAG

    print(f"Backfilling {start}..{end} ({(end - start).days + 1} days) of {redact(url)}")
    print(f"Dagster instance: {home}")
    began = time.perf_counter()
    with _open_instance(home) as instance:
        job = defs.resolve_job_def(AUDIT_HISTORY_JOB).with_logger_defs({"console": _one_line_console_logger()})
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
            run_config={
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
                # The two steps that follow the log: the daily tables' (record history) and the current-state tables.
                "ops": {step: {"config": {"full_rebuild": rebuild_history}} for step in ("daily_tables", "current_findings")},
            },
            raise_on_error=False,
        )
    seconds = time.perf_counter() - began
    if not result.success:
        raise CommandError(f"run {result.run_id} failed: {_failure(result, url)}")
    print(summary(result, start, end, seconds))
    return 0


def _one_line_console_logger():
    """Dagster's console logger, one line per record. A failed step's record would otherwise print
    its error's whole chain of stack traces (SQLAlchemy's pool, psycopg) above the CLI's one-line
    error; it stays in full in the run's event log, where the UI shows it."""
    import dagster as dg

    def first_line_only(record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage().split("\n", 1)[0], ()
        return True

    def console(init_context):
        logger = dg.colored_console_logger.logger_fn(init_context)
        logger.addFilter(first_line_only)
        return logger

    return dg.LoggerDefinition(console, config_schema=dg.colored_console_logger.config_schema)


def check_range(settings: Settings, start: dt.date, end: dt.date, last_day: dt.date) -> None:
    if start < settings.start_date:
        raise CommandError(f"--start {start} is before the first partition {settings.start_date} (AUDIT_PIPELINE_START_DATE)")
    if end > last_day:
        raise CommandError(f"--end {end} is after the last complete day {last_day} in {settings.timezone}")
    if end < start:
        raise CommandError(f"--end {end} is before --start {start}")


def _database_url(settings: Settings) -> URL:
    if settings.database_url:
        return parse_database_url(settings.database_url)
    from .resources import demo_database_url

    return demo_database_url()


def check_database(url: URL) -> None:
    """Fail fast, in one line, when the database cannot be reached or lacks the source tables."""
    from .dialect import read_connection
    from .database import create_database_engine

    engine = create_database_engine(url)
    try:
        with read_connection(engine) as conn:
            missing = [t for t in SOURCE_TABLES if not inspect(conn).has_table(t)]
    except SQLAlchemyError as error:
        raise CommandError(f"cannot reach the database {redact(url)}: {scrub(first_line(error), url)}") from None
    finally:
        engine.dispose()
    if missing:
        raise CommandError(f"the database {redact(url)} has no source table {', '.join(missing)}")


def _dagster_home() -> Path:
    """DAGSTER_HOME, or ./.dagster_home (the instance `make dev` shows) when it is not set."""
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(LOCAL_DAGSTER_HOME.resolve())
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    return home


@contextlib.contextmanager
def _open_instance(home: Path):
    """The instance at DAGSTER_HOME, created under a file lock: two backfills started at once on a
    new SQLite instance would otherwise both create its tables, and one would fail."""
    import dagster as dg

    with open(home / ".audit-pipeline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    # On PostgreSQL storage, Dagster opens a new connection for every bookkeeping query (hundreds
    # per run). Keep one open instead, as dagster-webserver does; no statement timeout, as in a run.
    # (A no-op on the local SQLite instance.)
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=5)
    with instance:
        yield instance


def first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def scrub(message: str, url: URL) -> str:
    if url.password:
        message = message.replace(str(url.password), "***")
    return message


def _failure(result, url: URL) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            from .alerts import root_cause

            return scrub(f"{event.step_key}: {root_cause(event.step_failure_data.error)}", url)
    return "see the run's logs in the Dagster UI"


def summary(result, start: dt.date, end: dt.date, seconds: float) -> str:
    per_asset: dict[str, dict] = {}
    per_step: dict[str, float] = {}  # seconds in SQL: a step's writes and checks overlap
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        key = materialization.asset_key.to_user_string()
        if key not in per_asset:  # a range run repeats the same metadata on every day's event
            per_asset[key] = m = {k: v.value for k, v in materialization.metadata.items()}
            per_step[event.step_key] = m.get("step_seconds", per_step.get(event.step_key, 0.0) + m.get("seconds", 0.0))
    sql_seconds = sum(per_step.values())
    lines = [
        "",
        f"{'asset':<26}{'rows':>12}{'tenants':>9}{'days':>7}{'seconds':>9}",
    ]
    for key in sorted(per_asset):
        m = per_asset[key]
        lines.append(
            f"{key:<26}{m.get('dagster/row_count', 0):>12,}{m.get('tenants', 0):>9}"
            f"{m.get('days', '-'):>7}{m.get('seconds', 0.0):>9.2f}"
        )
    lines += [
        "",
        f"Done: {start}..{end}, {(end - start).days + 1} days, {len(per_asset)} assets in {seconds:.1f} s "
        f"({sql_seconds:.1f} s in SQL, {seconds - sql_seconds:.1f} s in Dagster).",
        f"Run {result.run_id}: see it with `make dev`, then http://127.0.0.1:3000/runs/{result.run_id}",
    ]
    return "\n".join(lines)


# --- demo data -------------------------------------------------------------------------------------


def run_demo_data(url_text: str | None, scale: int, force: bool, history_factor: int = 1) -> int:
    from .demo_data import create_demo_database, generate, write
    from .database import create_database_engine

    if scale < 1 or history_factor < 1:
        raise CommandError("--scale and --history-factor must be at least 1")
    began = time.perf_counter()
    if not url_text:
        path = DEMO_DATABASE_PATH
        if path.exists() and not force:
            raise CommandError(f"{path} exists; pass --force to replace it")
        create_demo_database(path, scale)
        target = str(path.resolve())
    else:
        url = parse_database_url(url_text)
        engine = create_database_engine(url)
        try:
            with engine.connect() as conn:
                present = [t for t in SOURCE_TABLES if inspect(conn).has_table(t)]
            if present:
                raise CommandError(f"{redact(url)} already has source tables ({', '.join(present)}); use an empty database")
            write(engine, generate(scale, history_factor=history_factor))
        except SQLAlchemyError as error:
            raise CommandError(f"cannot write demo data to {redact(url)}: {scrub(first_line(error), url)}") from None
        finally:
            engine.dispose()
        target = redact(url)
    print(f"Demo data at scale {scale} written to {target} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
