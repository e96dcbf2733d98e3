"""The ParallelExecutor contract, run unchanged against every backend in ``conftest.BACKENDS``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from contract_program import ContractProgram

from executors import BranchResult, BranchTask, BreakerPolicy, RetryPolicy
from executors.base import ParallelExecutor

pytestmark = pytest.mark.timeout(60)

MakeTask = Callable[..., BranchTask]
NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_ms=1, backoff_max_ms=1, jitter=False)


def by_id(results: list[BranchResult]) -> dict[str, BranchResult]:
    return {r.branch_id: r for r in results}


def test_satisfies_the_protocol(backend):
    executor = backend.executor()
    assert isinstance(executor, ParallelExecutor)


def test_one_result_per_task_with_id_and_index(backend, contract_program, make_task):
    tasks = [make_task(i) for i in range(5)]
    with backend.executor() as executor:
        results = list(executor.run(contract_program, tasks, backend.configure()))
    assert sorted((r.index, r.branch_id) for r in results) == [
        (t.index, t.branch_id) for t in tasks
    ]
    assert all(r.success and r.error is None and r.attempts == 1 for r in results)
    assert {r.index: r["out"] for r in results} == {i: i * 2 for i in range(5)}


def test_no_tasks_no_results(backend, contract_program):
    with backend.executor() as executor:
        assert list(executor.run(contract_program, [], backend.configure())) == []


def test_results_come_as_branches_finish(backend, contract_program, make_task, tmp_path):
    """Branch 0 cannot end before the caller has seen branch 1's result (it waits for a
    file the caller makes then), so an executor that held results back would show 0 first."""
    backend.require_concurrency()
    gate = tmp_path / "seen-the-first"
    tasks = [make_task(0, wait_for=str(gate)), make_task(1)]
    order = []
    with backend.executor() as executor:
        for result in executor.run(contract_program, tasks, backend.configure()):
            order.append(result.index)
            gate.touch()
    assert order == [1, 0]


def test_a_result_carries_the_branchs_update_not_the_shared_input(
    backend, contract_program, make_task
):
    shared = {"ticks": 0, "slow_ticks": 0, "shared": {"seen": ["before"]}, "big": list(range(1000))}
    tasks = [make_task(i, shared=shared) for i in range(3)]
    with backend.executor() as executor:
        results = list(executor.run(contract_program, tasks, backend.configure()))
    for result in results:
        name = f"b{result.index}"
        assert result.update["shared"] == {"seen": ["before", name]}
        assert set(result.update) == {"i", "name", "out", "pid", "shared"}
        assert "big" not in result.update
        seen = result.with_base(shared)
        assert seen["big"] == list(range(1000)) and seen["name"] == name
    assert shared["shared"] == {"seen": ["before"]}


def test_results_survive_json(backend, contract_program, make_task):
    tasks = [make_task(0), make_task(1, fail=True)]
    with backend.executor() as executor:
        results = list(executor.run(contract_program, tasks, backend.configure()))
    for result in results:
        assert BranchResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_failing_branch_is_a_result_with_its_error(backend, contract_program, make_task):
    tasks = [make_task(0, fail=True), make_task(1)]
    with backend.executor() as executor:
        results = by_id(list(executor.run(contract_program, tasks, backend.configure())))
    bad, good = results["start[0]"], results["start[1]"]
    assert good.success
    assert not bad.success
    assert bad.update == dict(tasks[0].overrides)
    assert bad.error is not None
    assert bad.error.node == "work"
    assert bad.error.category == "error"
    assert "boom in b0" in bad.error.message
    assert bad.error.matches(["ValueError"])
    assert "ValueError" in (bad.error.traceback or "")


def test_timeout_fails_only_the_slow_branch(backend, contract_program, make_task):
    tasks = [make_task(0, slow_ticks=1000), make_task(1)]
    config = backend.configure(timeout_seconds=2.0)  # time enough for the quick one on a busy host
    with backend.executor() as executor:
        results = by_id(list(executor.run(contract_program, tasks, config)))
    slow = results["start[0]"]
    assert not slow.success
    assert slow.error is not None
    assert (slow.error.type, slow.error.category) == ("BranchTimeout", "timeout")
    assert slow.error.matches(["TimeoutError"])
    assert slow.update == dict(tasks[0].overrides)
    assert results["start[1]"].success


def test_retry_until_success_counts_attempts(backend, contract_program, make_task, tmp_path):
    task = make_task(0, counter=str(tmp_path / "count"), fail_times=2)
    config = backend.configure(retry=NO_WAIT)
    with backend.executor() as executor:
        (result,) = executor.run(contract_program, [task], config)
    assert result.success
    assert result.attempts == 3
    assert (tmp_path / "count").read_text() == "3"


def test_retries_stop_at_max_attempts(backend, contract_program, make_task, tmp_path):
    task = make_task(0, counter=str(tmp_path / "count"), fail_times=10)
    with backend.executor() as executor:
        (result,) = executor.run(contract_program, [task], backend.configure(retry=NO_WAIT))
    assert not result.success
    assert result.attempts == 3
    assert result.error is not None
    assert "transient failure 3" in result.error.message


def test_retry_on_limits_which_errors_are_retried(
    backend, contract_program, make_task, tmp_path
):
    task = make_task(0, counter=str(tmp_path / "count"), fail_times=1)
    config = backend.configure(retry=RetryPolicy(
        max_attempts=3, backoff_base_ms=1, backoff_max_ms=1, retry_on=("KeyError",)
    ))
    with backend.executor() as executor:
        (result,) = executor.run(contract_program, [task], config)
    assert not result.success
    assert result.attempts == 1


def test_breaker_opens_after_threshold(backend, contract_program, make_task):
    tasks = [make_task(i, target="flaky", fail=True) for i in range(4)]
    config = backend.configure(
        max_workers=1, circuit_breaker=BreakerPolicy(failure_threshold=2, reset_timeout_seconds=60)
    )
    with backend.executor() as executor:
        results = sorted(executor.run(contract_program, tasks, config), key=lambda r: r.index)
    assert [r.error.type if r.error else None for r in results] == [
        "NodeError", "NodeError", "CircuitOpen", "CircuitOpen"
    ]
    assert [r.error.category if r.error else None for r in results] == [
        "error", "error", "circuit_open", "circuit_open"
    ]
    assert [r.breaker_state for r in results] == ["closed", "open", "open", "open"]


def test_breaker_lives_for_the_executor_and_recovers(backend, contract_program, make_task):
    config = backend.configure(
        max_workers=1, circuit_breaker=BreakerPolicy(failure_threshold=1, reset_timeout_seconds=1)
    )
    with backend.executor() as executor:
        (first,) = executor.run(contract_program, [make_task(0, target="t", fail=True)], config)
        (refused,) = executor.run(contract_program, [make_task(1, target="t")], config)
        (other,) = executor.run(contract_program, [make_task(2, target="other")], config)
        time.sleep(1.1)  # the breaker's reset timeout passes: the next branch is its trial
        (trial,) = executor.run(contract_program, [make_task(3, target="t")], config)
    assert first.breaker_state == "open"
    assert refused.error is not None and refused.error.type == "CircuitOpen"
    assert other.success and other.breaker_state == "closed"
    assert trial.success and trial.breaker_state == "closed"


def test_fail_fast_cancels_unfinished_branches(backend, contract_program, make_task):
    tasks = [make_task(0, fail=True), make_task(1, slow_ticks=1000), make_task(2, slow_ticks=1000)]
    config = backend.configure(fail_fast=True, max_workers=3)
    with backend.executor() as executor:
        results = by_id(list(executor.run(contract_program, tasks, config)))
    assert results["start[0]"].error is not None
    assert results["start[0]"].error.type == "NodeError"
    for branch in ("start[1]", "start[2]"):
        error = results[branch].error
        assert error is not None and (error.type, error.category) == ("Cancelled", "cancelled")


def test_caller_cancel_stops_unfinished_branches(backend, contract_program, make_task):
    tasks = [make_task(0), make_task(1, slow_ticks=1000), make_task(2, slow_ticks=1000)]
    cancel = threading.Event()
    results = []
    with backend.executor() as executor:
        for result in executor.run(contract_program, tasks, backend.configure(), cancel):
            results.append(result)
            cancel.set()
    assert results[0].branch_id == "start[0]" and results[0].success
    assert {r.error.category for r in results[1:] if r.error} == {"cancelled"}
    assert len(results) == 3


def test_executor_is_reused_across_runs(backend, contract_program, make_task):
    with backend.executor() as executor:
        for round_ in range(3):
            tasks = [make_task(i, sleep=0) for i in range(3)]
            results = list(executor.run(contract_program, tasks, backend.configure()))
            assert all(r.success for r in results), round_


def test_close_is_idempotent_and_final(backend, contract_program, make_task):
    executor = backend.executor()
    list(executor.run(contract_program, [make_task(0)], backend.configure()))
    executor.close()
    executor.close()
    with pytest.raises(RuntimeError):
        executor.run(contract_program, [make_task(0)], backend.configure())


def test_other_programs_share_the_executor(backend, contract_program, make_task):
    other = ContractProgram(key="other", mark="other")
    with backend.executor() as executor:
        (a,) = executor.run(contract_program, [make_task(0)], backend.configure())
        (b,) = executor.run(other, [make_task(0)], backend.configure())
    assert a.success and "other" not in a.update
    assert b.success and b["other"] is True
