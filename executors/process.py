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

One worker runs one branch at a time over its own pipe, and each worker is its own
``multiprocessing.Process``, not a ``concurrent.futures.ProcessPoolExecutor``: there,
one dead worker marks the whole pool broken; here it fails only its own branch
(``WorkerDied`` with the signal or exit code) and the other branches go on.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from multiprocessing.context import BaseContext

from executors import _worker
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
_MAIN_GUARD_HINT = (
    "see the worker's traceback on stderr; a script that runs the process strategy must "
    "guard its entry point with if __name__ == '__main__':"
)
_REAP_SECONDS = 5.0
_BOOT_SECONDS = 60.0


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
        # Each worker re-imports the driver's main module (multiprocessing's rule); when
        # that is the tea CLI, having tea.cli preloaded makes it free.
        cli = ["tea.cli"] if "tea.cli" in sys.modules else []
        context.set_forkserver_preload(_PRELOAD + cli)
        return context
    return multiprocessing.get_context("spawn")


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: BaseContext) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(  # type: ignore[attr-defined]
            target=_worker.serve, args=(child,), name="tea-process-worker", daemon=True
        )
        self.process.start()
        child.close()
        self.pid: int = self.process.pid
        self.programs: set[str] = set()
        self.ready = False
        self.boot_timed_out = False

    def wait_ready(self) -> bool:
        """Wait for the worker's "ready" (sent once it has booted); False if it died first."""
        if not self.ready:
            try:
                if self.conn.poll(_BOOT_SECONDS):
                    self.conn.recv_bytes()
                    self.ready = True
                else:
                    self.boot_timed_out = True
            except (EOFError, OSError):
                pass
        return self.ready

    def kill(self) -> None:
        self.process.kill()

    def reap(self) -> None:
        """Close the pipe and wait for the process to be gone (killing it if it lingers)."""
        self.conn.close()
        self.process.join(_REAP_SECONDS)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(_REAP_SECONDS)

    def death(self, branch_id: str) -> WorkerDied:
        """Why this (reaped) worker stopped answering, naming the branch it was running."""
        code = self.process.exitcode
        note = None
        if self.boot_timed_out:
            how, status = f"did not start within {_BOOT_SECONDS:g}s", None
        elif code is not None and code < 0:
            how, status = f"killed by signal {_signal_name(-code)}", 128 - code
            if -code == signal.SIGKILL:
                note = "SIGKILL often means the out-of-memory killer; check memory limits"
        else:
            how, status = f"exit code {code}", code
        if not self.ready:
            note = _MAIN_GUARD_HINT
        when = "running the branch" if self.ready else "starting"
        # The note is part of the message too: fan-in code and stream events see
        # only ErrorInfo's message, not the exception's hint.
        message = f"worker process {self.pid} died while {when} ({how})"
        return WorkerDied(
            f"{message}; {note}" if note else message,
            branch=branch_id,
            exit_status=status,
        )

class _WorkerPool:
    """Workers kept for the executor's life. Thread-safe."""

    def __init__(self, context: BaseContext) -> None:
        self._context = context
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def warm(self, count: int) -> None:
        """Start workers until ``count`` exist; they boot concurrently. Best effort: a
        worker that cannot start is reported by ``acquire``, for the branch that needs it."""
        with self._lock:
            missing = 0 if self._closed else count - len(self._idle) - len(self._busy)
            try:
                for _ in range(missing):
                    self._idle.append(_Worker(self._context))
            except Exception:  # acquire() meets the same failure and reports it for a branch
                pass

    def acquire(self, key: str) -> _Worker:
        """An idle live worker, preferring one that already holds program ``key``."""
        with self._lock:
            dead = [w for w in self._idle if not w.process.is_alive()]
            for worker in dead:
                self._idle.remove(worker)
            ready = [w for w in self._idle if key in w.programs] or self._idle
            worker = ready[-1] if ready else _Worker(self._context)
            if ready:
                self._idle.remove(worker)
            self._busy.add(worker)
        for worker_gone in dead:
            worker_gone.reap()
        return worker

    def release(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            self._idle.append(worker)

    def discard(self, worker: _Worker) -> None:
        """Kill and reap ``worker``; the next ``acquire`` starts a fresh one in its place."""
        worker.kill()
        worker.reap()
        with self._lock:
            self._busy.discard(worker)

    def close(self) -> None:
        """Idle workers exit when their pipe closes; busy ones are killed."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy, self._busy = list(self._busy), set()
        for worker in busy:
            worker.kill()
        for worker in idle + busy:
            worker.reap()


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
        self._pool = _WorkerPool(_start_context())
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
                f"cannot start a worker process ({exc}); {_MAIN_GUARD_HINT}",
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
            result = _result(task, reply, worker)
            self._pool.release(worker)
            return result
        self._pool.discard(worker)
        if reply is not None:
            return _result(task, reply, worker)
        if timed_out or ctx.token.cancelled:
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _state_bytes(task: BranchTask) -> bytes:
    try:
        return _worker.dumps(task.state)
    except Exception as exc:
        raise _worker.serialization_error(
            task.branch_id, task.state, exc, "the branch's input"
        ) from exc


def _result(task: BranchTask, reply: bytes, worker: _Worker) -> BranchResult:
    try:
        kind, payload, key = pickle.loads(reply)
    except Exception as exc:
        error = SerializationError(
            f"the branch's result cannot be unpickled in the driver: {exc}", branch=task.branch_id
        )
        return failed(task, error, pid=worker.pid)
    if key is not None:
        worker.programs.add(key)
    if kind == "ok":
        return succeeded(task, payload, pid=worker.pid)
    info: ErrorInfo = payload
    return failed(task, info, pid=worker.pid)
