"""The driver side of one fan-out on Dask: branches grouped into chunked tasks.

::

    BatchRunner drivers (one per branch in flight: up to cap * chunk_size)
      attempt(ctx) ─► joins the open chunk ─ full, or no branch joined for _LINGER ─► sealed
                      sealed chunks are submitted while fewer than ``cap`` are in flight
                      (one Dask task each, named tea:<fan-out>-<token>-<first>..<last>)
      then waits for its own branch: its result | its deadline | its token cancelled
    a chunk's future done (Dask's callback thread) ─► one BranchResult per branch, handed
      to each waiting attempt; the next sealed chunk goes out
    a branch abandoned (deadline, fail_fast, a stop) ─► taken out of its chunk; a
      submitted chunk whose branches are all abandoned has its future cancelled, and the
      worker stops the branch it runs at its next node boundary

Retries, breakers and fail_fast stay per branch (``BatchRunner``): a retried branch
joins a later chunk. A worker that dies fails the attempts of its chunk with
``WorkerDied``; so does a chunk whose input the cluster lost (it is shipped again).
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import distributed

from executors._pickling import dumps
from executors._sync import shared_threads
from executors.base import BranchResult, BranchTask, ErrorInfo
from executors.dask._session import Session
from executors.dask._task import Head, Outcome
from executors.dask.errors import DaskSetupError
from executors.resilience import AttemptContext
from executors.results import cancelled, error_info, failed, succeeded
from tea.errors import SerializationError, WorkerDied

__all__ = ["Batch", "Plan"]

# How long an open chunk waits for another branch before it goes out part-full: long
# enough for the drivers of a wide fan-out to fill it, short against a task's round trip.
_LINGER = 0.002


@dataclass(frozen=True, slots=True)
class Plan:
    """What one fan-out sends, each part pickled once, and how it is cut into tasks."""

    name: str
    """The fan-out's node, in task keys (what the Dask dashboard groups tasks by)."""
    program: tuple[str, bytes]
    """(content key, bytes) of the program."""
    shared: Mapping[int, tuple[str, bytes]]
    """``id(task.state)`` → (content key, bytes) of each shared input of the batch."""
    chunk_size: int
    cap: int
    """Tasks in flight at most."""


def _taken() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False, slots=True)
class _Slot:
    """One attempt of one branch, waiting for its chunk."""

    ctx: AttemptContext
    chunk: _Chunk
    # A lock taken at birth and released once, to wake the attempt: a wide fan-out makes
    # one slot per branch, and an Event (a Condition, a lock per wait) costs several times that.
    wake: threading.Lock = field(default_factory=_taken)
    woken: bool = False
    result: BranchResult | None = None
    abandoned: bool = False

    def release(self) -> None:
        """Wake the attempt (once; under the batch's lock)."""
        if not self.woken:
            self.woken = True
            self.wake.release()


@dataclass(eq=False, slots=True)
class _Chunk:
    slots: list[_Slot] = field(default_factory=list)
    """Its branches; fixed once ``sent`` (the task carries them), shrinking before."""
    sent: bool = False
    future: distributed.Future[Any] | None = None


