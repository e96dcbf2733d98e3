"""The process backend beyond the contract: dead workers, pickling checks, the program cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from branch_programs import Probe, Unpicklable

import tea
from executors import BranchTask, ParallelConfig
from executors.process import ProcessExecutor
from tea.errors import SerializationError

pytestmark = pytest.mark.timeout(60)

CONFIG = ParallelConfig(strategy="process", max_workers=2)


def task(index: int, **state: object) -> BranchTask:
    return BranchTask(f"fan[{index}]", "work", None, dict(state), index=index, target=f"t{index}")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def executor():
    with ProcessExecutor() as made:
        yield made


def test_workers_are_not_forked(executor):
    assert executor._pool._context.get_start_method() in ("forkserver", "spawn")


@pytest.mark.parametrize(
    ("mode", "status", "how"),
    [("exit", 3, "exit code 3"), ("sigkill", 137, "SIGKILL"), ("segfault", 139, "SIGSEGV")],
)
def test_a_dead_worker_fails_only_its_branch(executor, mode, status, how):
    tasks = [task(0), task(1, mode=mode), task(2)]
    results = {r.index: r for r in executor.run(Probe(), tasks, CONFIG)}
    dead = results[1]
    assert not dead.success
    assert dead.error is not None
    assert dead.error.type == "WorkerDied"
    assert dead.error.exit_status == status
    assert how in dead.error.message
    assert dead.pid is not None and gone(dead.pid)
    assert results[0].success and results[2].success
    later = list(executor.run(Probe(), [task(3), task(4)], CONFIG))
    assert all(r.success for r in later)


def test_unpicklable_input_state_is_refused_before_any_branch_starts(executor, tmp_path):
    marker = tmp_path / "ran"
    tasks = [
        task(0, mode="touch", path=str(marker)),
        task(1, client={"name": "db", "conn": threading.Lock()}),
    ]
    with pytest.raises(SerializationError) as caught:
        executor.run(Probe(), tasks, CONFIG)
    assert caught.value.branch == "fan[1]"
    assert "'client.conn'" in caught.value.message
    assert not marker.exists()


def test_unpicklable_final_state_fails_that_branch(executor):
    (result,) = executor.run(Probe(), [task(0, mode="unpicklable")], CONFIG)
    assert not result.success
    assert result.error is not None
    assert result.error.type == "SerializationError"
    assert "'lock'" in result.error.message


def test_a_program_that_cannot_be_pickled_is_refused(executor):
    with pytest.raises(SerializationError):
        executor.run(Unpicklable(), [task(0)], CONFIG)


def test_child_exceptions_carry_type_message_and_traceback(executor):
    (result,) = executor.run(Probe(), [task(0, mode="raise")], CONFIG)
    assert result.error is not None
    assert result.error.type == "KeyError"
    assert "missing thing" in result.error.message
    assert "branch_programs.py" in (result.error.traceback or "")


def test_program_is_sent_once_per_worker_and_pool_is_reused(executor, tmp_path):
    log = tmp_path / "loads"
    program = Probe(str(log))
    first = list(executor.run(program, [task(i) for i in range(4)], CONFIG))
    pids = {r.pid for r in first}
    for _ in range(3):
        again = list(executor.run(program, [task(i) for i in range(4)], CONFIG))
        assert {r.pid for r in again} <= pids
    loads = log.read_text().split()
    assert sorted(loads) == sorted(str(pid) for pid in pids)


def test_a_timed_out_branch_has_its_worker_killed(executor):
    config = ParallelConfig(strategy="process", max_workers=2, timeout_seconds=1.0)
    results = {r.index: r for r in executor.run(
        Probe(), [task(0, mode="sleep", seconds=30), task(1)], config
    )}
    assert results[0].error is not None and results[0].error.type == "BranchTimeout"
    assert results[0].pid is not None and gone(results[0].pid)
    assert results[1].success
    (later,) = executor.run(Probe(), [task(2)], config)
    assert later.success


def test_workflow_code_travels_to_the_workers(tmp_path: Path):
    """Inline Python (with a local function) and Lua run in workers via cloudpickle."""
    path = tmp_path / "flow.yaml"
    path.write_text(
        """
name: process-strategy
settings:
  parallel:
    strategy: process
    on_branch_failure: fail
nodes:
  - name: start
    run: |
      return {"base": 10}
  - name: py
    run: |
      import os
      def scale(x):
          return x * state["base"]
      return {"py": scale(2), "py_pid": os.getpid()}
  - name: lua
    language: lua
    run: |
      return {lua = state.base + 1}
  - name: merge
    run: |
      by = {r.branch_id: r for r in parallel_results}
      return {"py": by["start[py]"]["py"], "lua": by["start[lua]"]["lua"],
              "py_pid": by["start[py]"]["py_pid"]}
edges:
  - from: start
    to: [py, lua]
    parallel: true
    fan_in: merge
  - from: merge
    to: __end__
"""
    )
    final = tea.load(path).invoke({})
    assert final["py"] == 20
    assert final["lua"] == 11
    assert final["py_pid"] != os.getpid()


def test_a_script_without_a_main_guard_fails_fast_with_advice(tmp_path: Path):
    """Workers re-import the driver's script; without the guard that must not hang."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "settings: {parallel: {strategy: process}}\n"
        "nodes:\n  - name: start\n  - name: a\n  - name: b\n  - name: merge\n"
        "edges:\n  - {from: start, to: [a, b], parallel: true, fan_in: merge}\n"
        "  - {from: merge, to: __end__}\n"
    )
    script = tmp_path / "no_guard.py"
    script.write_text(f"import tea\ntea.load({str(flow)!r}).invoke({{}})\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode != 0
    assert "WorkerDied" in done.stderr
    assert "if __name__ == '__main__':" in done.stderr


def test_start_warms_the_pool_in_the_background():
    with ProcessExecutor(max_workers=2) as executor:
        executor.start()
        results = list(executor.run(Probe(), [task(0), task(1), task(2)], CONFIG))
    assert all(r.success for r in results)
    assert len({r.pid for r in results}) <= 2


UNPICKLABLE_FLOW = """
settings: {parallel: {strategy: process}}
nodes:
  - name: start
    run: |
      from branch_programs import make_client
      return {"client": make_client()} if state.get("make_client") else {}
  - name: a
    run: |
      open(state["marker"], "w").write("ran")
  - name: b
  - name: merge
edges:
  - {from: start, to: [a, b], parallel: true, fan_in: merge}
  - {from: merge, to: __end__}
"""


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ({"db": {"name": "db", "conn": threading.Lock()}}, "db.conn"),
        ({"make_client": True}, "client.lock"),
        ({"jobs": [1, {"conn": threading.Lock()}]}, "jobs[1].conn"),
    ],
)
def test_the_engine_refuses_unpicklable_state_before_any_branch_starts(tmp_path, given, path):
    """Through tea.loads().invoke(): a SerializationError naming branch and key, not a TypeError
    from copying the state for the fan-out."""
    marker = tmp_path / "ran"
    with pytest.raises(SerializationError) as caught:
        tea.loads(UNPICKLABLE_FLOW).invoke({"marker": str(marker), **given})
    assert caught.value.branch == "start[a]"
    assert f"'{path}'" in caught.value.message
    assert not marker.exists()
