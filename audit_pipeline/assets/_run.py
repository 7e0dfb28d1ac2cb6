"""What every table-writing asset does around its SQL: the days of the run, retries, metadata."""

from __future__ import annotations

import datetime as dt
import functools
import time
from concurrent.futures import ThreadPoolExecutor
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
    name in the catalog (give the multi-asset's partitions definition, if any, to say so too)."""
    return dg.AssetSpec(
        name, group_name=group, kinds={"sql"}, description=description, deps=deps,
        metadata=table_metadata(name, partitions_def),
    )


def run_days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the run: one partition or a single-run range."""
    keys = context.partition_key_range
    return dt.date.fromisoformat(keys.start), dt.date.fromisoformat(keys.end)


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


def write(
    context: dg.AssetExecutionContext,
    step: Callable[[], WriteResult],
    preview: Callable[[], dict] | None = None,
) -> dg.MaterializeResult:
    """Run one table write, retrying transient database errors; report what was written."""
    try:
        result = step()
        # The preview reads the database too: under the retry as well (the write is a replace).
        previewed = preview() if preview is not None else {}
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    metadata = write_metadata(report(context, result))
    metadata.update(previewed)
    return dg.MaterializeResult(metadata=metadata)


def write_at_once(
    context: dg.AssetExecutionContext, w: Warehouse, steps: dict[dg.AssetKey | dg.AssetCheckKey, Callable]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Run a step's independent table writes (WriteResult) and source checks (AssetCheckResult) at
    the same time, each on its own connection: the database does the work, so each connection keeps
    a core busy (`w.writer.concurrent_writes` at once). The pool takes them in order: put the longest first.

    Each write is whole or absent on its own. What succeeded is reported before the first failure
    is raised (a transient one asks Dagster to retry the step: every write is a replace, so running
    one again is harmless).
    """
    try:
        w.tables.prepare()  # once, before the writers start
    except DBAPIError as error:
        raise retry_if_transient(context, error)
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=w.writer.concurrent_writes, thread_name_prefix="audit-write") as pool:
        futures = {key: pool.submit(step) for key, step in steps.items()}
        outcomes = {key: future.exception() or future.result() for key, future in futures.items()}
    # The writes overlap: the step's seconds are not the sum of theirs.
    step_seconds = dg.MetadataValue.float(round(time.perf_counter() - began, 3))
    for key, outcome in outcomes.items():
        if isinstance(outcome, WriteResult):
            metadata = {**write_metadata(report(context, outcome)), "step_seconds": step_seconds}
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    for key, outcome in outcomes.items():  # after the materializations they may refer to
        if isinstance(outcome, dg.AssetCheckResult):
            yield dg.AssetCheckResult(
                asset_key=key.asset_key, check_name=key.name,
                passed=outcome.passed, severity=outcome.severity, metadata=outcome.metadata,
            )
    for outcome in outcomes.values():
        if isinstance(outcome, DBAPIError):
            raise retry_if_transient(context, outcome)
        if isinstance(outcome, BaseException):
            raise outcome


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


def report(context: dg.AssetExecutionContext, result: WriteResult) -> WriteResult:
    context.log.info(
        f"{result.table}: {result.rows} rows, {result.tenants} tenants, {result.days} days "
        f"in {result.seconds:.2f} s"
    )
    return result


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
