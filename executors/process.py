"""The ``process`` strategy: branches run in worker processes, so CPU-bound Python runs in parallel.

::

    run() ── pickles once per batch: each fan-out's shared input (keyed by a hash of its
       │     bytes) and each task's overrides (else SerializationError, nothing started);
       │     the program once per key for the executor's life; starts missing workers
       ▼
    BatchRunner: one driver thread per max_workers slot
       driver ─► acquire an idle worker (one that already holds the program and the
       │         shared state, if any)
              ─► send (program key [+ bytes], shared key [+ bytes], task head, overrides);
                 bytes only when this worker lacks them: a fan-out's input crosses to
                 each worker once, not once per branch
              ◄─ ("ok", update) | ("error", ErrorInfo) | ("missing": resend with bytes)
                 | EOF: the worker died
       deadline passed or batch cancelled ─► the worker is killed (not abandoned) with
       its process group and every program its branch started (``_sync.kill_tree``),
       reaped, and a fresh one takes its place when next needed

A worker's stderr goes to a temporary file of its own, never to the user's terminal:
what it wrote while running a branch that failed (a segfault's faulthandler dump, an
exception's warnings) goes into that branch's error, as ``stderr_tail`` of a
``WorkerDied`` and in the ``ErrorInfo.traceback`` text; what a branch that succeeded
wrote is logged at DEBUG on the ``tea.process`` logger (``tea -v`` shows it). The
workers themselves live in ``executors._pool``, their side in ``executors._worker``.

One worker runs one branch at a time over its own pipe, and each worker is its own
``multiprocessing.Process``, not a ``concurrent.futures.ProcessPoolExecutor``: there,
one dead worker marks the whole pool broken; here it fails only its own branch
(``WorkerDied`` with the signal or exit code) and the other branches go on.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from executors._forkserver import start_context
from executors._pickling import content_key, dumps, serialization_error
from executors._pool import MAIN_GUARD_HINT, WorkerPool, WorkerProcess, log, log_stderr
from executors._worker import Head, Held, Request
from executors.backend import BaseExecutor
from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import Attempt, AttemptContext
from executors.results import error_info, failed, succeeded, with_stderr
from tea.errors import SerializationError, WorkerDied

__all__ = ["ProcessExecutor"]

Reply = tuple[str, Any, Held, tuple[dict[str, Any], ...]]


@dataclass(frozen=True, slots=True)
class _Batch:
    """What one ``run()`` sends, each part pickled once."""

    program_key: str
    program: bytes
    shared: dict[int, tuple[str, bytes]]
    """``id(task.state)`` → (content key, bytes) of each shared input of the batch."""
    overrides: dict[tuple[str, int], bytes]
    """(branch_id, index) → the task's pickled overrides."""


class ProcessExecutor(BaseExecutor):
    """Runs branches in worker processes. One per run; thread-safe; ``close()`` is idempotent.

    ``run()`` raises ``SerializationError`` (naming the branch and the state key)
    before starting any branch when a fan-out's shared input, a task's overrides or
    the program cannot be pickled; this is the only error ``run()`` raises.
    ``max_workers`` defaults to the number of CPUs. A branch that times out or is
    cancelled has its worker killed, with the programs the branch started (those
    that left the worker's process group too); nodes in a worker are not told to
    stop at a node boundary first.
    """

    strategy = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._pool = WorkerPool(start_context())
        self._programs: dict[str, bytes] = {}

    def warm(self) -> None:
        """Start the pool's workers in the background and return at once, so the first
        fan-out finds them booted (``SupportsWarm``)."""
        count = self._max_workers or self._default_workers()
        threading.Thread(
            target=self._pool.warm, args=(count,), name="tea-process-warm", daemon=True
        ).start()

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        shared: dict[int, tuple[str, bytes]] = {}
        overrides: dict[tuple[str, int], bytes] = {}
        for task in tasks:
            if id(task.state) not in shared:
                data = _pickle(task, task.state, "the fan-out's shared input")
                shared[id(task.state)] = (content_key(data), data)
            overrides[(task.branch_id, task.index)] = _pickle(
                task, task.overrides, "the branch's own input"
            )
        key = program.key
        if key not in self._programs:
            try:
                self._programs[key] = dumps(program)
            except Exception as exc:
                raise SerializationError(
                    f"the workflow cannot be sent to worker processes: {exc}",
                    hint="every node body must be picklable with cloudpickle",
                ) from exc
        self._pool.warm(min(workers, len(tasks)))
        return partial(self._attempt, _Batch(key, self._programs[key], shared, overrides))

    def _attempt(self, batch: _Batch, ctx: AttemptContext) -> BranchResult:
        task = ctx.task
        shared_key, _ = batch.shared[id(task.state)]
        try:
            worker = self._pool.acquire(batch.program_key, shared_key)
        except Exception as exc:  # the forkserver or the OS refused a new process
            error = WorkerDied(
                f"cannot start a worker process ({exc}); {MAIN_GUARD_HINT}",
                branch=task.branch_id,
            )
            return failed(task, error)
        unhook = ctx.token.on_cancel(worker.kill)
        reply: Reply | SerializationError | None = None
        timed_out = False
        ready = worker.wait_ready()
        # Booting a fresh worker is the pool's cost, not the branch's: the branch's
        # timeout starts when a worker is ready to run it.
        ctx.start_clock()
        if ready:
            ctx.started(pid=worker.pid)
        try:
            if ready:
                reply = _exchange(worker, batch, ctx)
                timed_out = reply is None
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

    def close(self) -> None:
        """Stop every worker (idle ones exit, busy ones are killed). Idempotent."""
        super().close()
        self._pool.close()


