"""What every table-writing step does around its SQL: the days of the run, the order of its writes and
checks, retries, metadata."""

from __future__ import annotations

import datetime as dt
import functools
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterator

import dagster as dg
from sqlalchemy.exc import DBAPIError, OperationalError

from ..catalog import table_metadata
from ..warehouse import Warehouse
from ..writes import WriteResult

# Transient database failures (a dropped connection, a server restart, a lock timeout) are retried
# with backoff; anything else (bad SQL, schema drift, a constraint, a refused login) fails at once.
TRANSIENT_RETRIES = 3
TRANSIENT_FIRST_WAIT_SECONDS = 2


def table_spec(
    name: str, group: str, description: str, partitions_def: dg.PartitionsDefinition | None = None, deps: tuple = ()
) -> dg.AssetSpec:
    """An output table written by SQL, as one asset of a multi-asset, with its columns and table
    name in the catalog (give the multi-asset's partitions definition, if any, to say so too).

    Skippable: when a blocking check fails, the step writes nothing that reads the checked table.
    """
    return dg.AssetSpec(
        name, group_name=group, kinds={"sql"}, description=description, deps=deps, skippable=True,
        metadata=table_metadata(name, partitions_def),
    )


# A login the server refused is not transient: retrying a wrong password only delays the failure
# (by the retries' waits) and adds failed logins to the server's log. libpq reports a refused
# connection without a SQLSTATE (28P01, 28000), so its words are matched as well.
REFUSED_LOGIN = ("authentication failed", "no pg_hba.conf entry", "no password supplied", "is not permitted to log in")


def is_transient(error: Exception) -> bool:
    """A failure worth retrying: the connection, the server or a lock, not the SQL, the data or a
    refused login."""
    if isinstance(error, DBAPIError) and login_refused(error.orig):
        return False
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    if type(error.orig).__module__.startswith("sqlite3"):
        # SQLite reports "no such table" and syntax errors as OperationalError too.
        return "locked" in str(error.orig) or "busy" in str(error.orig)
    return True  # PostgreSQL: connection failures, server shutdown, lock and statement timeouts


def login_refused(orig: BaseException | None) -> bool:
    """The server refused the credentials (SQLSTATE class 28: invalid authorization specification)."""
    if (getattr(orig, "sqlstate", None) or "").startswith("28"):
        return True
    return any(words in str(orig) for words in REFUSED_LOGIN)


# What a task yields: a table written (its materialization) or a check evaluated.
Result = dg.MaterializeResult | dg.AssetCheckResult


@dataclass(frozen=True)
class Task:
    """One piece of a step's work on the database: the write of a table (or of several, written
    together) or a check of one.

    `work` runs on a worker thread (each write opens its own connection) and returns its results:
    materializations (with their previews) and check results. `needs` names the tables it reads that
    the same step writes: it starts once they are written and their blocking checks have passed. A
    check (`check` set) also waits for its own table's write, unless it reads only sources.
    `blocking`: a failed check among its results stops whatever reads its tables.
    """

    tables: tuple[str, ...]  # the tables it writes, or the one table it checks (none: a preview)
    work: Callable[[], list[Result]]
    needs: tuple[str, ...] = ()
    check: str | None = None
    blocking: bool = False
    preview_of: str = ""  # the table whose preview it reads (then it writes no table)
    reads_table: bool = True  # a check of the sources declared on the table reads nothing of it

    @property
    def name(self) -> str:
        if self.preview_of:
            return f"{self.preview_of}:preview"
        return "+".join(self.tables) + (f":{self.check}" if self.check else "")


def write_task(asset: dg.AssetSpec | str, write: Callable[[], WriteResult], preview: Callable[[], dict] | None = None,
               needs: tuple[str, ...] = ()) -> Task:
    """A table's write, reported with its rows, tenants, days and seconds (and the preview's metadata)."""
    key = asset if isinstance(asset, str) else asset.key.to_user_string()

    def work() -> list[Result]:
        result = write()
        metadata = write_metadata(result)
        if preview is not None:
            metadata.update(preview())  # reads the database too: under the same retry
        return [dg.MaterializeResult(asset_key=key, metadata=metadata)]

    return Task((key,), work, needs)


