"""``executors.testing.InlineExecutor``: branches in the caller's thread, in order, with scripted failures."""

from __future__ import annotations

import threading

import pytest
from contract_program import ContractProgram

from executors import BranchTask, ParallelConfig, RetryPolicy, get_executor, register_executor
from executors.testing import InlineExecutor
from tea.errors import WorkerDied

pytestmark = pytest.mark.timeout(30)

CONFIG = ParallelConfig(strategy="inline")
SHARED = {"ticks": 0}


def task(index: int, **overrides: object) -> BranchTask:
    return BranchTask(
        f"fan[{index}]", "work", None, SHARED, index=index, target=f"t{index}",
        overrides={"i": index, "name": f"b{index}", **overrides},
    )


class Recorder(ContractProgram):
    """The contract program, noting which thread ran which branch."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[tuple[str, str]] = []

    def run_branch(self, task, cancel=None):  # type: ignore[no-untyped-def]
        self.ran.append((task.branch_id, threading.current_thread().name))
        return super().run_branch(task, cancel)


def test_branches_run_in_declaration_order_in_the_callers_thread():
    program = Recorder()
    with InlineExecutor() as executor:
        results = list(executor.run(program, [task(2), task(0), task(1)], CONFIG))
    me = threading.current_thread().name
    assert program.ran == [("fan[2]", me), ("fan[0]", me), ("fan[1]", me)]
    assert [r.index for r in results] == [2, 0, 1]
    assert [r["out"] for r in results] == [4, 0, 2]
    assert [t.branch_id for t in executor.tasks] == ["fan[2]", "fan[0]", "fan[1]"]


def test_a_scripted_failure_replaces_that_try_of_that_branch():
    program = Recorder()
    script = {"fan[1]": [WorkerDied("lost the worker", exit_status=137)]}
    config = ParallelConfig(strategy="inline", retry=RetryPolicy(max_attempts=2, backoff_base_ms=0))
    with InlineExecutor(failures=script) as executor:
        first, second = executor.run(program, [task(0), task(1)], CONFIG)
        (retried,) = executor.run(program, [task(1)], config)
    assert first.success
    assert second.error is not None
    assert (second.error.category, second.error.exit_status) == ("worker_died", 137)
    assert second.update == dict(task(1).overrides)
    assert retried.success and retried.attempts == 2
    assert [branch for branch, _ in program.ran] == ["fan[0]", "fan[1]"]


def test_an_error_scripted_for_every_try():
    script = {"fan[0]": WorkerDied("always")}
    config = ParallelConfig(strategy="inline", retry=RetryPolicy(max_attempts=3, backoff_base_ms=0))
    with InlineExecutor(failures=script) as executor:
        (result,) = executor.run(ContractProgram(), [task(0)], config)
    assert not result.success and result.attempts == 3


def test_a_test_registers_it_under_a_strategy_name():
    made = InlineExecutor()
    register_executor("inline-registered", lambda: made)
    assert get_executor("inline-registered") is made
