"""Test doubles for the executor contract: an in-process backend, like httpx's ``MockTransport``.

``InlineExecutor`` is a complete ``ParallelExecutor`` that runs each branch in the
caller's thread, one after the other in declaration order, when its result is
asked for. Engine tests use it for fan-outs whose outcome must not depend on
thread timing, and to script backend failures::

    from executors import register_executor
    from executors.testing import InlineExecutor

    register_executor("inline", InlineExecutor)          # parallel: {strategy: inline}
    flaky = InlineExecutor(failures={"fan[1]": [WorkerDied("lost")]})   # first try only
    register_executor("inline", lambda: flaky)

Results follow the contract exactly: retries, breakers, ``fail_fast``, the
caller's cancel event (read between branches) and timeouts (the branch's cancel
event is set at its deadline; a branch that ignores it runs to its end) all go
through the same ``BatchRunner`` as the real backends. Nothing registers the
``inline`` strategy unless a test does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import partial

from executors.backend import BaseExecutor
from executors.base import BranchProgram, BranchResult, BranchStarted, BranchTask, ParallelConfig
from executors.resilience import Attempt, AttemptContext
from executors.results import failed
from executors.thread import run_here

__all__ = ["InlineExecutor", "ScriptedFailures"]

ScriptedFailures = Mapping[str, BaseException | Sequence[BaseException | None]]
"""By branch id: an error every try of that branch fails with, or one per try
(``None``: that try runs the branch; tries past the end of the list run it too)."""


class InlineExecutor(BaseExecutor):
    """Runs branches synchronously in the caller's thread, in declaration order.

    ``failures`` scripts errors for chosen branches (``ScriptedFailures``); a
    scripted try does not run the branch. ``tasks`` records every task given to
    ``run``, in order, for tests to inspect. Not thread-safe: one caller at a time.
    """

    strategy = "inline"

    def __init__(
        self, failures: ScriptedFailures | None = None, max_workers: int | None = None
    ) -> None:
        super().__init__(max_workers)
        self.failures = dict(failures or {})
        self.tasks: list[BranchTask] = []

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Yield one result per task, running each as it is asked for (see ``ParallelExecutor``)."""
        self._check_open()
        self.tasks.extend(tasks)
        attempt = self._prepare(program, tasks, config, 1)
        return self._runner.run_inline(tasks, config, attempt, cancel, on_start)

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        return partial(self._attempt, program)

    def _attempt(self, program: BranchProgram, ctx: AttemptContext) -> BranchResult:
        scripted = self._scripted(ctx.task)
        if scripted is not None:
            return failed(ctx.task, scripted, thread=threading.current_thread().name,
                          pid=os.getpid())
        timer = None
        remaining = ctx.remaining()
        if remaining is not None:
            timer = threading.Timer(remaining, ctx.token.cancel)
            timer.daemon = True
            timer.start()
        try:
            result = run_here(program, ctx)
        finally:
            if timer is not None:
                timer.cancel()
        return ctx.stopped(pid=os.getpid()) if ctx.token.cancelled else result

    def _scripted(self, task: BranchTask) -> BaseException | None:
        script = self.failures.get(task.branch_id)
        if script is None or isinstance(script, BaseException):
            return script
        return script[task.attempt - 1] if task.attempt <= len(script) else None
