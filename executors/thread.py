"""The ``thread`` strategy: branches run on threads of the driver's own process.

::

    run() ─► ResilientRunner: one driver thread per max_workers slot
                 driver ─► attempt: deep-copies the task state, hands it to a branch thread
                          program.run_branch(task, cancel) on the branch thread
                 driver waits for: the branch to finish | its deadline | the batch's cancel
                          deadline or cancel: the branch's cancel event is set, so it stops at
                          its next node boundary; the driver answers at once (BranchTimeout /
                          Cancelled) and does not wait for it

Cheap to start and to dispatch, nothing has to be picklable, but pure-Python CPU
work does not get faster (the GIL): use it for I/O-bound branches (LLM calls,
HTTP, subprocesses). A node that blocks forever cannot be killed, only abandoned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from executors.base import BranchProgram, BranchResult, BranchTask, ParallelConfig
from executors.resilience import (
    Attempt,
    AttemptContext,
    ResilientExecutor,
    failed,
    succeeded,
)
from tea.state import fast_copy

__all__ = ["ThreadExecutor"]


class ThreadExecutor(ResilientExecutor):
    """Runs branches on threads. One per run; thread-safe; ``close()`` is idempotent.

    ``max_workers`` (when the fan-out's config sets none) defaults to
    ``min(32, cpu_count + 4)``, as ``concurrent.futures.ThreadPoolExecutor`` does.
    Each attempt gets its own deep copy of the task state, so branches (and retries
    of one branch) never share mutable input, as in the other backends where state
    is serialised.
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
            result = _run(program, ctx)
            return ctx.stopped(pid=os.getpid()) if ctx.token.cancelled else result
        outcome: list[BranchResult] = []
        finished = threading.Event()

        def branch() -> None:
            result = _run(program, ctx)
            # A branch that saw its cancel event may have returned a partial state:
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


def _run(program: BranchProgram, ctx: AttemptContext) -> BranchResult:
    """One attempt of a branch on the calling thread, on its own copy of the state."""
    where = {"thread": threading.current_thread().name, "pid": os.getpid()}
    try:
        task = replace(ctx.task, state=fast_copy(ctx.task.state))
        return succeeded(ctx.task, program.run_branch(task, ctx.token.event), **where)
    except Exception as exc:
        return failed(ctx.task, exc, **where)
