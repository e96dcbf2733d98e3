"""The ``thread`` strategy: branches run on threads of the driver's own process.

::

    run() ─► BatchRunner: one driver thread per max_workers slot
                 driver ─► attempt: hands the task to a branch thread (or, with no
                          timeout, runs it itself); program.run_branch(task, cancel)
                          reads the shared input in place and returns its update
                 driver waits for: the branch to finish | its deadline | the batch's cancel
                          deadline or cancel: the branch's cancel event is set, so it stops at
                          its next node boundary; the driver answers at once (BranchTimeout /
                          Cancelled) and does not wait for it

Cheap to start and to dispatch, nothing is copied or has to be picklable, but
pure-Python CPU work does not get faster (the GIL): use it for I/O-bound branches
(LLM calls, HTTP, subprocesses). A node that blocks forever cannot be killed,
only abandoned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import partial

from executors.backend import BaseExecutor
from executors.base import BranchProgram, BranchResult, BranchTask, ParallelConfig
from executors.resilience import Attempt, AttemptContext
from executors.results import failed, succeeded

__all__ = ["ThreadExecutor", "run_here"]


class ThreadExecutor(BaseExecutor):
    """Runs branches on threads. One per run; thread-safe; ``close()`` is idempotent.

    ``max_workers`` (when the fan-out's config sets none) defaults to
    ``min(32, cpu_count + 4)``, as ``concurrent.futures.ThreadPoolExecutor`` does.
    Every branch of a fan-out reads the same shared input (``task.state``), as the
    contract allows: nothing is copied, so a branch must not change it in place.
    """

    strategy = "thread"

    def _default_workers(self) -> int:
        return min(32, (os.cpu_count() or 1) + 4)

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        return partial(self._attempt, program)

    def _attempt(self, program: BranchProgram, ctx: AttemptContext) -> BranchResult:
        if ctx.timeout_seconds is None:
            # No deadline to enforce, so no need to be able to walk away from the branch:
            # run it on this driver thread and save a thread hand-over per branch.
            result = run_here(program, ctx)
            return ctx.stopped(pid=os.getpid()) if ctx.token.cancelled else result
        outcome: list[BranchResult] = []
        finished = threading.Event()

        def branch() -> None:
            result = run_here(program, ctx)
            # A branch that saw its cancel event may have returned a partial update:
            # only a branch that ended before any cancel counts as finished.
            if not ctx.token.cancelled:
                outcome.append(result)
            finished.set()

        unhook = ctx.token.on_cancel(finished.set)
        self._runner.threads.submit(branch)
        finished.wait(ctx.remaining())
        unhook()
        if outcome:
            return outcome[0]
        ctx.token.cancel()
        return ctx.stopped(pid=os.getpid())


def run_here(program: BranchProgram, ctx: AttemptContext) -> BranchResult:
    """One attempt of a branch on the calling thread; its result (never raises)."""
    where = {"thread": threading.current_thread().name, "pid": os.getpid()}
    ctx.started(**where)
    try:
        return succeeded(ctx.task, program.run_branch(ctx.task, ctx.token.event), **where)
    except Exception as exc:
        return failed(ctx.task, exc, **where)
