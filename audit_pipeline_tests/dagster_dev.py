"""`dagster dev` as `make dev` runs it (webserver, daemon, code server), for tests that launch runs
the way the UI does: on a new demo database and a local instance of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from audit_pipeline.demo_data import create_demo_database

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 180


@contextlib.contextmanager
def dagster_dev(work: Path) -> Iterator[tuple[str, Path, Path]]:
    """Yields (the webserver's base URL, DAGSTER_HOME, the demo database); its output goes to
    `work / "dagster-dev.log"`. Stopped (its whole process group) on exit."""
    database = work / "demo.sqlite"
    create_demo_database(database)
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AUDIT_PIPELINE_")},
           "DAGSTER_HOME": str(home), "AUDIT_PIPELINE_DATABASE_URL": f"sqlite:///{database}"}
    log_path = work / "dagster-dev.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"dagster dev did not start: {log_path.read_text()[-3000:]}")
                time.sleep(1)
        yield base, home, database
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
