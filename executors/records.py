"""The records a branch's outcome crosses the contract in: ``BranchResult`` and its
``ErrorInfo`` (``executors.base`` re-exports them with the rest of the contract).

Both survive JSON (``to_dict``/``from_dict``; checkpoints, journals, remote workers)
and pickle (process workers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ERROR_CATEGORIES", "BranchResult", "ErrorInfo", "error_kinds"]


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
    events: tuple[Mapping[str, Any], ...] = ()
    """What a worker reported while it ran the branch (retries, fallbacks: ``executors.events``),
    for the driver to report; empty once it has, and for a thread branch (it reports as it goes)."""
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
            self.index, self.thread, self.pid, self.host, self.breaker_state, self.events, base,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data: what checkpoints, journals, events, remote workers and
        the printed final state hold. ``base`` is left out: ``state`` is the branch's
        update; ``events`` only when there are some. The reference dialect's fields
        (``branch``, ``error_type``, ``traceback``, ``timeout``, ``timing_ms``,
        ``retry_count``) are there beside tea's own.
        JSON-serialisable when the update is; nothing is copied."""
        out = {name: getattr(self, name) for name in _SERIALISED}
        out["state"] = out.pop("update")
        if events := out.pop("events"):
            out["events"] = [dict(event) for event in events]
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
        events = values.get("events")
        values["events"] = tuple(e for e in events if isinstance(e, Mapping)) if isinstance(events, list) else ()
        known = {f.name for f in fields(cls)} - {"base"}
        return cls(**{k: v for k, v in values.items() if k in known}, base=base)


# ``events`` is transport (always empty once the driver reported them): ``r["events"]``
# reads the branch's own key of that name.
_RESULT_FIELDS = frozenset(f.name for f in fields(BranchResult)) - {"update", "base", "events"}
_REFERENCE_FIELDS = frozenset({"branch", "error_type", "traceback", "timeout", "timing_ms", "retry_count"})
"""Fields of the reference dialect's result records, derived from tea's own."""
_SERIALISED = tuple(f.name for f in fields(BranchResult) if f.name != "base")
_ERROR_FIELDS = frozenset(f.name for f in fields(ErrorInfo))
