"""The shared reliability layer: cancel tokens, thread reuse, results and the batch runner."""

from __future__ import annotations

import json
import threading
import time

import pytest

from executors import BranchResult, BranchTask, BreakerPolicy, ErrorInfo, ParallelConfig, RetryPolicy
from executors._sync import CancelToken, DaemonThreads
from executors.resilience import AttemptContext, BatchRunner
from executors.results import cancelled, error_info, failed, succeeded, with_stderr
from tea.errors import BranchTimeout, NodeError, WorkerDied

pytestmark = pytest.mark.timeout(30)


def task(index: int, target: str = "") -> BranchTask:
    return BranchTask(
        f"fan[{index}]", "a", None, {"shared": True}, index=index, target=target,
        overrides={"item": index},
    )


@pytest.fixture
def runner() -> BatchRunner:
    return BatchRunner()


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
    assert names == ["t-1"] * 3


# -- results ---------------------------------------------------------------------------------


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
    assert info.category == "error"
    assert info.matches(["ConnectionError"])
    assert info.matches(["RunError"])
    assert not info.matches(["KeyError"])
    result = failed(task(0), info)
    again = BranchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.error is not None and again.error.matches(["ConnectionResetError"])


def test_a_failed_result_carries_only_the_tasks_overrides():
    result = failed(task(3), WorkerDied("gone", exit_status=137))
    assert result.update == {"item": 3}
    assert result.error is not None
    assert (result.error.category, result.error.exit_status) == ("worker_died", 137)
    assert result.with_base({"shared": True})["shared"] is True
    assert succeeded(task(3), {"out": 1}).update == {"out": 1}


def test_stderr_goes_after_the_traceback_and_nothing_when_empty():
    info = ErrorInfo("KeyError", "x", traceback="Traceback ...\nKeyError: 'x'")
    merged = with_stderr(info, "warning: disk\nlast line\n", "worker process 7")
    assert merged.traceback == (
        "Traceback ...\nKeyError: 'x'\n--- stderr of worker process 7 (last lines) ---\n"
        "warning: disk\nlast line\n"
    )
    assert with_stderr(info, "  \n") is info


def test_stopped_attempt_is_timeout_unless_the_batch_was_cancelled():
    batch = CancelToken()
    ctx = AttemptContext(task(0), CancelToken(batch), time.monotonic(), 0.5, batch)
    timeout = ctx.stopped()
    batch.cancel()
    stopped = ctx.stopped()
    assert timeout.error is not None and timeout.error.category == "timeout"
    assert timeout.error.matches([BranchTimeout.__name__, "TimeoutError"])
    assert stopped.error is not None and stopped.error.type == "Cancelled"
    assert stopped.error.category == "cancelled"
    assert cancelled(task(0)).error == stopped.error


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


@pytest.mark.parametrize("category", ["cancelled", "circuit_open", "setup"])
def test_some_categories_are_never_retried(runner, category):
    def attempt(ctx: AttemptContext) -> BranchResult:
        return failed(ctx.task, ErrorInfo("Whatever", "no", category=category))

    retry = RetryPolicy(max_attempts=5, backoff_base_ms=1, backoff_max_ms=1)
    (result,) = runner.run([task(0)], ParallelConfig(retry=retry), attempt, workers=1)
    assert result.attempts == 1


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
    assert results[0].error is not None and results[0].error.category == "cancelled"
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


def test_inline_runs_each_branch_in_the_callers_thread_when_asked(runner):
    ran: list[tuple[int, str]] = []

    def attempt(ctx: AttemptContext) -> BranchResult:
        ran.append((ctx.task.index, threading.current_thread().name))
        return succeeded(ctx.task, {})

    results = runner.run_inline([task(0), task(1)], ParallelConfig(), attempt)
    assert ran == []
    assert next(results).index == 0
    assert ran == [(0, threading.current_thread().name)]
    assert [r.index for r in results] == [1]


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


def test_cancelled_attempts_do_not_count_against_the_target(runner):
    def attempt(ctx: AttemptContext) -> BranchResult:
        return cancelled(ctx.task)

    config = ParallelConfig(circuit_breaker=BreakerPolicy(failure_threshold=1))
    (result,) = runner.run([task(0, "t")], config, attempt, workers=1)
    assert result.error is not None and result.error.category == "cancelled"
    assert result.breaker_state == "closed"
