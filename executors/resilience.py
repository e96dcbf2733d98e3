"""Retries, circuit breakers, timeouts and fail-fast, written once for every backend.

A backend supplies one function, ``attempt(ctx) -> BranchResult``, that runs a
single try of one branch wherever it runs (a thread, a worker process, a remote
host) and honours ``ctx``: it returns by ``ctx.deadline`` and stops when
``ctx.token`` is cancelled, answering ``ctx.stopped()`` in both cases. It never
raises for a failed branch. Everything else lives here::

    ResilientRunner.run(tasks) ── one driver thread per max_workers slot
      driver: task ─► breaker admits? ─► attempt(ctx) ─► breaker records ─► retry? (tenacity)
                         │ no: CircuitOpen      │ deadline / cancel: BranchTimeout / Cancelled
      results ◄── queue ◄── final BranchResult (attempts, duration, breaker_state filled in)
      first failure with fail_fast ─► batch token cancelled ─► the rest come back "Cancelled"

``ResilientExecutor`` is the shared base of the backends: it owns the runner and the
breaker registry for the executor's life (one run), the context manager, and an
idempotent ``close()``.
"""

from __future__ import annotations

import abc
import os
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any, Self

import tenacity

from executors._breakers import BreakerRegistry, TargetBreaker
from executors._sync import CancelToken, shared_threads
from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from tea.errors import BranchTimeout

__all__ = [
    "CANCELLED",
    "Attempt",
    "AttemptContext",
    "CancelToken",
    "ResilientExecutor",
    "ResilientRunner",
    "cancelled",
    "error_info",
    "failed",
    "succeeded",
]

CANCELLED = "Cancelled"
"""``ErrorInfo.type`` of a branch stopped by fail_fast or by the caller's cancel event."""

_NEVER_RETRIED = frozenset({CANCELLED, "CircuitOpen", "SerializationError"})
# A plain threading.Event has no callback, so a waiting run() looks at the caller's
# cancel event this often.
_CANCEL_POLL_SECONDS = 0.05


def error_info(exc: BaseException) -> ErrorInfo:
    """``ErrorInfo`` for ``exc`` with its formatted traceback."""
    return ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))


def succeeded(task: BranchTask, state: dict[str, Any], **where: Any) -> BranchResult:
    """A successful result for ``task``; ``where`` is ``thread``/``pid``/``host``."""
    return BranchResult(
        task.branch_id, True, state, index=task.index, attempts=task.attempt, **where
    )


def failed(task: BranchTask, error: ErrorInfo | BaseException, **where: Any) -> BranchResult:
    """A failed result for ``task`` carrying ``error`` (the branch's input state is kept)."""
    info = error if isinstance(error, ErrorInfo) else error_info(error)
    return BranchResult(
        task.branch_id, False, dict(task.state), info, index=task.index, attempts=task.attempt,
        **where,
    )


def cancelled(task: BranchTask, **where: Any) -> BranchResult:
    """The result of a branch stopped before it finished."""
    info = ErrorInfo(
        CANCELLED,
        "cancelled before it finished (fail_fast, or the run was stopped)",
        kinds=(CANCELLED,),
    )
    return failed(task, info, **where)


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
        return failed(self.task, ErrorInfo.from_exception(exc), **where)


Attempt = Callable[[AttemptContext], BranchResult]


