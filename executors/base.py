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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = [
    "BranchProgram",
    "BranchResult",
    "BranchTask",
    "BreakerPolicy",
    "ErrorInfo",
    "ParallelConfig",
    "ParallelExecutor",
    "RetryPolicy",
]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed branch is tried again (exponential backoff, through tenacity)."""

    max_attempts: int = 1
    backoff_base_ms: float = 100.0
    backoff_max_ms: float = 10_000.0
    jitter: bool = True
    retry_on: tuple[str, ...] = ()
    """Error type names that are retried; empty means every error."""


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
    remote: Mapping[str, Any] | None = None
    """``settings.parallel.remote`` merged with an edge's override; the remote backend reads it."""


@dataclass(frozen=True, slots=True)
class BranchTask:
    """One branch of a fan-out.

    ``branch_id`` is stable across runs (``fanout[target]`` or ``fanout[index]``);
    ``target`` scopes circuit breakers; ``scope`` names the dynamic_parallel node
    whose body the branch runs (``None``: a static branch of the main graph, from
    ``entry`` up to ``exit``, exclusive).
    """

    branch_id: str
    entry: str
    exit: str | None
    state: dict[str, Any]
    index: int = 0
    target: str = ""
    scope: str | None = None
    attempt: int = 1


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
            kinds=_kinds(exc),
            stderr_tail=getattr(exc, "stderr_tail", None),
        )

    def matches(self, names: Sequence[str]) -> bool:
        """Whether this error is one of ``names`` (its type, a base class, or a cause's)."""
        own = self.kinds or (self.type,)
        return any(name in own for name in names)


def _kinds(exc: BaseException) -> tuple[str, ...]:
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


_RESULT_FIELDS: frozenset[str] = frozenset()
_ERROR_FIELDS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class BranchResult:
    """What came back from one branch.

    ``r["key"]`` reads a field of the record when there is one, and otherwise the
    branch's final state, so fan-in code can write ``r["score"]``.
    """

    branch_id: str
    success: bool
    state: dict[str, Any]
    error: ErrorInfo | None = None
    attempts: int = 1
    duration_ms: float = 0.0
    index: int = 0
    thread: str | None = None
    pid: int | None = None
    host: str | None = None
    breaker_state: str | None = None

    def __getitem__(self, key: str) -> Any:
        if key in _RESULT_FIELDS:
            value = getattr(self, key)
            return asdict(value) if isinstance(value, ErrorInfo) else value
        return self.state[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in _RESULT_FIELDS or key in self.state

    def to_dict(self) -> dict[str, Any]:
        """A dict of the fields (used by checkpoints, stream events and remote workers).

        JSON-serialisable when the branch state is; the state is not copied.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.error is not None:
            out["error"] = asdict(self.error)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BranchResult:
        values = dict(data)
        error = values.get("error")
        if isinstance(error, Mapping):
            values["error"] = ErrorInfo(**{**error, "kinds": tuple(error.get("kinds", ()))})
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


_RESULT_FIELDS = frozenset(f.name for f in fields(BranchResult))
_ERROR_FIELDS = frozenset(f.name for f in fields(ErrorInfo))


@runtime_checkable
class BranchProgram(Protocol):
    """What a backend runs: the compiled graph, picklable with cloudpickle.

    ``key`` identifies the program (a hash of its source), so a worker can cache
    it and receive only tasks afterwards. ``run_branch`` returns the branch's final
    state or raises; it checks ``cancel`` between nodes and stops when it is set.
    """

    @property
    def key(self) -> str: ...

    def run_branch(
        self, task: BranchTask, cancel: threading.Event | None = None
    ) -> dict[str, Any]: ...


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