def _pickle(task: BranchTask, state: Any, what: str) -> bytes:
    try:
        return dumps(state)
    except Exception as exc:
        raise serialization_error(task.branch_id, state, exc, what) from exc


def _exchange(
    worker: WorkerProcess, batch: _Batch, ctx: AttemptContext
) -> Reply | SerializationError | None:
    """Send ``ctx.task`` to ``worker`` and wait for its reply (``None``: the deadline
    passed first). Bytes the worker already holds are left out; a "missing" reply
    (the worker had dropped them) is answered once more with every byte."""
    task = ctx.task
    shared_key, shared = batch.shared[id(task.state)]
    head: Head = (
        task.branch_id, task.entry, task.exit, task.index, task.target, task.fanout,
        task.attempt, task.depth,
    )
    overrides = batch.overrides[(task.branch_id, task.index)]
    reply: Reply | SerializationError | None = None
    for resend in (False, True):
        request: Request = (
            batch.program_key,
            batch.program if resend or batch.program_key not in worker.programs else None,
            shared_key,
            shared if resend or shared_key not in worker.shared else None,
            head,
            overrides,
        )
        worker.conn.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
        if not worker.wait_reply(ctx.remaining()):
            return None
        reply = _decode(task, worker.conn.recv_bytes())
        if isinstance(reply, SerializationError):
            return reply
        worker.holds(reply[2])
        if reply[0] != "missing":
            return reply
    return reply


def _decode(task: BranchTask, data: bytes) -> Reply | SerializationError:
    try:
        reply: Reply = pickle.loads(data)
    except Exception as exc:
        return SerializationError(
            f"the branch's result cannot be unpickled in the driver: {exc}",
            branch=task.branch_id,
        )
    return reply


def _result(
    task: BranchTask, reply: Reply | SerializationError, worker: WorkerProcess, stderr: str
) -> BranchResult:
    """The branch's result from the worker's reply; ``stderr`` is what it wrote meanwhile."""
    source = f"worker process {worker.pid}"
    if isinstance(reply, SerializationError):
        reply.stderr_tail = stderr or None
        return failed(task, reply, pid=worker.pid)
    kind, payload, _, events = reply
    if kind == "ok":
        if stderr:  # what the branch printed: for people, on stderr (never the data on stdout)
            log.info("output of branch %s (%s):\n%s", task.branch_id, source, stderr)
        return succeeded(task, payload, pid=worker.pid, events=events)
    if kind == "missing":
        lost = SerializationError(
            f"{source} did not keep the program or shared state it was sent",
            branch=task.branch_id,
        )
        payload = error_info(lost, traceback=False)
    info: ErrorInfo = payload
    return failed(task, with_stderr(info, stderr, source), pid=worker.pid, events=events)
