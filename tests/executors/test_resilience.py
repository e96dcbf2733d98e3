"""The shared reliability layer: cancel tokens, thread reuse, breakers, backoff and the runner."""

from __future__ import annotations

import json
import threading
import time

import pytest

from executors import BranchResult, BranchTask, BreakerPolicy, ErrorInfo, ParallelConfig, RetryPolicy
from executors._breakers import TargetBreaker
from executors._sync import CancelToken, DaemonThreads
from executors.resilience import (
    AttemptContext,
    ResilientRunner,
    _backoff,
    cancelled,
    error_info,
    failed,
    succeeded,
)
from tea.errors import BranchTimeout, NodeError

pytestmark = pytest.mark.timeout(30)


def task(index: int, target: str = "") -> BranchTask:
    return BranchTask(f"fan[{index}]", "a", None, {"i": index}, index=index, target=target)


@pytest.fixture
def runner():
    made = ResilientRunner("test")
    yield made
    made.close()


# -- cancel tokens and threads ------------------------------------------------------------


def test_child_token_follows_its_parent_but_not_the_other_way():
    parent = CancelToken()
    child, detached = CancelToken(parent), CancelToken(parent)
    detached.detach()
    other_parent = CancelToken()
    CancelToken(other_parent).cancel()
    assert not other_parent.cancelled
    parent.cancel()
    assert child.cancelled
    assert not detached.cancelled


def test_on_cancel_runs_once_and_can_be_unhooked():
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("a"))
    unhook = token.on_cancel(lambda: calls.append("b"))
    unhook()
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["a", "late"]


def test_daemon_threads_are_reused():
    threads = DaemonThreads("t")
    names: list[str] = []
    for _ in range(3):
        done = threading.Event()

        def job(done: threading.Event = done) -> None:
            names.append(threading.current_thread().name)
            assert threading.current_thread().daemon
            done.set()

        threads.submit(job)
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while threads._idle == 0 and time.monotonic() < deadline:  # back to idle, after the job
            time.sleep(0.001)
    threads.close()
    threads.close()
    assert names == ["t-1"] * 3
    with pytest.raises(RuntimeError):
        threads.submit(lambda: None)


# -- errors ----------------------------------------------------------------------------------


def test_error_info_matches_bases_and_causes_and_survives_json():
    try:
        try:
            raise ConnectionResetError("peer went away")
        except OSError as exc:
            raise NodeError("call failed", node="fetch") from exc
    except NodeError as exc:
        info = error_info(exc)
    assert info.type == "NodeError"
    assert info.node == "fetch"
    assert info.matches(["ConnectionError"])
    assert info.matches(["RunError"])
    assert not info.matches(["KeyError"])
    result = failed(task(0), info)
    again = BranchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.error is not None and again.error.matches(["ConnectionResetError"])


def test_stopped_attempt_is_timeout_unless_the_batch_was_cancelled():
    batch = CancelToken()
    ctx = AttemptContext(task(0), CancelToken(batch), time.monotonic(), 0.5, batch)
    timeout = ctx.stopped()
    batch.cancel()
    stopped = ctx.stopped()
    assert timeout.error is not None and timeout.error.type == "BranchTimeout"
    assert timeout.error.matches([BranchTimeout.__name__, "TimeoutError"])
    assert stopped.error is not None and stopped.error.type == "Cancelled"
    assert cancelled(task(1)).error == stopped.error


# -- breakers --------------------------------------------------------------------------------


def test_breaker_trips_at_threshold_then_allows_one_trial():
    breaker = TargetBreaker("api", BreakerPolicy(failure_threshold=2, reset_timeout_seconds=0.2))
    bad = failed(task(0), ErrorInfo("ValueError", "x"))
    for _ in range(2):
        ticket = breaker.admit()
        assert ticket == "closed"
        breaker.record(bad, ticket)
    assert breaker.state == "open"
    assert breaker.admit() is None
    assert "open after 2 consecutive failures" in breaker.open_error("fan[0]").message
    time.sleep(0.25)
    trial = breaker.admit()
    assert trial == "trial"
    assert breaker.admit() is None  # one trial at a time
    breaker.record(bad, trial)
    assert breaker.state == "open"
    time.sleep(0.25)
    trial = breaker.admit()
    assert trial == "trial"
    breaker.record(succeeded(task(0), {}), trial)
    assert breaker.state == "closed"


