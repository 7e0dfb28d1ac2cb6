"""Faults of the whole PostgreSQL server, not only of one connection.

Each test starts its own cluster (the machine's `initdb` and `pg_ctl`) in a temporary directory, on a
free port of 127.0.0.1, where TCP connections must authenticate with a password (scram-sha-256); the
pipeline connects as a role with a password. A test can then refuse a login, or stop and restart the
whole server in the middle of a backfill, without disturbing the shared server of the other tests.

Where `initdb` is not found the tests are skipped with the reason, unless
AUDIT_PIPELINE_REQUIRE_POSTGRES=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
from sqlalchemy import Engine, NullPool, create_engine, text
from sqlalchemy.engine import URL

from audit_pipeline.assets import _run, daily, snapshots
from audit_pipeline.definitions import defs
from audit_pipeline.demo_data import generate, write
from audit_pipeline.resources import DatabaseResource, create_database_engine
from audit_pipeline.alerts import root_cause
from audit_pipeline.settings import parse_database_url
from audit_pipeline.tables import DAILY_TABLES

from .conftest import REQUIRE_POSTGRES
from .test_reliability import CLI, ROW_CHECKED_TABLES, cli, tenant_day_problems

# A quarter of demo days at scale 1: long enough to stop the server in the middle of the run, short
# enough to run the backfill twice in a test.
FIRST_DAY, LAST_DAY, DAYS = "2024-04-01", "2024-06-30", 91
BACKFILL = ("backfill", "--start", FIRST_DAY, "--end", LAST_DAY)
RETRY_WARNING = "transient database error (attempt 1)"
# What the CLI may write to stderr: Dagster's log, one line per record, and its own one-line error.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
ERROR_LINE = "audit-pipeline: error: "


# --- the throwaway cluster -------------------------------------------------------------------------


def server_binaries() -> Path | None:
    """The directory of initdb and pg_ctl: from PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # a symlink on PATH: pg_ctl and postgres are beside the target
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    versions.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


def server_unavailable_reason() -> str | None:
    binaries = server_binaries()
    if binaries is None or not (binaries / "pg_ctl").exists():
        return ("initdb/pg_ctl not found (on PATH or in /usr/lib/postgresql/*/bin): "
                "cannot start a PostgreSQL cluster of the test's own")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the PostgreSQL server as (it refuses root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A PostgreSQL server of the test's own: data directory, socket and log in one temporary directory.

    The superuser `postgres` logs in without a password over the Unix socket (to set up and look);
    every TCP connection, the pipeline's, must give a password (scram-sha-256).
    """

    def __init__(self, binaries: Path):
        self.binaries = binaries
        # Short on purpose: a Unix socket's path may not exceed 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="audit-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        # The server refuses to run as root: as root, run it as `postgres`, in a directory it owns.
        self.owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.owner:
            os.chown(self.dir, self.owner.pw_uid, self.owner.pw_gid)

    def _run(self, program: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        as_owner = dict(user=self.owner.pw_uid, group=self.owner.pw_gid, extra_groups=[]) if self.owner else {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run([str(self.binaries / program), *args], cwd=self.dir, env=env, capture_output=True,
                              text=True, timeout=timeout, **as_owner)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} {args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{self.log_tail()}")
        return done

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "server log:\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "no server log"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--encoding=UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def running(self) -> bool:
        return self.data.exists() and self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server whatever state the test left it in, then delete its directory."""
        try:
            if self.running():
                try:
                    self.stop("fast")
                except (RuntimeError, subprocess.TimeoutExpired):
                    self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def admin(self, database: str = "postgres") -> Engine:
        """The superuser over the Unix socket; no pool, so that nothing outlives a restart."""
        url = URL.create("postgresql+psycopg", username="postgres", database=database,
                         query={"host": str(self.dir), "port": str(self.port)})
        return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def create_database(self, password: str) -> str:
        """The role `auditor` with this password, owning the database `audit`: the URL the pipeline uses."""
        assert "'" not in password
        admin = self.admin()
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE auditor LOGIN PASSWORD '{password}'"))
            conn.execute(text("CREATE DATABASE audit OWNER auditor"))
        admin.dispose()
        return url_with_password(self, password)


def url_with_password(cluster: Cluster, password: str) -> str:
    return URL.create("postgresql", username="auditor", password=password, host="127.0.0.1", port=cluster.port,
                      database="audit").render_as_string(hide_password=False)


@pytest.fixture
def server():
    reason = server_unavailable_reason()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (AUDIT_PIPELINE_REQUIRE_POSTGRES=1: the server-fault tests must run)")
        pytest.skip(reason)
    cluster = Cluster(server_binaries())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


# --- helpers ---------------------------------------------------------------------------------------


def new_password() -> tuple[str, str]:
    """A password with characters a URL must escape, and its random part (what a leak would show)."""
    core = secrets.token_urlsafe(12)
    return f"Pw:{core}/@%", core


def leaks(output: str, password: str, core: str) -> list[str]:
    """What of the password shows in `output`: itself, its URL-escaped form, or any 8 characters of
    its random part."""
    pieces = [password, quote(password, safe=""), *(core[i:i + 8] for i in range(len(core) - 7))]
    return [piece for piece in pieces if piece in output]


def demo_engine(url: str) -> Engine:
    engine = create_database_engine(parse_database_url(url))
    write(engine, generate(1))
    return engine


class Backfill:
    """`audit-pipeline backfill` of the test's days in a subprocess; its output goes to files, so
    that the test can read it while the run goes on."""

    def __init__(self, directory: Path, env: dict[str, str]):
        directory.mkdir(parents=True, exist_ok=True)
        self.out, self.err = directory / "stdout", directory / "stderr"
        base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_PIPELINE_")}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen([CLI, *BACKFILL], env={**base, **env}, stdout=out, stderr=err,
                                            start_new_session=True)

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_for(self, condition, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"the backfill ended (exit {self.process.poll()}) or took too long before {what}:\n{self.stderr()}")

    def wait_for_rows(self, cluster: Cluster, table: str = "severity_snapshot") -> None:
        """Until the run has committed its first table: it is then in the middle of its steps."""
        watcher = cluster.admin("audit")

        def has_rows() -> bool:
            with watcher.connect() as conn:
                return bool(conn.execute(text(f"SELECT to_regclass('{table}') IS NOT NULL")).scalar_one()
                            and conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar_one())

        try:
            self.wait_for(has_rows, f"{table} had rows")
        finally:
            watcher.dispose()

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.kill()
        return self.process.returncode, self.out.read_text(), self.stderr()

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def stray_lines(err: str) -> list[str]:
    """Lines of the CLI's stderr that are neither a log record nor its error: a traceback's."""
    return [line for line in err.splitlines() if line.strip() and not LOG_LINE.match(line) and not line.startswith(ERROR_LINE)]


