"""The one exception tree of tea.

::

    TeaError                          category: what kind of failure (decides retries
    │                                 and hints, never the class name)
    ├── LoadError                     a workflow or its input cannot be used (exit code 2)
    │   │                             carries file, line, column and the YAML path
    │   ├── WorkflowSyntaxError       YAML, Python, Lua or Jinja syntax
    │   ├── SchemaError               unknown keys, missing keys, wrong types
    │   ├── ReferenceError_           a goto, edge or fan_in names a missing node
    │   ├── InputError                --input, --secrets, update or checkpoint argument is unusable
    │   └── LoadErrors                several of the above at once
    ├── RunError                      the workflow failed while running (exit code 1)
    │   │                             carries node, branch, host, exit status and stderr tail
    │   ├── NodeError                 an exception inside a node body
    │   │   └── FanOutTooDeep         "setup": fan-outs nested past tea.fanout.MAX_DEPTH
    │   ├── RecursionLimitError       too many steps; names the nodes of the cycle
    │   ├── BranchError               a parallel branch failed
    │   │   ├── BranchTimeout         "timeout" (also a TimeoutError)
    │   │   ├── WorkerDied            "worker_died": a process or remote worker died mid-branch
    │   │   │   └── HostDown          (remote.errors) a host cannot be reached or was lost
    │   │   ├── CircuitOpen           "circuit_open": the breaker of a branch target or host is open
    │   │   ├── Cancelled             "cancelled": fail_fast or a stop ended the branch first
    │   │   ├── RemoteSetupError      (remote.errors) "setup": a configuration no host can fix
    │   │   │   └── ProgramLoadError  the workflow shipped to a host does not load there
    │   │   ├── AllHostsDown          (remote.errors) "setup": no host can take the branch
    │   │   └── WorkerStopped         (remote.errors) "cancelled": the driver stopped a worker
    │   └── SerializationError        "setup": state cannot cross a process or host boundary
    ├── CheckpointError               a checkpoint is unreadable, corrupt, or of another workflow
    └── Interrupted                   "cancelled": a signal asked the run to stop (not a failure)

Every other error's category is ``"error"`` (the branch's or node's own code
failed). ``executors.base.ERROR_CATEGORIES`` lists the categories;
``ErrorInfo.from_exception`` copies ``category`` into a branch's result, and
the retry core (``executors.retry``) never retries ``cancelled``,
``circuit_open`` or ``setup``.

Load-time errors format as ``file:line:col: message`` so editors can jump there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BranchError",
    "BranchTimeout",
    "Cancelled",
    "CheckpointError",
    "CircuitOpen",
    "FanOutTooDeep",
    "InputError",
    "Interrupted",
    "LoadError",
    "LoadErrors",
    "Location",
    "NodeError",
    "RecursionLimitError",
    "ReferenceError_",
    "RunError",
    "SchemaError",
    "SerializationError",
    "TeaError",
    "WorkerDied",
    "WorkflowSyntaxError",
]


@dataclass(frozen=True, slots=True)
class Location:
    """Where something sits in a workflow file (1-based line and column)."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<workflow>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class TeaError(Exception):
    """Base of every error tea raises on purpose."""

    exit_code = 1
    category = "error"
    """One of ``executors.base.ERROR_CATEGORIES``; subclasses say which."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for stream events and branch results."""
        return {"type": type(self).__name__, "message": self.message}


class LoadError(TeaError):
    """The workflow (or an input to it) is invalid; nothing ran."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.location = location or Location()
        self.path = path

    def __str__(self) -> str:
        located = self.location.file is not None or self.location.line is not None
        text = f"{self.location}: {self.message}" if located else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class WorkflowSyntaxError(LoadError):
    """YAML, Python, Lua or Jinja text that does not parse."""


class SchemaError(LoadError):
    """A key that is unknown, missing, or of the wrong type."""


class ReferenceError_(LoadError):
    """A goto, edge, or fan_in names a node that does not exist."""


class InputError(LoadError):
    """An input given on the command line or to resume is unusable."""


class LoadErrors(LoadError):
    """Several load problems at once (``tea validate`` prints each)."""

    def __init__(self, errors: list[LoadError]) -> None:
        super().__init__(errors[0].message, errors[0].location, hint=errors[0].hint)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class RunError(TeaError):
    """The workflow failed while running."""

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        branch: str | None = None,
        host: str | None = None,
        exit_status: int | None = None,
        stderr_tail: str | None = None,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.node = node
        self.branch = branch
        self.host = host
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail
        self.location = location
        self.details: str | None = None
        """A traceback from where the error happened (another thread, process or host)."""

    def __str__(self) -> str:
        where = []
        if self.branch:
            where.append(f"branch {self.branch}")
        if self.node:
            where.append(f"node '{self.node}'")
        if self.host:
            where.append(f"host {self.host}")
        text = self.message
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.location is not None and self.location.line is not None:
            text += f" ({self.location})"
        if self.stderr_tail:
            text += f"\n  stderr: {self.stderr_tail.strip()}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("node", "branch", "host", "exit_status", "stderr_tail"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class NodeError(RunError):
    """An exception raised inside a node body; ``__cause__`` is the original."""


class FanOutTooDeep(NodeError):
    """Fan-outs nested deeper than ``tea.fanout.MAX_DEPTH``: nothing a retry or the fan-in can fix."""

    category = "setup"


class RecursionLimitError(RunError):
    """The run took more steps than ``settings.recursion_limit`` allows."""


class BranchError(RunError):
    """A parallel branch failed."""


class BranchTimeout(BranchError, TimeoutError):
    """A branch ran longer than its ``timeout_seconds``."""

    category = "timeout"


class WorkerDied(BranchError):
    """The process or host running a branch died before answering."""

    category = "worker_died"


class CircuitOpen(BranchError):
    """The circuit breaker for a branch target or host is open."""

    category = "circuit_open"


class Cancelled(BranchError):
    """A branch stopped before it finished: fail_fast, or the run was stopped."""

    category = "cancelled"


class SerializationError(RunError):
    """State that cannot cross a process or host boundary."""

    category = "setup"


class CheckpointError(TeaError):
    """A checkpoint that cannot be used."""

    exit_code = 2


class Interrupted(TeaError):
    """A signal (SIGINT, SIGTERM) asked the run to stop at the next safe point."""

    category = "cancelled"

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum
