"""The order of a step's writes and checks (assets/_run.run_tasks): what reads a table waits for it and
for its blocking checks; independent work runs at once, never more than the connections allowed."""

import logging
import threading
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from audit_pipeline.assets._run import Task, preview_task, run_tasks


class Clock:
    """Records when each task ran, and how many ran at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans: dict[str, tuple[float, float]] = {}
        self.running = 0
        self.most = 0

    def write(self, table: str, seconds: float = 0.05, fail: Exception | None = None) -> Task:
        return Task((table,), lambda: self._run(table, seconds, fail, [dg.MaterializeResult(asset_key=table)]))

    def check(self, table: str, passed: bool, blocking: bool = True) -> Task:
        result = dg.AssetCheckResult(asset_key=table, check_name="ok", passed=passed)
        return Task((table,), lambda: self._run(f"{table}:ok", 0.02, None, [result]), check="ok", blocking=blocking)

    def _run(self, name, seconds, fail, results):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        began = time.perf_counter()
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
            self.spans[name] = (began, time.perf_counter())
        if fail:
            raise fail
        return results


def needing(task: Task, *tables: str) -> Task:
    return Task(task.tables, task.work, needs=tables, check=task.check, blocking=task.blocking)


def run(tasks: list[Task], connections: int = 2) -> list:
    return list(results_of(tasks, connections))


def results_of(tasks: list[Task], connections: int = 2):
    tables = {t for task in tasks for t in task.tables}
    context = SimpleNamespace(
        log=logging.getLogger("test"), retry_number=0,
        selected_asset_keys={dg.AssetKey(t) for t in tables},
        selected_asset_check_keys={dg.AssetCheckKey(dg.AssetKey(t), "ok") for t in tables},
    )
    warehouse = SimpleNamespace(tables=SimpleNamespace(prepare=lambda: None), writer=SimpleNamespace(concurrent_writes=connections))
    return run_tasks(context, warehouse, tasks)


def written(results) -> set[str]:
    return {r.asset_key.to_user_string() for r in results if isinstance(r, dg.MaterializeResult)}


def test_a_task_waits_for_what_it_reads_and_independent_ones_run_at_once():
    clock = Clock()
    tasks = [
        clock.write("history", 0.2),
        clock.write("source_check", 0.1),
        needing(clock.write("snapshot", 0.1), "history"),
        clock.check("snapshot", passed=True),
        needing(clock.write("health", 0.05), "snapshot"),
    ]
    results = run(tasks)
    spans = clock.spans
    assert written(results) == {"history", "source_check", "snapshot", "health"}
    assert spans["snapshot"][0] >= spans["history"][1]
    assert spans["snapshot:ok"][0] >= spans["snapshot"][1]  # a check follows its table's write
    assert spans["health"][0] >= spans["snapshot:ok"][1]  # and what reads the table follows its blocking check
    assert spans["source_check"][0] < spans["history"][1]  # independent work ran beside the longest
    assert clock.most == 2
    # Materializations come before the checks that refer to them.
    kinds = [type(r) for r in results]
    assert kinds.index(dg.AssetCheckResult) > max(i for i, k in enumerate(kinds) if k is dg.MaterializeResult)


def test_one_connection_runs_the_tasks_one_by_one_in_order():
    clock = Clock()
    run([clock.write("a"), clock.write("b"), needing(clock.write("c"), "a")], connections=1)
    assert clock.most == 1
    assert [name for name, _ in sorted(clock.spans.items(), key=lambda item: item[1][0])] == ["a", "b", "c"]


def test_a_failed_blocking_check_stops_only_what_reads_its_table():
    clock = Clock()
    tasks = [
        clock.write("snapshot"),
        clock.check("snapshot", passed=False),
        needing(clock.write("health"), "snapshot"),
        needing(clock.write("dashboard"), "health"),
        clock.write("change"),
    ]
    results = run(tasks)
    assert written(results) == {"snapshot", "change"}
    assert [r.passed for r in results if isinstance(r, dg.AssetCheckResult)] == [False]


def test_a_failed_warning_check_stops_nothing():
    clock = Clock()
    results = run([clock.write("snapshot"), clock.check("snapshot", passed=False, blocking=False),
                   needing(clock.write("health"), "snapshot")])
    assert written(results) == {"snapshot", "health"}


def test_an_error_stops_new_work_lets_running_work_finish_and_is_raised_after_what_finished():
    clock = Clock()
    tasks = [
        clock.write("fails", 0.05, fail=RuntimeError("boom")),
        clock.write("longer", 0.2),
        clock.write("not_started"),
        needing(clock.write("downstream"), "fails"),
    ]
    results = []
    with pytest.raises(RuntimeError, match="boom"):
        for result in results_of(tasks):
            results.append(result)
    assert written(results) == {"longer"}
    assert set(clock.spans) == {"fails", "longer"}


def test_a_preview_waits_for_what_it_shows_and_joins_its_tables_materialization():
    clock = Clock()
    write = Task(("change",), lambda: [dg.MaterializeResult(asset_key="change", metadata={"dagster/row_count": 3})])
    preview = preview_task(dg.AssetSpec("change"), lambda: {"largest movements": "md"}, needs=("health",))
    results = run([write, preview, needing(clock.write("health", 0.1), "snapshot"), clock.write("snapshot", 0.1)])
    [change] = [r for r in results if r.asset_key == dg.AssetKey("change")]
    assert {k: getattr(v, "value", v) for k, v in change.metadata.items() if k != "step_seconds"} == {"dagster/row_count": 3, "largest movements": "md"}