class Batch:
    """The chunking of one ``run()``; ``attempt`` is its ``BatchRunner`` attempt. Thread-safe."""

    def __init__(self, session: Session, plan: Plan) -> None:
        self._session = session
        self._plan = plan
        self._lock = threading.Lock()
        self._open: _Chunk | None = None
        self._last_join = 0.0
        self._sealed: deque[_Chunk] = deque()
        self._in_flight = 0
        self._sealing = False
        """Whether ``_seal_when_idle`` runs (on a pool thread) for the open chunk."""

    def attempt(self, ctx: AttemptContext) -> BranchResult:
        """One try of ``ctx.task``: joins a chunk and waits for the branch's result."""
        with self._lock:
            chunk = self._open
            if chunk is not None and chunk.slots and chunk.slots[0].ctx.task.state is not ctx.task.state:
                self._seal()  # a task carries one shared input: a batch of several cuts chunks there
                chunk = None
            chunk = chunk or _Chunk()
            slot = _Slot(ctx, chunk)
            chunk.slots.append(slot)
            self._open = chunk
            self._last_join = time.monotonic()
            if len(chunk.slots) >= self._plan.chunk_size:
                self._seal()
            elif not self._sealing:
                self._sealing = True
                shared_threads().submit(self._seal_when_idle)
            ready = self._ready()
        unhook = ctx.token.on_cancel(lambda: self._abandon(slot))
        self._submit(ready)
        remaining = ctx.remaining()
        slot.wake.acquire(timeout=-1 if remaining is None else remaining)
        if slot.result is None:
            ctx.token.cancel()  # the deadline passed (or a cancel did this already)
        unhook()
        if slot.result is not None:
            return slot.result
        return ctx.stopped()

    def _seal(self) -> None:
        """Close the open chunk (under the lock)."""
        if self._open is not None:
            if self._open.slots:
                self._sealed.append(self._open)
            self._open = None

    def _ready(self) -> list[_Chunk]:
        """Sealed chunks that may go out now (under the lock)."""
        ready = []
        while self._sealed and self._in_flight < self._plan.cap:
            chunk = self._sealed.popleft()
            if chunk.slots:
                self._in_flight += 1
                ready.append(chunk)
        return ready

    def _seal_when_idle(self) -> None:
        """Seal the open chunk once no branch joined it for ``_LINGER`` and a task slot is
        free (while every slot is taken, it may as well grow); ends when no chunk is open
        (the next one to open starts it again)."""
        while True:
            time.sleep(_LINGER)
            with self._lock:
                if self._open is None:
                    self._sealing = False
                    return
                idle = time.monotonic() - self._last_join >= _LINGER
                if idle and self._in_flight < self._plan.cap:
                    self._seal()
                ready = self._ready()
            self._submit(ready)

    def _abandon(self, slot: _Slot) -> None:
        """``slot``'s attempt ended without a result: leave its chunk; cancel the chunk's
        task once none of its branches is wanted."""
        with self._lock:
            if slot.abandoned or slot.result is not None:
                return
            slot.abandoned = True
            chunk = slot.chunk
            if not chunk.sent:
                chunk.slots.remove(slot)
            wanted = any(not s.abandoned and s.result is None for s in chunk.slots)
            future = None if wanted else chunk.future
            slot.release()
        if future is not None:
            future.cancel()  # type: ignore[no-untyped-call]

    def _submit(self, chunks: list[_Chunk]) -> None:
        for chunk in chunks:
            with self._lock:
                chunk.sent = True
                tasks = [s.ctx.task for s in chunk.slots]
            if not tasks:  # every branch left it between its sealing and now
                self._finish(chunk, [])
                continue
            try:
                future = self._send(tasks)
            except Exception as exc:
                self._finish(chunk, [failed(t, _setup(exc, t)) for t in tasks])
                continue
            with self._lock:
                chunk.future = future
                unwanted = all(s.abandoned for s in chunk.slots)
            if unwanted:
                future.cancel()  # type: ignore[no-untyped-call]
            future.add_done_callback(partial(self._done, chunk))  # type: ignore[no-untyped-call]

    def _send(self, tasks: list[BranchTask]) -> distributed.Future[Any]:
        first = tasks[0]
        plan = self._plan
        program_key, program = plan.program
        shared_key, shared = plan.shared[id(first.state)]
        program_ref = self._session.ship("program", program_key, program, first.branch_id)
        shared_ref = self._session.ship("shared", shared_key, shared, first.branch_id)
        # One opaque blob, not lists of tuples and dicts: Dask walks a task's arguments
        # item by item (looking for futures), which cost more than the branches themselves.
        branches: list[tuple[Head, Mapping[str, Any]]] = [
            ((t.branch_id, t.entry, t.exit, t.index, t.target, t.fanout, t.attempt, t.depth),
             t.overrides)
            for t in tasks
        ]
        span = first.branch_id if len(tasks) == 1 else f"{first.branch_id}..{tasks[-1].branch_id}"
        key = f"tea:{plan.name}-{uuid.uuid4().hex}-{span}"
        return self._session.submit(
            key, program_key, program_ref, shared_key, shared_ref, dumps(branches)
        )

    def _done(self, chunk: _Chunk, future: distributed.Future[Any]) -> None:
        """A chunk's task ended (on Dask's callback thread): results to its attempts."""
        with self._lock:
            tasks = [s.ctx.task for s in chunk.slots]
            wanted = not all(s.abandoned for s in chunk.slots)
        self._finish(chunk, _results(tasks, future) if wanted else [])

    def _finish(self, chunk: _Chunk, results: list[BranchResult]) -> None:
        with self._lock:
            self._in_flight -= 1
            for slot, result in zip(chunk.slots, results, strict=False):
                if not slot.abandoned:
                    slot.result = result
            for slot in chunk.slots:
                slot.release()
            ready = self._ready()
        self._submit(ready)


