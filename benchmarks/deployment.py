"""Dagster deployed as the README's Deploy section runs it, and runs launched through it.

A code server (`dagster code-server start`), the webserver and the daemon, each a process of its own
with the environment the Deploy section gives them, on an instance with `deploy/dagster.yaml`. Runs
are launched the way production launches them:
- `launch_run`: the webserver's `launchRun` mutation (the UI's Materialize, and the path of a
  schedule's run from the queue on): the run is queued, the daemon dequeues it and the code server
  starts a run worker that executes it;
- `launch_asset_backfill`: the webserver's `launchPartitionBackfill` mutation with an asset
  selection, what the UI's "Materialize" with a range of partitions sends; the daemon's backfill loop
  turns it into runs, which go through the queue as above.
Nothing here is specific to benchmarking; benchmarks/run.py times what it launches.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
LOCATION = "audit_pipeline"
REPOSITORY = "__repository__"
DAEMONS = ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "BACKFILL")

WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) { launchRun(executionParams: $executionParams) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }
"""
LAUNCH_BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $backfillParams) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def launch_run(self, job: str, tags: dict[str, str]) -> str:
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            "runConfigData": {},
        }
        result = self.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun: {result}")
        return result["run"]["runId"]

    def launch_asset_backfill(self, asset_keys: list[str], partition_names: list[str]) -> str:
        params = {"assetSelection": [{"path": [key]} for key in asset_keys], "partitionNames": partition_names}
        result = self.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill: {result}")
        return result["backfillId"]


def _wait(condition, timeout: float, what: str, processes: list[subprocess.Popen], logs: Path):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            tails = "\n".join(f"--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(logs.glob("*.log")))
            raise RuntimeError(f"{what} did not come up:\n{tails}")
        time.sleep(0.5)


@contextlib.contextmanager
def deployment(home: Path, env: dict[str, str], instance):
    """The three processes on the instance at `home` (DAGSTER_HOME), stopped on exit.

    `env`: the Deploy section's variables (DAGSTER_PG_*, AUDIT_PIPELINE_*, the bookkeeping settings).
    `instance`: the same instance, opened by the caller, to see the daemon's heartbeats.
    """
    grpc_port, web_port = free_port(), free_port()
    workspace = home / "workspace.prod.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server: {{host: 127.0.0.1, port: {grpc_port}, location_name: {LOCATION}}}\n"
    )
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
    commands = {
        "code-server": [str(BIN / "dagster"), "code-server", "start", "-m", "audit_pipeline.definitions",
                        "-h", "127.0.0.1", "-p", str(grpc_port)],
        "webserver": [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
    }
    processes: list[subprocess.Popen] = []
    started = time.time()

    def start(name: str) -> None:
        with open(home / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen(commands[name], cwd=home, env=full_env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))

    def code_server_up() -> bool:
        with socket.create_connection(("127.0.0.1", grpc_port), timeout=1):
            return True

    try:
        start("code-server")  # first: the webserver and the daemon load the code location from it
        _wait(code_server_up, 180, "the code server", processes, home)
        start("webserver")
        start("daemon")
        web = Deployment(f"http://127.0.0.1:{web_port}")

        def location_loaded() -> bool:
            entries = web.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
            return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED"
                       and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)

        def daemons_running() -> bool:
            beats = instance.get_daemon_heartbeats()
            return all(d in beats and beats[d].timestamp >= started for d in DAEMONS)

        _wait(location_loaded, 180, "the webserver with the code location", processes, home)
        _wait(daemons_running, 180, "the daemon", processes, home)
        yield web
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