class ResilientRunner:
    """Runs batches of branches through a backend's ``attempt``. Thread-safe; one per executor.

    Concurrency is ``workers`` driver threads per batch, each taking the next task;
    a branch waiting for its retry backoff keeps its slot. Several batches may run
    at once (nested fan-outs); the thread pool grows as needed.
    """

    def __init__(self, name: str) -> None:
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
    ) -> Iterator[BranchResult]:
        """Yield one final result per task, as they finish. Closing the iterator early
        cancels the branches still running."""
        batch = CancelToken()
        if cancel is not None and cancel.is_set():
            batch.cancel()
        pending = deque(tasks)
        done: queue.SimpleQueue[BranchResult] = queue.SimpleQueue()
        drive = partial(self._drive, pending, done, config, attempt, batch)
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

    def close(self) -> None:
        """Nothing to release: the threads are shared, and idle ones just wait."""

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
    ) -> None:
        while True:
            try:
                task = pending.popleft()
            except IndexError:
                return
            result = self._branch(task, config, attempt, batch)
            if config.fail_fast and not result.success:
                batch.cancel()  # before anyone reads the result: no queued branch starts after it
            done.put(result)

    def _branch(
        self, task: BranchTask, config: ParallelConfig, attempt: Attempt, batch: CancelToken
    ) -> BranchResult:
        """Every try of one branch, with breaker and backoff, down to its final result."""
        started = time.monotonic()
        policy = config.circuit_breaker
        breaker = (
            self.breakers.get(task.target or task.branch_id, policy) if policy else None
        )
        tries = 0

        def one() -> BranchResult:
            nonlocal tries
            tries += 1
            return _one_try(replace(task, attempt=tries), config, attempt, batch, breaker)

        retry = config.retry
        if retry.max_attempts <= 1:
            return replace(
                one(), attempts=1, index=task.index,
                duration_ms=(time.monotonic() - started) * 1000.0,
                breaker_state=breaker.state if breaker else None,
            )
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, retry.max_attempts)),
            wait=_backoff(retry.backoff_base_ms, retry.backoff_max_ms, retry.jitter),
            retry=tenacity.retry_if_result(partial(_should_retry, retry.retry_on, batch)),
            sleep=batch.sleep,
            retry_error_callback=_last_result,
        )
        result: BranchResult = retrying(one)
        return replace(
            result,
            attempts=tries,
            index=task.index,
            duration_ms=(time.monotonic() - started) * 1000.0,
            breaker_state=breaker.state if breaker else None,
        )


def _one_try(
    task: BranchTask,
    config: ParallelConfig,
    attempt: Attempt,
    batch: CancelToken,
    breaker: TargetBreaker | None,
) -> BranchResult:
    if batch.cancelled:
        return cancelled(task)
    ticket = breaker.admit() if breaker else None
    if breaker and ticket is None:
        return failed(task, breaker.open_error(task.branch_id))
    timeout = config.timeout_seconds
    deadline = time.monotonic() + timeout if timeout else None
    ctx = AttemptContext(task, CancelToken(batch), deadline, timeout, batch)
    try:
        result = attempt(ctx)
    except Exception as exc:  # a backend bug must still come back as this branch's failure
        result = failed(task, exc)
    finally:
        ctx.token.detach()
    if breaker and ticket is not None:
        breaker.record(result, ticket)
    return result


def _should_retry(retry_on: Sequence[str], batch: CancelToken, result: BranchResult) -> bool:
    error = result.error
    if result.success or error is None or batch.cancelled or error.type in _NEVER_RETRIED:
        return False
    return not retry_on or error.matches(retry_on)


def _backoff(base_ms: float, max_ms: float, jitter: bool) -> tenacity.wait.wait_base:
    """Exponential backoff ``base * 2**(n-1)`` capped at ``max``; with jitter, "full jitter"
    (uniform between 0 and that), which spreads retries of many branches apart."""
    base, cap = base_ms / 1000.0, max_ms / 1000.0
    if jitter:
        return tenacity.wait_random_exponential(multiplier=base, max=cap)
    return tenacity.wait_exponential(multiplier=base, max=cap)


def _last_result(state: tenacity.RetryCallState) -> BranchResult:
    assert state.outcome is not None
    result: BranchResult = state.outcome.result()
    return result


class ResilientExecutor(abc.ABC):
    """Shared base of the backends: the runner, the context manager and ``close()``.

    A backend implements ``_prepare`` (check the batch, return its ``attempt``
    function), may change ``_default_workers``, and extends ``close`` when it holds
    resources of its own.
    """

    strategy = "base"

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers
        self._runner = ResilientRunner(self.strategy)
        self._closed = False

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
    ) -> Iterator[BranchResult]:
        """Start the batch and yield results as branches finish (see ``ParallelExecutor``)."""
        if self._closed:
            raise RuntimeError(f"the {self.strategy} executor is closed")
        workers = config.max_workers or self._max_workers or self._default_workers()
        attempt = self._prepare(program, tasks, config, workers)
        return self._runner.run(tasks, config, attempt, workers=workers, cancel=cancel)

    @abc.abstractmethod
    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        """Check the batch (may raise before anything starts) and return its ``attempt``."""

    def _default_workers(self) -> int:
        return os.cpu_count() or 1

    def close(self) -> None:
        """Stop the backend's threads, workers or connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