def preview_task(asset: dg.AssetSpec, preview: Callable[[], dict], needs: tuple[str, ...]) -> Task:
    """A table's preview, read once the table and what else it shows (`needs`) are written; its
    metadata joins the table's materialization. Apart from the write, so that the write need not
    wait for what only its preview reads."""
    key = asset.key.to_user_string()
    return Task((), lambda: [dg.MaterializeResult(asset_key=key, metadata=preview())], (key, *needs), preview_of=key)


def run_tasks(context: dg.AssetExecutionContext, w: Warehouse, tasks: list[Task]) -> Iterator[Result]:
    """Run a step's tasks as soon as what they read is written, `w.writer.concurrent_writes` at a
    time, each on its own connection, in the order given among those ready (put the longest first).

    The work is SQL in the database and Dagster's in-process executor runs one step at a time, so a
    step that holds several tables' writes is how a run keeps both database cores busy. Each write is
    whole or absent on its own. A failed blocking check stops what reads its table (Dagster then
    fails the step, naming it); other work goes on. An error stops new work; what finished is
    reported, then the error is raised (a transient one asks Dagster to retry the step: every write
    is a replace, so running one again is harmless).
    """
    try:
        w.tables.prepare()  # once, before the workers start
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    # Of each table the step writes: the task that writes it, and the tasks whose failure blocks it.
    writer = {table: t.name for t in tasks if t.check is None for table in t.tables}
    blockers: dict[str, set[str]] = {}
    for t in tasks:
        if t.blocking:
            for table in t.tables:
                blockers.setdefault(table, set()).add(t.name)

    def prerequisites(task: Task) -> set[str]:
        own = {writer[table] for table in task.tables if table in writer} if task.check and task.reads_table else set()
        read = {writer[table] for table in task.needs if table in writer}
        read |= {name for table in task.needs for name in blockers.get(table, ())}
        return (own | read) - {task.name}

    waiting = {t.name: (t, prerequisites(t)) for t in tasks}
    done: set[str] = set()
    finished: list[tuple[Task, float, list[Result]]] = []
    errors: list[BaseException] = []
    began = time.perf_counter()
    workers = w.writer.concurrent_writes
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit-write") as pool:
        running: dict = {}
        while True:
            for name, (task, needed) in list(waiting.items()):
                if errors or len(running) >= workers:
                    break
                if needed <= done:
                    del waiting[name]
                    running[pool.submit(_timed, task.work)] = task
            if not running:
                break
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                task = running.pop(future)
                try:
                    seconds, results = future.result()
                except BaseException as error:  # noqa: BLE001 - reported after what finished
                    errors.append(error)
                    continue
                finished.append((task, seconds, results))
                if not (task.blocking and any(isinstance(r, dg.AssetCheckResult) and not r.passed for r in results)):
                    done.add(task.name)
    # The writes overlap: the step's seconds on the database are not the sum of theirs.
    step_seconds = dg.MetadataValue.float(round(time.perf_counter() - began, 3))
    # A task may write more than the run selected (the two history tables are updated together):
    # only what was selected is reported. A preview's metadata joins its table's materialization.
    assets, checks = context.selected_asset_keys, context.selected_asset_check_keys
    materialized: dict[dg.AssetKey, dict] = {}
    for task, _, results in finished:
        for result in results:
            key = dg.AssetKey.from_coercible(result.asset_key) if isinstance(result, dg.MaterializeResult) else None
            if key in assets:
                materialized.setdefault(key, {}).update(result.metadata or {})
    # Dagster takes a multi-asset's materializations in the order of its specs (topological).
    specs = list(context.assets_def.keys_by_output_name.values()) if hasattr(context, "assets_def") else []
    results = [dg.MaterializeResult(asset_key=key, metadata={**metadata, "step_seconds": step_seconds})
               for key, metadata in sorted(materialized.items(), key=lambda item: specs.index(item[0]) if item[0] in specs else 0)]
    report(context, results)
    yield from results
    for task, seconds, results in finished:  # after the materializations they refer to
        for result in results:
            if not isinstance(result, dg.AssetCheckResult):
                continue
            key = dg.AssetCheckKey(dg.AssetKey.from_coercible(result.asset_key or task.tables[0]), result.check_name or task.check)
            if key in checks:
                metadata = {"seconds": dg.MetadataValue.float(round(seconds, 3)), **(result.metadata or {})}
                yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                                          severity=result.severity, metadata=metadata)
    for error in errors:
        if isinstance(error, DBAPIError):
            raise retry_if_transient(context, error)
        raise error


