"""The Dask-worker side of the ``dask`` strategy: one Dask task runs a chunk of branches.

::

    run_chunk(program_key, program_blob, shared_key, shared_blob, branches_blob)
      ├─ the program and the fan-out's shared input: unpickled once per worker process
      │  and kept by key (the blobs are Dask data the worker already holds: scattered
      │  once, not sent with each task)
      ├─ branches_blob: each branch's head and overrides, pickled together
      ├─ each branch in turn: program.run_branch(task, cancel)
      │     ─► ("ok", pickled update) | ("error", ErrorInfo) | ("cancelled", None)
      └─ returns (pid, worker address, one outcome per branch, in the chunk's order)

A watcher thread (one per worker process, while chunks run) sets a running chunk's
cancel event once Dask no longer wants its result (the driver cancelled the future:
a timeout, fail_fast, a stop), so its branch stops at the next node boundary, as on
the thread strategy, and the chunk's later branches do not start.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import distributed

from executors._pickling import dumps, serialization_error
from executors._sync import CancelToken
from executors.base import BranchProgram, BranchTask, ErrorInfo
from executors.results import error_info
from tea.errors import SerializationError

__all__ = ["Head", "Outcome", "dask_setup", "run_chunk"]

Head = tuple[str, str, str | None, int, str, str | None, int, int]
"""A task without its states: branch_id, entry, exit, index, target, fanout, attempt, depth."""
Outcome = tuple[str, bytes | ErrorInfo | None]
"""("ok", pickled update) | ("error", ErrorInfo) | ("cancelled", None)."""

# A worker outlives runs on a shared cluster: it keeps a few programs and shared
# inputs (nested fan-outs, a loop around one), not every one it ever saw.
_PROGRAMS_KEPT = 8
_SHARED_KEPT = 4
_WATCH_SECONDS = 0.05
# Worker task states in which Dask no longer wants the result.
_NOT_WANTED = frozenset({"cancelled", "released", "forgotten"})


class _Held:
    """What one worker process keeps between tasks, by key. Thread-safe: a worker may run
    several tasks at once, and each key is unpickled once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._programs: OrderedDict[str, BranchProgram] = OrderedDict()
        self._shared: OrderedDict[str, Mapping[str, Any]] = OrderedDict()

    def program(self, key: str, blob: bytes) -> BranchProgram:
        return self._get(self._programs, key, blob, _PROGRAMS_KEPT)  # type: ignore[no-any-return]

    def shared(self, key: str, blob: bytes) -> Mapping[str, Any]:
        return self._get(self._shared, key, blob, _SHARED_KEPT)  # type: ignore[no-any-return]

    def _get(self, kept: OrderedDict[str, Any], key: str, blob: bytes, limit: int) -> Any:
        with self._lock:
            if key not in kept:
                kept[key] = pickle.loads(blob)
                while len(kept) > limit:
                    kept.popitem(last=False)
            kept.move_to_end(key)
            return kept[key]


class _Watcher:
    """Cancels the token of each running chunk whose task Dask no longer wants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[distributed.Worker, str, CancelToken]] = {}
        self._thread: threading.Thread | None = None

    def watch(self, worker: distributed.Worker, key: str, token: CancelToken) -> None:
        with self._lock:
            self._running[id(token)] = (worker, key, token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tea-dask-watch", daemon=True)
                self._thread.start()

    def forget(self, token: CancelToken) -> None:
        with self._lock:
            self._running.pop(id(token), None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._running:
                    self._thread = None  # the next watch() starts a new one
                    return
                running = list(self._running.values())
            for worker, key, token in running:
                state = worker.state.tasks.get(key)
                if state is None or state.state in _NOT_WANTED:
                    token.cancel()
            time.sleep(_WATCH_SECONDS)


_held = _Held()
_watcher = _Watcher()


def dask_setup(worker: distributed.Worker) -> None:
    """Dask's preload hook, run in each worker process of the embedded cluster as it starts.

    A Ctrl-C in the terminal reaches the whole process group: the driver decides what
    it means (stop at the next safe point, cancel the tasks), so a worker ignores it
    rather than die with a traceback on the user's terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_chunk(
    program_key: str,
    program_blob: bytes,
    shared_key: str,
    shared_blob: bytes,
    branches_blob: bytes,
) -> tuple[int, str, list[Outcome]]:
    """Run the chunk's branches one after the other (the Dask task's function)."""
    worker = distributed.get_worker()
    token = CancelToken()
    key = worker.get_current_task()
    if key is not None:
        _watcher.watch(worker, str(key), token)
    try:
        outcomes = _run(program_key, program_blob, shared_key, shared_blob, branches_blob, token)
    finally:
        _watcher.forget(token)
    return os.getpid(), worker.address, outcomes


def _run(
    program_key: str,
    program_blob: bytes,
    shared_key: str,
    shared_blob: bytes,
    branches_blob: bytes,
    token: CancelToken,
) -> list[Outcome]:
    branches: list[tuple[Head, Mapping[str, Any]]] = pickle.loads(branches_blob)
    try:
        program = _held.program(program_key, program_blob)
        shared = _held.shared(shared_key, shared_blob)
    except Exception as exc:
        error = SerializationError(
            f"the Dask worker cannot unpickle the branch program or its state: {exc}",
            branch=branches[0][0][0],
        )
        return [("error", error_info(error))] * len(branches)
    outcomes: list[Outcome] = []
    for head, own in branches:
        if token.cancelled:
            outcomes.append(("cancelled", None))
            continue
        branch_id, entry, exit, index, target, fanout, attempt, depth = head
        task = BranchTask(
            branch_id, entry, exit, shared, index=index, target=target, fanout=fanout,
            attempt=attempt, overrides=own, depth=depth,
        )
        outcomes.append(_branch(program, task, token))
    return outcomes


def _branch(program: BranchProgram, task: BranchTask, token: CancelToken) -> Outcome:
    try:
        update = program.run_branch(task, token.event)
    except Exception as exc:
        return ("error", error_info(exc))
    if token.cancelled:
        return ("cancelled", None)  # a branch that saw its cancel event may have stopped part-way
    try:
        return ("ok", dumps(update))
    except Exception as exc:
        error = serialization_error(task.branch_id, update, exc, "the branch's update")
        return ("error", error_info(error))
