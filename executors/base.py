"""The contract between the runner and every parallel backend.

Only the protocol and the frozen records that cross it live here (the outcome's,
``BranchResult`` and ``ErrorInfo``, in ``executors.records``, re-exported)::

    runner ── BranchTask* + ParallelConfig ──► ParallelExecutor.run() ──► BranchResult*
                                   │                                    (as they finish)
                                   └── program.run_branch(task, cancel) runs one branch
                                       (in a thread, a worker process, or on a remote host)

A backend never imports the runner: it receives a ``BranchProgram`` (the compiled
graph, picklable with cloudpickle) and calls ``run_branch`` on it wherever it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from executors.records import ERROR_CATEGORIES, BranchResult, ErrorInfo, error_kinds
from tea.errors import Location

__all__ = [
    "ERROR_CATEGORIES",
    "BranchProgram",
    "BranchResult",
    "BranchStarted",
    "BranchTask",
    "BreakerPolicy",
    "ErrorInfo",
    "Locate",
    "ParallelConfig",
    "ParallelExecutor",
    "PortableProgram",
    "RetryPolicy",
    "SupportsPreflight",
    "SupportsWarm",
    "error_kinds",
]


Locate = Callable[..., Location]
"""Where a value of the workflow file sits: ``locate(mapping, key=None)`` (the loader
passes ``tea.yamlsrc.location_of``, so backends never read YAML themselves)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed branch (or node) is tried again; ``executors.retry`` runs it.

    The wait before try ``n + 1`` is ``backoff_base_ms * backoff_multiplier ** (n - 1)``
    capped at ``backoff_max_ms``; with ``jitter``, a uniform random time between 0
    and that ("full jitter").
    """

    max_attempts: int = 1
    """Tries in all, the first included."""
    backoff_base_ms: float = 100.0
    backoff_max_ms: float = 10_000.0
    jitter: bool = True
    retry_on: tuple[str, ...] = ()
    """Error type names that are retried (matched against the error, its bases and its
    causes); empty means every error. Cancelled, circuit_open and setup errors never are."""
    backoff_multiplier: float = 2.0
    """Growth of the wait per try (only the reference dialect's ``on_error`` changes it)."""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """A circuit breaker per branch target (or per host, for remote)."""

    failure_threshold: int = 5
    reset_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ParallelConfig:
    """Everything a backend needs to know about one fan-out."""

    strategy: str = "thread"
    max_workers: int | None = None
    timeout_seconds: float | None = None
    fail_fast: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    circuit_breaker: BreakerPolicy | None = None
    on_branch_failure: str = "fail"
    options: Any = None
    """The strategy's own options: ``settings.parallel.<strategy>`` merged with the
    fan-out's override, parsed once at load by the backend (``parse_options``) into
    its own typed record. ``None`` when the backend takes none."""


@dataclass(frozen=True, slots=True)
class BranchTask:
    """One branch of a fan-out.

    ``state`` is the fan-out's shared input: the parent state, the *same* object
    for every task of one fan-out, read-only (a backend ships it once per worker,
    by content, not once per task). ``overrides`` are the branch's own keys (a
    dynamic fan-out's item and index); the branch starts from ``initial_state()``.

    ``branch_id`` is stable across runs (``fanout[target]`` or ``fanout[index]``);
    ``target`` scopes circuit breakers; ``fanout`` names the dynamic_parallel node
    whose item body the branch runs (``None``: a static branch of the main graph,
    from ``entry`` up to ``exit``, exclusive).
    """

    branch_id: str
    entry: str
    exit: str | None
    state: Mapping[str, Any]
    index: int = 0
    target: str = ""
    fanout: str | None = None
    attempt: int = 1
    overrides: Mapping[str, Any] = field(default_factory=dict)
    depth: int = 1
    """How deep the fan-out is nested: 1 on the main path, 2 inside one of its branches..."""

    def initial_state(self) -> dict[str, Any]:
        """The state the branch starts from: a shallow copy of ``state`` plus ``overrides``."""
        return {**self.state, **self.overrides}




@runtime_checkable
class BranchProgram(Protocol):
    """What a backend runs: the compiled graph, picklable with cloudpickle.

    ``key`` identifies the program (a hash of its source), so a worker can cache
    it and receive only tasks afterwards. ``run_branch`` returns the branch's update
    (every key whose value differs from ``task.state``: a delta, never a copy of the
    parent) or raises; it checks ``cancel`` between nodes and stops when it is set.
    """

    @property
    def key(self) -> str: ...

    def run_branch(
        self, task: BranchTask, cancel: threading.Event | None = None
    ) -> dict[str, Any]: ...


@runtime_checkable
class PortableProgram(BranchProgram, Protocol):
    """A program that can also describe its branches as a standalone workflow, for
    hosts that run tea themselves (the remote strategy ships these files instead of
    a pickle)."""

    @property
    def secrets(self) -> Mapping[str, Any]:
        """The run's secrets, which the host needs to run the branch."""
        ...

    def workflow_files(
        self, entries: Sequence[str], exit: str | None, fanout: str | None
    ) -> dict[str, str] | None:
        """``{"workflow.yaml": text, "files/...": text}`` for branches starting at
        ``entries`` and ending before ``exit`` (or the item body of dynamic_parallel
        node ``fanout``); ``None`` when the program has no YAML source."""
        ...


@runtime_checkable
class SupportsWarm(Protocol):
    """An executor that can start its pool ahead of the first fan-out (optional).

    The runner calls ``warm()`` at the start of a run on every strategy the graph
    uses; it returns at once and the pool starts in the background.
    """

    def warm(self) -> None: ...


@runtime_checkable
class SupportsPreflight(Protocol):
    """An executor that checks what its fan-outs need before a run's first node (optional).

    The engine calls ``preflight(configs)`` once per run with the configs of every
    fan-out of the graph that uses the strategy; it raises an error with category
    ``setup`` (the run stops before anything ran) or returns when the run can go on.
    """

    def preflight(self, configs: Iterable[ParallelConfig]) -> None: ...


BranchStarted = Callable[[BranchTask, Mapping[str, Any]], None]
"""``on_start(task, where)``: a worker took the task's branch; ``where`` has some of
``thread``, ``pid``, ``host``, ``worker`` (empty for a branch that never reached one)."""


@runtime_checkable
class ParallelExecutor(Protocol):
    """A strategy for running branches. Lives for a whole run; ``close()`` is idempotent.

    ``run`` yields one ``BranchResult`` per task as branches finish (completion
    order; the runner puts them back in declaration order). It never raises for a
    failed branch: failures are results with ``success=False``. Setting ``cancel``
    stops branches not yet finished; they come back as failed results. ``on_start``
    hears of each branch once, before its result, from the backend's threads.
    """

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
