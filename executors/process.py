"""The ``process`` strategy: branches run in worker processes, so CPU-bound Python runs in parallel.

::

    run() ── checks every task's state pickles (else SerializationError, nothing started)
       │     cloudpickles the program once per key; starts missing workers, concurrently
       ▼
    ResilientRunner: one driver thread per max_workers slot
       driver ─► acquire an idle worker (one that already holds the program, if any)
              ─► send (key, program bytes only if this worker lacks them, task, state bytes)
              ◄─ ("ok", state, key) | ("error", ErrorInfo, key) | EOF: the worker died
       deadline passed or batch cancelled ─► the worker is killed (not abandoned), reaped,
       and a fresh one takes its place when next needed

A worker's stderr goes to a temporary file of its own, never to the user's terminal:
what it wrote while running a branch that failed (a segfault's faulthandler dump, an
exception's warnings) goes into that branch's error, as ``stderr_tail`` of a
``WorkerDied`` and in the ``ErrorInfo.traceback`` text; what a branch that succeeded
wrote is logged at DEBUG on the ``tea.process`` logger (``tea -v`` shows it). The
workers themselves live in ``executors._pool``.

One worker runs one branch at a time over its own pipe, and each worker is its own
``multiprocessing.Process``, not a ``concurrent.futures.ProcessPoolExecutor``: there,
one dead worker marks the whole pool broken; here it fails only its own branch
(``WorkerDied`` with the signal or exit code) and the other branches go on.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from multiprocessing.context import BaseContext

from executors import _worker
from executors._pool import MAIN_GUARD_HINT, Worker, WorkerPool, log, log_stderr
from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import (
    Attempt,
    AttemptContext,
    ResilientExecutor,
    failed,
    succeeded,
)
from tea.errors import SerializationError, WorkerDied

__all__ = ["ProcessExecutor"]

_PRELOAD = ["executors._worker", "tea.runner"]


def _start_context() -> BaseContext:
    """forkserver where it exists, else spawn; never fork.

    fork copies the driver as it is, threads and all: a lock held by another thread
    at that moment (logging, the runner's drivers, an asyncssh loop) stays locked
    forever in the child. forkserver forks workers from a clean, single-threaded
    server that imported tea once (``_PRELOAD``), so a worker starts in milliseconds;
    spawn (a fresh interpreter per worker) is the fallback where forkserver does not
    exist (Windows).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def prestart() -> None:
    """Boot the forkserver now (it preloads tea: most of a cold pool's start).

    ``tea run`` calls this in the background as it starts, for a workflow that uses
    the process strategy, so the server's start overlaps tea's own; the first
    pool then only forks its workers. Safe to call from any thread, and more than once.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        _start_context()
        forkserver.ensure_running()


class ProcessExecutor(ResilientExecutor):
    """Runs branches in worker processes. One per run; thread-safe; ``close()`` is idempotent.

    ``run()`` raises ``SerializationError`` (naming the branch and the state key)
    before starting any branch when a task's state cannot be pickled; this is the
    only error ``run()`` raises. ``max_workers`` defaults to the number of CPUs.
    A branch that times out or is cancelled has its worker killed; nodes in a
    worker are not told to stop at a node boundary first.
    """

    strategy = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._pool = WorkerPool(_start_context())
        self._programs: dict[str, bytes] = {}

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        states = {(t.branch_id, t.index): _state_bytes(t) for t in tasks}
        key = program.key
        if key not in self._programs:
            try:
                self._programs[key] = _worker.dumps(program)
            except Exception as exc:
                raise SerializationError(
                    f"the workflow cannot be sent to worker processes: {exc}",
                    hint="every node body must be picklable with cloudpickle",
                ) from exc
        self._pool.warm(min(workers, len(tasks)))
        return partial(self._attempt, key, self._programs[key], states)

    def _attempt(
        self,
        key: str,
        blob: bytes,
        states: dict[tuple[str, int], bytes],
        ctx: AttemptContext,
    ) -> BranchResult:
        task = ctx.task
        try:
            worker = self._pool.acquire(key)
        except Exception as exc:  # the forkserver or the OS refused a new process
            error = WorkerDied(
                f"cannot start a worker process ({exc}); {MAIN_GUARD_HINT}",
                branch=task.branch_id,
            )
            return failed(task, error)
        unhook = ctx.token.on_cancel(worker.kill)
        request = (
            key,
            None if key in worker.programs else blob,
            replace(task, state={}),
            states[(task.branch_id, task.index)],
        )
        reply: bytes | None = None
        timed_out = False
        ready = worker.wait_ready()
        # Booting a fresh worker is the pool's cost, not the branch's: the branch's
        # timeout starts when a worker is ready to run it.
        ctx.start_clock()
        try:
            if ready:
                worker.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
                if worker.conn.poll(ctx.remaining()):
                    reply = worker.conn.recv_bytes()
                else:
                    timed_out = True
        except (EOFError, OSError):
            reply = None
        unhook()
        # After unhook, a cancel that already fired may still be about to kill this
        # worker: only a worker whose token was never cancelled goes back to the pool.
        if reply is not None and not ctx.token.cancelled:
            result = _result(task, reply, worker, worker.drain_stderr())
            self._pool.release(worker)
            return result
        self._pool.discard(worker)
        if reply is not None:
            return _result(task, reply, worker, worker.last_words)
        if timed_out or ctx.token.cancelled:
            log_stderr(worker, f"branch {task.branch_id} (stopped)")
            return ctx.stopped(pid=worker.pid)
        return failed(task, worker.death(task.branch_id), pid=worker.pid)

    def start(self, workers: int | None = None) -> None:
        """Start ``workers`` (default ``max_workers``, else the CPU count) in the background
        and return at once, so that the first fan-out finds the pool ready. Optional."""
        count = workers or self._max_workers or self._default_workers()
        threading.Thread(
            target=self._pool.warm, args=(count,), name="tea-process-start", daemon=True
        ).start()

    def close(self) -> None:
        """Stop every worker (idle ones exit, busy ones are killed). Idempotent."""
        super().close()
        self._pool.close()


def _state_bytes(task: BranchTask) -> bytes:
    try:
        return _worker.dumps(task.state)
    except Exception as exc:
        raise _worker.serialization_error(
            task.branch_id, task.state, exc, "the branch's input"
        ) from exc


def _result(task: BranchTask, reply: bytes, worker: Worker, stderr: str) -> BranchResult:
    """The branch's result from the worker's reply; ``stderr`` is what it wrote meanwhile."""
    try:
        kind, payload, key = pickle.loads(reply)
    except Exception as exc:
        error = SerializationError(
            f"the branch's result cannot be unpickled in the driver: {exc}",
            branch=task.branch_id,
            stderr_tail=stderr or None,
        )
        return failed(task, error, pid=worker.pid)
    if key is not None:
        worker.programs.add(key)
    if kind == "ok":
        if stderr:
            log.debug("stderr of branch %s (worker process %d):\n%s",
                      task.branch_id, worker.pid, stderr)
        return succeeded(task, payload, pid=worker.pid)
    info: ErrorInfo = payload
    if stderr:
        info = replace(info, traceback=f"{info.traceback or ''}\nstderr of the worker:\n{stderr}")
    return failed(task, info, pid=worker.pid)
