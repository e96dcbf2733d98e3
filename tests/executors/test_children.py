"""The process backend kills what a branch started along with its worker.

A branch starts real ``sleep`` programs (in the worker's group, and with
``setsid`` out of it, some orphaned at once) that carry a unique number in their
argv; after a timeout, a cancel or the executor's close, none may be left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from executors import BranchTask, ParallelConfig
from executors._sync import kill_tree
from executors.process import ProcessExecutor
from tests.process_marks import alive, gone, new_mark, wait_for

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.timeout(90),
]

# In the worker's group; out of it with its parent waiting; orphaned in a group of its own.
PROGRAMS = [
    "sleep 300.{m}1",
    "setsid sleep 300.{m}2 & wait",
    "setsid sh -c 'sleep 300.{m}3 & sleep 300.{m}4' >/dev/null 2>&1 </dev/null &",
]


class Spawner:
    """A ``BranchProgram`` whose branches start ``PROGRAMS``, then sleep ``state["stay"]`` s."""

    key = "spawner"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        state = task.initial_state()
        for line in PROGRAMS:
            subprocess.Popen(["sh", "-c", line.format(m=state["mark"])])
        time.sleep(state["stay"])
        return {"pid": os.getpid(), "group": os.getpgid(0)}


class Orphaner:
    """A ``BranchProgram`` whose branches leave an orphan that exits at once, and report
    the zombie children their worker holds when they start."""

    key = "orphaner"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        zombies = [pid for pid in children(os.getpid()) if state_of(pid) == "Z"]
        subprocess.run(["sh", "-c", "setsid sh -c 'sleep 0.1' &"], check=True)
        time.sleep(0.3)  # the orphan is adopted by the worker and exits
        return {"zombies": len(zombies)}


def children(pid: int) -> list[int]:
    return [int(child) for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def task(index: int, mark: str, stay: float) -> BranchTask:
    return BranchTask(f"fan[{index}]", "work", None, {"mark": mark, "stay": stay}, index=index)


def test_a_timed_out_branch_takes_its_programs_along():
    mark = new_mark()
    config = ParallelConfig(strategy="process", max_workers=2, timeout_seconds=2)
    with ProcessExecutor() as executor:
        results = list(executor.run(Spawner(), [task(0, mark, 300), task(1, mark, 300)], config))
    assert [r.error.category for r in results if r.error] == ["timeout", "timeout"]
    assert gone(mark) == []


def test_a_cancelled_batch_takes_its_programs_along():
    mark = new_mark()
    cancel = threading.Event()
    config = ParallelConfig(strategy="process", max_workers=2)
    with ProcessExecutor() as executor:
        tasks = [task(0, mark, 300), task(1, mark, 300)]
        results: list[Any] = []
        batch = threading.Thread(
            target=lambda: results.extend(executor.run(Spawner(), tasks, config, cancel))
        )
        batch.start()
        wait_for(mark, 8)
        cancel.set()
        batch.join(timeout=60)
    assert [r.success for r in results] == [False, False]
    assert gone(mark) == []


def test_programs_a_finished_branch_left_die_when_the_executor_closes():
    mark = new_mark()
    config = ParallelConfig(strategy="process", max_workers=1)
    with ProcessExecutor() as executor:
        [result] = executor.run(Spawner(), [task(0, mark, 0.5)], config)
        assert result.success, result.error
        # The worker leads its own group: one killpg reaches it and what stayed in it.
        assert result.update["group"] == result.update["pid"] != os.getpgid(0)
        assert alive(mark)  # the daemons outlive their branch while the worker lives
    assert gone(mark) == []


def test_kill_tree_reaches_orphans_through_the_mark():
    mark = new_mark()
    env = {**os.environ, "TEA_PROCESS_MARK": f"outer:{mark}"}
    line = "setsid sh -c 'sleep 300.{m}1 & sleep 300.{m}2' >/dev/null 2>&1 </dev/null & sleep 300.{m}3"
    proc = subprocess.Popen(["sh", "-c", line.format(m=mark)], env=env, start_new_session=True)
    wait_for(mark, 3)
    kill_tree([proc.pid], mark=mark)
    assert proc.wait(timeout=30) == -9
    assert gone(mark) == []


def test_a_worker_reaps_the_orphans_it_adopted():
    config = ParallelConfig(strategy="process", max_workers=1)
    tasks = [BranchTask(f"fan[{i}]", "work", None, {}, index=i) for i in range(3)]
    with ProcessExecutor() as executor:
        results = list(executor.run(Orphaner(), tasks, config))
    assert [r.update["zombies"] for r in results] == [0, 0, 0]
