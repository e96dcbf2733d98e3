"""Retries, circuit breakers, timeouts and fail-fast, written once for every backend.

A backend supplies one function, ``attempt(ctx) -> BranchResult``, that runs a
single try of one branch wherever it runs (a thread, a worker process, a remote
host) and honours ``ctx``: it returns by ``ctx.deadline`` and stops when
``ctx.token`` is cancelled, answering ``ctx.stopped()`` in both cases. It never
raises for a failed branch. Everything else lives here::

    BatchRunner.run(tasks) ── one driver thread per max_workers slot (or, inline, the
      │                       caller's thread, one task after the other)
      driver: task ─► breaker admits? ─► attempt(ctx) ─► breaker records ─► retry? (Retrier)
                         │ no: CircuitOpen      │ deadline / cancel: BranchTimeout / Cancelled
      results ◄── queue ◄── final BranchResult (attempts, duration, breaker_state filled in)
      first failure with fail_fast ─► batch token cancelled ─► the rest come back Cancelled
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from executors._sync import CancelToken, shared_threads
from executors.base import BranchResult, BranchStarted, BranchTask, ErrorInfo, ParallelConfig
from executors.breakers import Breaker, BreakerRegistry
from executors.results import cancelled, error_info, failed, finished
from executors.retry import Retrier
from tea.errors import BranchTimeout, CircuitOpen

__all__ = ["Attempt", "AttemptContext", "BatchRunner", "BranchStart", "CancelToken"]

# A plain threading.Event has no callback, so a waiting run() looks at the caller's
# cancel event this often.
_CANCEL_POLL_SECONDS = 0.05
# Failures that say nothing about the branch's target, so its breaker does not count them.
_NOT_THE_TARGETS_FAULT = frozenset({"cancelled", "circuit_open"})


@dataclass(slots=True)
class AttemptContext:
    """One try of one branch, as a backend's ``attempt`` sees it.

    ``token`` is cancelled when the batch is (fail_fast, the caller's cancel event);
    a backend cancels it itself when ``deadline`` (``time.monotonic()``) passes, so
    a thread-run branch stops at its next node boundary.
    """

    task: BranchTask
    token: CancelToken
    deadline: float | None
    timeout_seconds: float | None
    batch: CancelToken
    start: BranchStart | None = None

    def started(self, **where: Any) -> None:
        """Tell the engine a worker took the branch (``where``: ``thread``, ``pid``, ``host``,
        ``worker``); a backend calls this once the branch is on its worker. Only the first
        try that gets there counts: one ``branch_start`` per branch."""
        if self.start is not None:
            self.start.report(where)

    def start_clock(self) -> None:
        """Restart the timeout now: a backend calls this once the branch really starts
        (a worker booted, a connection opened), so setup does not count against it."""
        if self.timeout_seconds is not None:
            self.deadline = time.monotonic() + self.timeout_seconds

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no timeout)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def stopped(self, **where: Any) -> BranchResult:
        """The result of an attempt that did not finish: ``Cancelled`` or ``BranchTimeout``."""
        if self.batch.cancelled or self.timeout_seconds is None:
            return cancelled(self.task, **where)
        exc = BranchTimeout(
            f"timed out after {self.timeout_seconds:g}s", branch=self.task.branch_id
        )
        return failed(self.task, error_info(exc, traceback=False), **where)


Attempt = Callable[[AttemptContext], BranchResult]


class BranchStart:
    """Reports one branch's start, once, to the engine's ``on_start``. Thread-safe."""

    __slots__ = ("_lock", "_on_start", "_reported", "_task")

    def __init__(self, task: BranchTask, on_start: BranchStarted) -> None:
        self._task = task
        self._on_start = on_start
        self._reported = False
        self._lock = threading.Lock()

    def report(self, where: Mapping[str, Any]) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        self._on_start(self._task, where)


class BatchRunner:
    """Runs batches of branches through a backend's ``attempt``. Thread-safe; one per executor.

    Concurrency is ``workers`` driver threads per batch, each taking the next task;
    a branch waiting for its retry backoff keeps its slot. Several batches may run
    at once (nested fan-outs); the thread pool grows as needed. ``breakers`` live as
    long as the runner (one run).
    """

    def __init__(self) -> None:
        # Threads are shared by every executor of the process: starting threads for
        # each run would cost more than a small fan-out itself.
        self.threads = shared_threads()
        self.breakers = BreakerRegistry()

    def run(
        self,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        attempt: Attempt,
        *,
        workers: int,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Yield one final result per task, as they finish. Closing the iterator early
        cancels the branches still running. ``on_start(task, where)`` hears of each
        branch once, when a worker takes it (or, if it never reached one, before its
        result)."""
        batch = CancelToken()
        if cancel is not None and cancel.is_set():
            batch.cancel()
        pending = deque(tasks)
        done: queue.SimpleQueue[BranchResult] = queue.SimpleQueue()
        drive = partial(self._drive, pending, done, config, attempt, batch, on_start)
        for _ in range(min(max(1, workers), len(tasks))):
            self.threads.submit(drive)
        try:
            for _ in range(len(tasks)):
                result = self._next(done, batch, cancel)
                if not result.success and config.fail_fast:
                    batch.cancel()
                yield result
        finally:
            batch.cancel()

    def run_inline(
        self,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        attempt: Attempt,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Like ``run``, but each branch runs in the caller's thread when its result is
        asked for, in declaration order (the caller's cancel event is read in between)."""
        batch = CancelToken()
        try:
            for task in tasks:
                if cancel is not None and cancel.is_set():
                    batch.cancel()
                result = self._branch(task, config, attempt, batch, on_start)
                if not result.success and config.fail_fast:
                    batch.cancel()
                yield result
        finally:
            batch.cancel()

    @staticmethod
    def _next(
        done: queue.SimpleQueue[BranchResult],
        batch: CancelToken,
        cancel: threading.Event | None,
    ) -> BranchResult:
        if cancel is None:
            return done.get()
        while True:
            try:
                return done.get(timeout=_CANCEL_POLL_SECONDS)
            except queue.Empty:
                if cancel.is_set():
                    batch.cancel()

    def _drive(
        self,
        pending: deque[BranchTask],
        done: queue.SimpleQueue[BranchResult],
        config: ParallelConfig,
        attempt: Attempt,
        batch: CancelToken,
        on_start: BranchStarted | None,
    ) -> None:
        while True:
            try:
                task = pending.popleft()
            except IndexError:
                return
            result = self._branch(task, config, attempt, batch, on_start)
            if config.fail_fast and not result.success:
                batch.cancel()  # before anyone reads the result: no queued branch starts after it
            done.put(result)

    def _branch(
        self, task: BranchTask, config: ParallelConfig, attempt: Attempt, batch: CancelToken,
        on_start: BranchStarted | None = None,
    ) -> BranchResult:
        """Every try of one branch, with breaker and backoff, down to its final result."""
        started = time.monotonic()
        policy = config.circuit_breaker
        breaker = self.breakers.get(task.target or task.branch_id, policy) if policy else None
        start = BranchStart(task, on_start) if on_start is not None else None
        retrier = Retrier(config.retry, sleep=batch.sleep, stop=lambda: batch.cancelled, branch=task.branch_id)
        result = retrier.call(
            lambda n: _one_try(
                task if task.attempt == n else replace(task, attempt=n),
                config, attempt, batch, breaker, start,
            ),
            failure=_failure,
        )
        if start is not None:  # never on a worker (refused, cancelled first): its start still comes first
            start.report({})
        return finished(
            result,
            attempts=retrier.attempts,
            duration_ms=(time.monotonic() - started) * 1000.0,
            breaker_state=breaker.state if breaker else None,
        )


def _failure(result: BranchResult) -> ErrorInfo | None:
    return None if result.success else result.error


def _one_try(
    task: BranchTask,
    config: ParallelConfig,
    attempt: Attempt,
    batch: CancelToken,
    breaker: Breaker | None,
    start: BranchStart | None,
) -> BranchResult:
    if batch.cancelled:
        return cancelled(task)
    ticket = breaker.admit() if breaker else None
    if breaker and ticket is None:
        return failed(task, error_info(_open_error(breaker, task), traceback=False))
    timeout = config.timeout_seconds
    deadline = time.monotonic() + timeout if timeout else None
    ctx = AttemptContext(task, CancelToken(batch), deadline, timeout, batch, start)
    try:
        result = attempt(ctx)
    except Exception as exc:  # a backend bug must still come back as this branch's failure
        result = failed(task, exc)
    finally:
        ctx.token.detach()
    if breaker and ticket is not None:
        category = result.error.category if result.error is not None else None
        breaker.record(ticket, None if category in _NOT_THE_TARGETS_FAULT else result.success)
    return result


def _open_error(breaker: Breaker, task: BranchTask) -> CircuitOpen:
    return CircuitOpen(
        f"circuit breaker for target '{breaker.name}' is open after "
        f"{breaker.failure_threshold} consecutive failures; "
        f"next trial in {breaker.seconds_to_trial():.1f}s",
        branch=task.branch_id,
    )
