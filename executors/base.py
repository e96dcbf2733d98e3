"""The contract between the runner and every parallel backend.

Only the protocol and the frozen records that cross it live here::

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
from dataclasses import asdict, dataclass, field, fields
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from tea.errors import Location

__all__ = [
    "ERROR_CATEGORIES",
    "BranchProgram",
    "BranchResult",
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


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a branch failed, in a form that survives JSON."""

    type: str
    message: str
    node: str | None = None
    traceback: str | None = None
    exit_status: int | None = None
    host: str | None = None
    stderr_tail: str | None = None
    """The last lines a worker process or remote command wrote to stderr."""
    kinds: tuple[str, ...] = ()
    """Class names of the exception, its bases and its causes (what ``retry_on`` matches)."""
    category: str = "error"
    """What kind of failure this is (``ERROR_CATEGORIES``): decides retries and hints
    without matching class names."""

    def __getitem__(self, key: str) -> Any:
        """``error["message"]`` reads like the dict it is printed as."""
        if key not in _ERROR_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _ERROR_FIELDS else default

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str | None = None) -> ErrorInfo:
        return cls(
            type=type(exc).__name__,
            message=getattr(exc, "message", None) or str(exc),
            node=getattr(exc, "node", None),
            traceback=traceback,
            exit_status=getattr(exc, "exit_status", None),
            host=getattr(exc, "host", None),
            kinds=error_kinds(exc),
            stderr_tail=getattr(exc, "stderr_tail", None),
            category=getattr(exc, "category", None) or "error",
        )

    def matches(self, names: Sequence[str]) -> bool:
        """Whether this error is one of ``names`` (its type, a base class, or a cause's)."""
        own = self.kinds or (self.type,)
        return any(name in own for name in names)


def error_kinds(exc: BaseException) -> tuple[str, ...]:
    """Class names of ``exc``, its bases and its causes (what ``retry_on`` matches)."""
    names: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for klass in type(current).__mro__:
            if klass in (BaseException, object) or klass.__name__ in names:
                continue
            names.append(klass.__name__)
        current = current.__cause__ or current.__context__
    return tuple(names)


ERROR_CATEGORIES = ("error", "timeout", "cancelled", "circuit_open", "worker_died", "setup")
"""``error``: the branch's own code failed; ``timeout``: it ran out of time;
``cancelled``: fail_fast or a stop ended it (never retried); ``circuit_open``: its
breaker refused it (never retried); ``worker_died``: the process or host running it
died; ``setup``: nothing a retry or the fan-in can fix (a state that cannot be
shipped, no host reachable): the message says what to change."""

_RESULT_FIELDS: frozenset[str] = frozenset()
_ERROR_FIELDS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BranchResult:
    """What came back from one branch.

    ``update`` holds what the branch wrote: every key whose value differs from the
    fan-out's shared input (its own item and index included), never a copy of the
    parent. ``base`` is that shared input, attached by the engine where the result
    is read (never serialised). ``r["key"]`` reads a field of the record when there
    is one, else the update, else the base, so fan-in code can write ``r["score"]``.
    """

    branch_id: str
    success: bool
    update: dict[str, Any]
    error: ErrorInfo | None = None
    attempts: int = 1
    duration_ms: float = 0.0
    index: int = 0
    thread: str | None = None
    pid: int | None = None
    host: str | None = None
    breaker_state: str | None = None
    base: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def state(self) -> dict[str, Any]:
        """The branch's final state as it sees it: ``base`` with ``update`` applied (a new dict)."""
        if self.base is None:
            return dict(self.update)
        return {**self.base, **self.update}

    def __getitem__(self, key: str) -> Any:
        if key in _RESULT_FIELDS:
            value = getattr(self, key)
            return asdict(value) if isinstance(value, ErrorInfo) else value
        if key == "state":
            return self.state
        if key in _REFERENCE_FIELDS:
            return self.to_dict()[key]
        try:
            return self.update[key]
        except KeyError:
            if self.base is None:
                raise
            return self.base[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return (
            key in _RESULT_FIELDS
            or key == "state"
            or key in _REFERENCE_FIELDS
            or key in self.update
            or (self.base is not None and key in self.base)
        )

    def with_base(self, base: Mapping[str, Any] | None) -> BranchResult:
        """This result reading through to ``base`` (the fan-out's shared input)."""
        if base is self.base:
            return self
        return BranchResult(
            self.branch_id, self.success, self.update, self.error, self.attempts, self.duration_ms,
            self.index, self.thread, self.pid, self.host, self.breaker_state, base,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data: what checkpoints, journals, events, remote workers and
        the printed final state hold. ``base`` is left out: ``state`` is the branch's
        update. The reference dialect's fields (``branch``, ``error_type``, ``traceback``,
        ``timeout``, ``timing_ms``, ``retry_count``) are there beside tea's own.
        JSON-serialisable when the update is; nothing is copied."""
        out = {name: getattr(self, name) for name in _SERIALISED}
        out["state"] = out.pop("update")
        error = self.error
        out["branch"] = self.branch_id
        out["error_type"] = error.type if error is not None else None
        out["traceback"] = error.traceback if error is not None else None
        out["timeout"] = error is not None and error.category == "timeout"
        out["timing_ms"] = self.duration_ms
        out["retry_count"] = max(0, self.attempts - 1)
        if error is not None:
            out["error"] = asdict(error)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> BranchResult:
        values = dict(data)
        if "update" not in values and "state" in values:  # ``to_dict`` writes the update as ``state``
            values["update"] = values.pop("state")
        error = values.get("error")
        if isinstance(error, Mapping):
            known_error = {f.name for f in fields(ErrorInfo)}
            clean = {k: v for k, v in error.items() if k in known_error}
            values["error"] = ErrorInfo(**{**clean, "kinds": tuple(error.get("kinds", ()))})
        known = {f.name for f in fields(cls)} - {"base"}
        return cls(**{k: v for k, v in values.items() if k in known}, base=base)


_RESULT_FIELDS = frozenset(f.name for f in fields(BranchResult)) - {"update", "base"}
_REFERENCE_FIELDS = frozenset({"branch", "error_type", "traceback", "timeout", "timing_ms", "retry_count"})
"""Fields of the reference dialect's result records, derived from tea's own."""
_SERIALISED = tuple(f.name for f in fields(BranchResult) if f.name != "base")
_ERROR_FIELDS = frozenset(f.name for f in fields(ErrorInfo))


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


@runtime_checkable
class ParallelExecutor(Protocol):
    """A strategy for running branches. Lives for a whole run; ``close()`` is idempotent.

    ``run`` yields one ``BranchResult`` per task as branches finish (completion
    order; the runner puts them back in declaration order). It never raises for a
    failed branch: failures are results with ``success=False``. Setting ``cancel``
    stops branches not yet finished; they come back as failed results.
    """

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
    ) -> Iterator[BranchResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