def days_per_table(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(DISTINCT snapshot_date) FROM {t}")).scalar_one()
                for t in ROW_CHECKED_TABLES}


def assert_whole_days(engine: Engine) -> None:
    assert tenant_day_problems(engine) == {t: [] for t in ROW_CHECKED_TABLES}


def assert_complete_history(engine: Engine) -> None:
    assert_whole_days(engine)
    assert days_per_table(engine) == {t: DAYS for t in ROW_CHECKED_TABLES}
    with engine.connect() as conn:
        rows = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in DAILY_TABLES}
    assert len(set(rows.values())) == 1, rows  # the same tenants every day in every daily table


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(ERROR_LINE)]


# --- a wrong password ------------------------------------------------------------------------------


def test_a_wrong_password_gives_the_cli_its_one_line_error_without_the_password(server, tmp_path):
    password, core = new_password()
    url = server.create_database(password)
    wrong, wrong_core = new_password()
    run = cli(*BACKFILL, env={"AUDIT_PIPELINE_DATABASE_URL": url_with_password(server, wrong),
                              "DAGSTER_HOME": str(tmp_path / "home")})
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("audit-pipeline: error: cannot reach the database postgresql+psycopg://auditor:***@127.0.0.1:")
    assert 'password authentication failed for user "auditor"' in err
    assert leaks(out + err, wrong, wrong_core) == [] and leaks(out + err, password, core) == []
    # The right password, through the same URL handling, gets in: only the password was wrong.
    engine = create_database_engine(parse_database_url(url))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "auditor"
    engine.dispose()


