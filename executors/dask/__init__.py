"""The ``dask`` strategy: branches run as tasks on a Dask distributed cluster.

::

    parse_options(settings.parallel.dask) ─► DaskOptions (at load; no Dask import)
    run() ── the first time for a scheduler: Session.open (the address, $DASK_SCHEDULER_ADDRESS,
       │     or an embedded LocalCluster); pickles once per batch each fan-out's shared input
       │     and checks every branch's overrides (else SerializationError, nothing started);
       │     the program once per key for the executor's life
       ▼
    BatchRunner (retries, breakers, timeouts, fail_fast; a driver per branch in flight)
       driver ─► Batch.attempt: the branch joins a chunk; chunks go out as Dask tasks, at
       │         most ``cap`` in flight; each carries keys of the program and the shared
       │         input (scattered once to every worker) and only its branches' overrides
       ◄── worker: run_chunk ─► one outcome per branch (an update, an ErrorInfo, cancelled)
       deadline or batch cancelled ─► the branch leaves its chunk; a chunk nobody waits for
       has its future cancelled, and the worker stops at the next node boundary

Sizes: ``cap`` (tasks in flight) is ``max_workers``, else twice the cluster's worker
threads (so a worker has its next chunk while it runs one), or once with a timeout;
``chunk_size`` is ``options.chunk_size``, else chosen from the fan-out's width (a few
chunks per slot, at most ``_MAX_CHUNK`` branches, ``_MAX_IN_FLIGHT`` branches in flight
in all). With ``timeout_seconds`` each branch is its own task, so a branch that runs
out of time has its future cancelled alone. Dask is imported on first use.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from executors._pickling import content_key, dumps, serialization_error
from executors.backend import BaseExecutor
from executors.base import BranchProgram, BranchResult, BranchStarted, BranchTask, Locate, ParallelConfig
from executors.dask._options import DaskOptions, resolve_address
from executors.dask.errors import DaskSetupError, SchedulerUnreachable
from executors.resilience import Attempt
from tea.errors import SerializationError

if TYPE_CHECKING:
    from executors.dask._chunks import Batch
    from executors.dask._session import Session

__all__ = ["DaskExecutor", "DaskOptions", "DaskSetupError", "SchedulerUnreachable"]

_MAX_CHUNK = 250
_MAX_IN_FLIGHT = 512
"""Branches in flight at most (each waits on a driver thread of the BatchRunner)."""
_CHUNKS_PER_SLOT = 4
_OPTIONS = DaskOptions()


class DaskExecutor(BaseExecutor):
    """Runs branches on a Dask cluster. One per run; thread-safe; ``close()`` is idempotent.

    ``run()`` raises ``SerializationError`` (naming the branch and the state key) when
    a fan-out's shared input, a branch's overrides or the program cannot be pickled,
    and ``DaskSetupError`` (``SchedulerUnreachable``) when the cluster cannot be
    reached or started, before any branch starts. ``max_workers`` caps the Dask tasks
    in flight. A timed-out or cancelled branch has its task's future cancelled.
    """

    strategy = "dask"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._lock = threading.Lock()
        self._sessions: dict[str | None, Session] = {}
        """By scheduler address (``None``: the embedded cluster)."""
        self._programs: dict[str, tuple[str, bytes]] = {}

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None, locate: Locate) -> DaskOptions:
        """``settings.parallel.dask`` as ``DaskOptions`` (``SchemaError`` for bad input, or
        with the install line when Dask is not installed)."""
        return DaskOptions.parse(raw, locate)

    def warm(self) -> None:
        """Import Dask in the background (``SupportsWarm``): it takes longer than a small
        fan-out. The cluster starts with the first fan-out, which knows its options."""
        threading.Thread(
            target=importlib.import_module, args=("distributed",), name="tea-dask-warm", daemon=True
        ).start()

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Start the batch and yield results as branches finish (see ``ParallelExecutor``).

        Unlike ``BaseExecutor.run``, the BatchRunner gets one driver per branch in flight
        (tasks in flight times the chunk size), not one per task in flight.
        """
        self._check_open()
        if not tasks:
            return iter(())
        batch, in_flight = self._batch(program, tasks, config)
        return self._runner.run(tasks, config, batch.attempt, workers=in_flight, cancel=cancel, on_start=on_start)

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        return self._batch(program, tasks, config)[0].attempt

    def _batch(
        self, program: BranchProgram, tasks: Sequence[BranchTask], config: ParallelConfig
    ) -> tuple[Batch, int]:
        """The batch's plan and how many branches it keeps in flight (raises before any
        branch starts: ``SerializationError``, ``DaskSetupError``)."""
        from executors.dask._chunks import Batch, Plan  # Dask loads with the first fan-out

        options = config.options if isinstance(config.options, DaskOptions) else _OPTIONS
        shared = _shared_inputs(tasks)
        program_ref = self._program(program)
        session = self._session(options, tasks[0].branch_id)
        # Shipped now, so that a cluster without workers fails the batch before it starts.
        session.ship("program", *program_ref, tasks[0].branch_id)
        for key, data in shared.values():
            session.ship("shared", key, data, tasks[0].branch_id)
        timed = config.timeout_seconds is not None
        threads = session.threads()
        cap = config.max_workers or self._max_workers or (threads if timed else 2 * threads)
        chunk = 1 if timed else options.chunk_size or _auto_chunk(len(tasks), cap)
        plan = Plan(_fanout_name(tasks[0]), program_ref, shared, chunk, cap)
        return Batch(session, plan), min(len(tasks), cap * chunk)

    def _program(self, program: BranchProgram) -> tuple[str, bytes]:
        key = program.key
        with self._lock:
            if key not in self._programs:
                try:
                    data = dumps(program)
                except Exception as exc:
                    raise SerializationError(
                        f"the workflow cannot be sent to Dask workers: {exc}",
                        hint="every node body must be picklable with cloudpickle",
                    ) from exc
                self._programs[key] = (content_key(data), data)
            return self._programs[key]

    def _session(self, options: DaskOptions, branch: str) -> Session:
        from executors.dask._session import Session, leave_worker_threads

        leave_worker_threads()
        with self._lock:
            self._check_open()
            address = resolve_address(options)[0]
            session = self._sessions.get(address)
            if session is None:
                session = Session.open(options, branch)
                self._sessions[address] = session
            return session

    def close(self) -> None:
        """Disconnect from every cluster and stop the embedded one. Idempotent."""
        super().close()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _shared_inputs(tasks: Sequence[BranchTask]) -> dict[int, tuple[str, bytes]]:
    """Each distinct shared input, pickled once, by ``id``; checks every branch's overrides."""
    shared: dict[int, tuple[str, bytes]] = {}
    for task in tasks:
        if id(task.state) not in shared:
            data = _pickle(task, task.state, "the fan-out's shared input")
            shared[id(task.state)] = (content_key(data), data)
    try:
        dumps([task.overrides for task in tasks])
    except Exception:
        for task in tasks:
            _pickle(task, task.overrides, "the branch's own input")
        raise
    return shared


def _pickle(task: BranchTask, state: Mapping[str, Any], what: str) -> bytes:
    try:
        return dumps(state)
    except Exception as exc:
        raise serialization_error(task.branch_id, state, exc, what) from exc


def _auto_chunk(branches: int, cap: int) -> int:
    """Branches per task: a few chunks for every task slot (so workers stay evenly busy),
    as many branches per chunk as that allows (a task's fixed cost is milliseconds),
    within the bounds."""
    return max(1, min(_MAX_CHUNK, branches // (cap * _CHUNKS_PER_SLOT), _MAX_IN_FLIGHT // cap))


def _fanout_name(task: BranchTask) -> str:
    """The fan-out's node, for task keys (Dask splits keys at ``-``)."""
    name = task.fanout or task.branch_id.partition("[")[0] or "branch"
    return name.replace("-", "_")