def test_cancelled_attempts_do_not_count_against_the_target():
    breaker = TargetBreaker("api", BreakerPolicy(failure_threshold=1))
    ticket = breaker.admit()
    assert ticket is not None
    breaker.record(cancelled(task(0)), ticket)
    assert breaker.state == "closed"


# -- backoff ---------------------------------------------------------------------------------


def _wait_for(policy_wait, attempt: int) -> float:
    import tenacity

    state = tenacity.RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    return float(policy_wait(state))


def test_backoff_is_exponential_and_capped():
    plain = _backoff(100, 350, jitter=False)
    assert [_wait_for(plain, n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.35, 0.35]
    jittered = _backoff(100, 350, jitter=True)
    for n, ceiling in ((1, 0.1), (2, 0.2), (5, 0.35)):
        assert 0 <= _wait_for(jittered, n) <= ceiling


# -- the runner ------------------------------------------------------------------------------


def test_each_try_sees_its_attempt_number(runner):
    seen: list[int] = []

    def attempt(ctx: AttemptContext) -> BranchResult:
        seen.append(ctx.task.attempt)
        if ctx.task.attempt < 3:
            return failed(ctx.task, ErrorInfo("ValueError", "again"))
        return succeeded(ctx.task, {"ok": True})

    retry = RetryPolicy(max_attempts=5, backoff_base_ms=1, backoff_max_ms=1)
    (result,) = runner.run([task(0)], ParallelConfig(retry=retry), attempt, workers=1)
    assert seen == [1, 2, 3]
    assert result.success and result.attempts == 3 and result.index == 0


def test_fail_fast_interrupts_a_branch_waiting_for_its_retry(runner):
    def attempt(ctx: AttemptContext) -> BranchResult:
        if ctx.task.index == 0:
            return failed(ctx.task, ErrorInfo("ValueError", "retry me later"))
        time.sleep(0.2)
        return failed(ctx.task, ErrorInfo("KeyError", "fatal"))

    config = ParallelConfig(
        fail_fast=True,
        retry=RetryPolicy(
            max_attempts=2, backoff_base_ms=60_000, backoff_max_ms=60_000, jitter=False,
            retry_on=("ValueError",),
        ),
    )
    results = {r.index: r for r in runner.run([task(0), task(1)], config, attempt, workers=2)}
    assert results[1].error is not None and results[1].error.type == "KeyError"
    assert results[0].error is not None and results[0].error.type == "Cancelled"
    assert results[0].attempts == 2


def test_a_backend_that_raises_still_yields_a_failed_result(runner):
    def attempt(ctx: AttemptContext) -> BranchResult:
        raise RuntimeError("backend bug")

    (result,) = runner.run([task(0)], ParallelConfig(), attempt, workers=1)
    assert not result.success
    assert result.error is not None and result.error.type == "RuntimeError"


def test_concurrency_is_bounded_by_workers(runner):
    lock = threading.Lock()
    running, peak = 0, 0

    def attempt(ctx: AttemptContext) -> BranchResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return succeeded(ctx.task, {})

    results = list(runner.run([task(i) for i in range(6)], ParallelConfig(), attempt, workers=2))
    assert len(results) == 6
    assert peak == 2


def test_closing_the_results_early_cancels_running_attempts(runner):
    stopped = threading.Event()

    def attempt(ctx: AttemptContext) -> BranchResult:
        if ctx.task.index == 0:
            return succeeded(ctx.task, {})
        if ctx.token.event.wait(10):
            stopped.set()
        return ctx.stopped()

    results = runner.run([task(0), task(1)], ParallelConfig(), attempt, workers=2)
    first = next(results)
    results.close()  # type: ignore[attr-defined]
    assert first.index == 0
    assert stopped.wait(5)


def test_breakers_are_per_target(runner):
    def attempt(ctx: AttemptContext) -> BranchResult:
        if ctx.task.target == "bad":
            return failed(ctx.task, ErrorInfo("ValueError", "down"))
        return succeeded(ctx.task, {})

    config = ParallelConfig(circuit_breaker=BreakerPolicy(failure_threshold=1))
    tasks = [task(0, "bad"), task(1, "bad"), task(2, "good")]
    results = {r.index: r for r in runner.run(tasks, config, attempt, workers=1)}
    assert results[1].error is not None and results[1].error.type == "CircuitOpen"
    assert results[2].success and results[2].breaker_state == "closed"
    assert runner.breakers.states() == {"bad": "open", "good": "closed"}
