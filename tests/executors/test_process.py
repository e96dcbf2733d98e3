"""The process backend beyond the contract: dead workers, pickling checks, what is sent once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from branch_programs import Counted, Probe, Unpicklable

import tea
from executors import BranchTask, ParallelConfig, SupportsWarm
from executors._pickling import content_key, dumps
from executors._worker import SHARED_CACHE
from executors.process import ProcessExecutor
from tea.errors import SerializationError

pytestmark = pytest.mark.timeout(60)

CONFIG = ParallelConfig(strategy="process", max_workers=2)
SHARED: dict[str, Any] = {}


def task(index: int, shared: dict[str, Any] = SHARED, **overrides: object) -> BranchTask:
    """Branch ``index``: ``overrides`` are its own keys, ``shared`` the fan-out's input."""
    return BranchTask(
        f"fan[{index}]", "work", None, shared, index=index, target=f"t{index}",
        overrides=dict(overrides),
    )


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
    assert dead.update == {"mode": mode}
    assert dead.error is not None
    assert (dead.error.type, dead.error.category) == ("WorkerDied", "worker_died")
    assert dead.error.exit_status == status
    assert how in dead.error.message
    assert dead.pid is not None and gone(dead.pid)
    assert results[0].success and results[2].success
    later = list(executor.run(Probe(), [task(3), task(4)], CONFIG))
    assert all(r.success for r in later)


def test_an_unpicklable_item_is_refused_before_any_branch_starts(executor, tmp_path):
    marker = tmp_path / "ran"
    tasks = [
        task(0, mode="touch", path=str(marker)),
        task(1, client={"name": "db", "conn": threading.Lock()}),
    ]
    with pytest.raises(SerializationError) as caught:
        executor.run(Probe(), tasks, CONFIG)
    assert caught.value.branch == "fan[1]"
    assert caught.value.category == "setup"
    assert "'client.conn' of the branch's own input" in caught.value.message
    assert not marker.exists()


def test_an_unpicklable_shared_input_is_refused_before_any_branch_starts(executor, tmp_path):
    marker = tmp_path / "ran"
    shared = {"db": {"name": "db", "conn": threading.Lock()}}
    tasks = [task(0, shared, mode="touch", path=str(marker)), task(1, shared)]
    with pytest.raises(SerializationError) as caught:
        executor.run(Probe(), tasks, CONFIG)
    assert caught.value.branch == "fan[0]"
    assert "'db.conn' of the fan-out's shared input" in caught.value.message
    assert not marker.exists()


def test_the_shared_input_is_pickled_once_and_sent_to_each_worker_once(executor, tmp_path):
    log = tmp_path / "log"
    shared = {"big": Counted(str(log), b"x" * (1 << 20))}
    first = list(executor.run(Probe(), [task(i, shared, n=i) for i in range(64)], CONFIG))
    again = list(executor.run(Probe(), [task(i, shared, n=i) for i in range(8)], CONFIG))
    assert all(r.success and "big" not in r.update for r in first + again)
    lines = log.read_text().split("\n")
    dumps_by = [line for line in lines if line.startswith("dump ")]
    loads_by = [line.split()[1] for line in lines if line.startswith("load ")]
    assert dumps_by == [f"dump {os.getpid()}"] * 2  # once per batch, in the driver
    workers = {str(r.pid) for r in first + again}
    assert sorted(loads_by) == sorted(workers)  # once per worker, not again for batch 2


def test_a_worker_that_lost_a_shared_state_is_sent_it_again():
    with ProcessExecutor(max_workers=1) as executor:
        config = ParallelConfig(strategy="process", max_workers=1)
        (first,) = executor.run(Probe(), [task(0, {"v": 1})], config)
        (worker,) = executor._pool._idle
        other = {"v": 2}
        worker.shared[content_key(dumps(other))] = None  # the driver wrongly thinks it is there
        (second,) = executor.run(Probe(), [task(1, other, mode="ok")], config)
    assert first.success and second.success
    assert second.pid == first.pid


def test_workers_keep_only_the_last_few_shared_states():
    with ProcessExecutor(max_workers=1) as executor:
        config = ParallelConfig(strategy="process", max_workers=1)
        for n in range(SHARED_CACHE + 2):
            (result,) = executor.run(Probe(), [task(0, {"v": n})], config)
            assert result.success
        (worker,) = executor._pool._idle
    assert list(worker.shared) == [
        content_key(dumps({"v": n})) for n in range(2, SHARED_CACHE + 2)
    ]


def test_an_unpicklable_update_fails_that_branch(executor):
    (result,) = executor.run(Probe(), [task(0, mode="unpicklable")], CONFIG)
    assert not result.success
    assert result.error is not None
    assert (result.error.type, result.error.category) == ("SerializationError", "setup")
    assert "'lock' of the branch's update" in result.error.message


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


def test_warm_starts_the_pool_in_the_background():
    with ProcessExecutor(max_workers=2) as executor:
        assert isinstance(executor, SupportsWarm)
        executor.warm()
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