def _results(tasks: list[BranchTask], future: distributed.Future[Any]) -> list[BranchResult]:
    """One result per task from a finished, failed or cancelled chunk."""
    try:
        pid, host, outcomes = future.result()
    except distributed.KilledWorker as exc:
        return [failed(t, _died(t, exc)) for t in tasks]
    except Exception as exc:
        if future.status == "cancelled" or isinstance(exc, OSError):
            return [failed(t, _lost(t, exc)) for t in tasks]
        return [failed(t, _setup(exc, t)) for t in tasks]
    return [_result(t, outcome, pid, host) for t, outcome in zip(tasks, outcomes, strict=True)]


def _result(task: BranchTask, outcome: Outcome, pid: int, host: str) -> BranchResult:
    kind, payload = outcome
    if kind == "ok" and isinstance(payload, bytes):
        try:
            return succeeded(task, pickle.loads(payload), pid=pid, host=host)
        except Exception as exc:
            error = SerializationError(
                f"the branch's update cannot be unpickled in the driver: {exc}", branch=task.branch_id
            )
            return failed(task, error_info(error, traceback=False), pid=pid, host=host)
    if kind == "error" and isinstance(payload, ErrorInfo):
        return failed(task, payload, pid=pid, host=host)
    return cancelled(task, pid=pid, host=host)


def _died(task: BranchTask, exc: distributed.KilledWorker) -> ErrorInfo:
    last = getattr(exc, "last_worker", None)
    where = getattr(last, "address", None) or "a Dask worker"
    error = WorkerDied(f"{where} died while running the branch", branch=task.branch_id, host=where)
    return error_info(error, traceback=False)


def _lost(task: BranchTask, exc: BaseException) -> ErrorInfo:
    error = WorkerDied(
        f"the Dask cluster lost the branch's task ({str(exc) or type(exc).__name__}): a worker "
        "or the scheduler connection went away",
        branch=task.branch_id,
    )
    return error_info(error, traceback=False)


def _setup(exc: BaseException, task: BranchTask) -> ErrorInfo:
    """A chunk that Dask could not run at all: tea is missing or different on the workers,
    or the cluster refused the task."""
    if isinstance(exc, DaskSetupError):
        return error_info(exc, traceback=False)
    error = DaskSetupError(
        f"the Dask workers cannot run tea's branches: {type(exc).__name__}: {exc}",
        branch=task.branch_id,
        hint="install tea, the same version and with its dependencies, on every Dask worker",
    )
    error.__cause__ = exc  # its traceback (the worker's, rebuilt by Dask) goes into the error
    return error_info(error)