def _timed(work: Callable[[], list[Result]]) -> tuple[float, list[Result]]:
    began = time.perf_counter()
    results = work()
    return time.perf_counter() - began, results


def write_at_once(
    context: dg.AssetExecutionContext, w: Warehouse, steps: dict[dg.AssetKey | dg.AssetCheckKey, Callable]
) -> Iterator[Result]:
    """Independent table writes (returning WriteResult) and source checks (AssetCheckResult) of a step,
    at the same time (see run_tasks)."""
    tasks = []
    for key, step in steps.items():
        if isinstance(key, dg.AssetCheckKey):
            tasks.append(Task((key.asset_key.to_user_string(),), lambda step=step: [step()], check=key.name, reads_table=False))
        else:
            tasks.append(write_task(key.to_user_string(), step))
    yield from run_tasks(context, w, tasks)


def retried_if_transient(check: Callable) -> Callable:
    """An asset check's body under the writes' transient-error retry. Without it a check step that
    met a server restart failed the run at once (a blocking check stops everything downstream),
    though the writes around it would have been retried."""

    @functools.wraps(check)
    def run_check(context, *args, **kwargs):
        try:
            return check(context, *args, **kwargs)
        except DBAPIError as error:
            raise retry_if_transient(context, error)

    return run_check


def retry_if_transient(context: dg.AssetExecutionContext, error: DBAPIError) -> Exception:
    """What to raise for a database error: a retry request if it is transient, else the error."""
    if not is_transient(error):
        return error
    attempt = context.retry_number
    context.log.warning(f"transient database error (attempt {attempt + 1}): {type(error.orig).__name__}")
    retry = dg.RetryRequested(max_retries=TRANSIENT_RETRIES, seconds_to_wait=TRANSIENT_FIRST_WAIT_SECONDS * 2**attempt)
    retry.__cause__ = error
    return retry


def report(context: dg.AssetExecutionContext, results: list[dg.MaterializeResult]) -> None:
    """One log line for the tables a step wrote: rows, tenants, days, seconds of each (those it
    reports). One line, not one per table: each line is an event Dagster stores on its own."""
    if not results:
        return
    tables = []
    for result in results:
        m = {key: getattr(value, "value", value) for key, value in (result.metadata or {}).items()}
        parts = [f"{m[key]} {label}" for key, label in (("dagster/row_count", "rows"), ("tenants", "tenants"), ("days", "days"))
                 if key in m]
        if "seconds" in m:
            parts.append(f"{m['seconds']:.2f} s")
        tables.append(f"{result.asset_key.to_user_string()} ({', '.join(parts)})")
    context.log.info("written: " + "; ".join(tables))


def write_metadata(result: WriteResult) -> dict:
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "tenants": dg.MetadataValue.int(result.tenants),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }
    if result.days:
        metadata["days"] = dg.MetadataValue.int(result.days)
    return metadata


def markdown_table(columns: list[str], rows: list[tuple]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))