def test_a_wrong_password_fails_the_dagster_run_at_once_with_a_clear_message(server, monkeypatch):
    password, core = new_password()
    server.create_database(password)
    wrong, wrong_core = new_password()
    monkeypatch.setattr(_run, "TRANSIENT_FIRST_WAIT_SECONDS", 0)  # were it retried, quickly
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("audit_history").execute_in_process(
            instance=instance, raise_on_error=False,
            resources={"database": DatabaseResource(url=url_with_password(server, wrong))},
            tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-03"},
        )
        assert not result.success
        records = instance.all_logs(result.run_id)
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures
    for failure in failures:  # what the UI, the failure alert and the CLI show
        error = failure.step_failure_data.error
        assert 'connection failed: connection to server at "127.0.0.1"' in root_cause(error)
        assert root_cause(error).endswith('failed: FATAL:  password authentication failed for user "auditor"')
    # A wrong password does not fix itself: no retry, no waiting.
    assert [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY] == []
    # Nothing the run recorded shows the password.
    recorded = "\n".join(r.user_message for r in records) + "\n".join(
        r.dagster_event.step_failure_data.error.to_string() for r in records if r.dagster_event and r.dagster_event.is_step_failure
    )
    assert 'password authentication failed for user "auditor"' in recorded
    assert leaks(recorded, wrong, wrong_core) == [] and leaks(recorded, password, core) == []


# --- the server stops in the middle of a backfill --------------------------------------------------


def test_an_asset_check_that_meets_a_stopped_server_is_retried_like_a_write(server, monkeypatch):
    password, _ = new_password()
    url = server.create_database(password)
    server.stop("fast")
    monkeypatch.setattr(_run, "TRANSIENT_FIRST_WAIT_SECONDS", 0)
    check = dg.AssetCheckKey(snapshots.severity_snapshot.key, "one_row_per_tenant_and_day")
    result = dg.materialize(
        [daily.daily_tables], selection=dg.AssetSelection.checks(check),
        resources={"database": DatabaseResource(url=url)}, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": "2024-06-01", "dagster/asset_partition_range_end": "2024-06-03"},
    )
    assert not result.success
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == _run.TRANSIENT_RETRIES
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "Connection refused" in root_cause(failure.step_failure_data.error)


def test_a_server_restart_mid_backfill_is_retried_and_leaves_the_whole_history(server, tmp_path):
    password, core = new_password()
    url = server.create_database(password)
    engine = demo_engine(url)
    run = Backfill(tmp_path / "run", {"AUDIT_PIPELINE_DATABASE_URL": url, "DAGSTER_HOME": str(tmp_path / "home")})
    try:
        run.wait_for_rows(server)
        engine.dispose()
        server.stop("fast")  # every session is terminated; a statement in flight is rolled back
        # Down until the run has met the outage and asked for a retry (at once if it was in a
        # statement; else at its next connection): it then waits 2 s, then 4 s, then 8 s.
        run.wait_for(lambda: RETRY_WARNING in run.stderr(), "it met the stopped server")
        server.start()
        returncode, out, err = run.finish()
    finally:
        run.kill()
    # The server came back within the retries' window: the run recovered by itself.
    assert returncode == 0, err
    assert error_lines(err) == [] and stray_lines(err) == []
    assert leaks(out + err, password, core) == []
    assert f"Done: {FIRST_DAY}..{LAST_DAY}, {DAYS} days, 12 assets" in out
    assert_complete_history(engine)
    engine.dispose()


def test_a_server_down_longer_than_the_retries_fails_in_one_line_and_a_rerun_completes(server, tmp_path):
    password, core = new_password()
    url = server.create_database(password)
    engine = demo_engine(url)
    env = {"AUDIT_PIPELINE_DATABASE_URL": url, "DAGSTER_HOME": str(tmp_path / "home")}
    run = Backfill(tmp_path / "run", env)
    try:
        run.wait_for_rows(server)
        engine.dispose()
        server.stop("fast")
        returncode, out, err = run.finish()  # the server stays down until the backfill gives up
    finally:
        run.kill()
        if not server.running():
            server.start()
    assert returncode == 1, err
    assert RETRY_WARNING in err  # it retried before giving up
    # One clear line at the end, no stack trace above it, no password anywhere.
    [error] = error_lines(err)
    assert err.rstrip().endswith(error)
    assert stray_lines(err) == []
    assert re.match(r"audit-pipeline: error: run [0-9a-f-]{36} failed: \w+: ", error), error
    assert 'connection to server at "127.0.0.1"' in error and "Connection refused" in error, error
    assert leaks(out + err, password, core) == []
    # What was committed before the server stopped is whole days.
    assert_whole_days(engine)
    assert days_per_table(engine)["severity_snapshot"] == DAYS

    rerun = Backfill(tmp_path / "rerun", env)
    returncode, out, err = rerun.finish()
    assert returncode == 0, err
    assert f"Done: {FIRST_DAY}..{LAST_DAY}, {DAYS} days, 12 assets" in out
    assert_complete_history(engine)
    engine.dispose()
