"""What every step type is made of: its parameters, its documented outputs, and the context it runs in.

::

    StepType(name, params=(Param...), outputs={field: meaning}, run=fn, check=fn?)
      load time:  check_params(type, raw, settings) -> problems (unknown, missing, wrong kind)
      run time:   fn(ctx: StepContext, params: dict) -> output dict      (params resolved:
                  defaults filled, kinds checked, after the templates were rendered)

A step reports failure by raising ``StepFailed`` (``ctx.fail(...)``): its message
names the step id, its type and the cause, with secrets redacted. ``StepTimeout``
is the step's own ``timeout_seconds`` running out; a stop from outside (the
mission's timeout, a signal) is ``tea.errors.Cancelled``.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.errors import Cancelled, RunError

if TYPE_CHECKING:
    from tea.actions import ActionContext

__all__ = [
    "KINDS",
    "Param",
    "StepContext",
    "StepFailed",
    "StepTimeout",
    "StepType",
    "check_params",
    "is_template",
    "resolve_params",
]

KINDS = ("text", "int", "number", "bool", "list", "mapping", "any", "command", "strings")
"""``command``: an argument list or a string (split with shlex); ``strings``: a list of
strings or one string; ``any``: whatever the YAML holds."""


class StepFailed(RunError):
    """A step failed; the message names the step, its type and the cause.

    ``retryable=False`` (a bad parameter value, a path outside the files root) makes
    the category ``setup``, which no retry repeats.
    """

    def __init__(self, message: str, *, retryable: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable
        if not retryable:
            self.category = "setup"


class StepTimeout(StepFailed, TimeoutError):
    """A step ran longer than its ``timeout_seconds``; what it started was killed."""

    category = "timeout"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a step type."""

    name: str
    kind: str = "text"
    required: bool = False
    default: Any = None
    doc: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")


Runner = Callable[["StepContext", dict[str, Any]], dict[str, Any]]
Checker = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class StepType:
    """A kind of step: ``run(ctx, params)`` returns the step's output (a dict).

    ``check(params, settings)`` adds load-time problems beyond the parameter specs
    (values that are templates are skipped). ``needs_shell``: the step runs
    programs, so the mission must set ``settings.shell.enabled: true``.
    """

    name: str
    family: str
    summary: str
    params: tuple[Param, ...]
    outputs: Mapping[str, str]
    run: Runner
    check: Checker | None = None
    needs_shell: bool = False
    by_name: Mapping[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.params})


@dataclass
class StepContext:
    """What a running step may know: who it is, the files root, settings, secrets, its
    cancel event and its deadline (``time.monotonic()``)."""

    step_id: str
    step_type: str
    action: ActionContext
    cancel: threading.Event | None = None
    deadline: float | None = None
    deadline_is_mission: bool = False
    timeout_seconds: float | None = None

    @property
    def root(self) -> Path:
        """The directory file parameters are confined to."""
        from tea.actions._common import files_root  # the actions package only where steps run

        return files_root(self.action)

    def section(self, name: str) -> Mapping[str, Any]:
        return self.action.section(name)

    def redact(self, text: str) -> str:
        return self.action.secrets.redact_text(text)

    def fail(self, message: str, *, retryable: bool = True, **kwargs: Any) -> StepFailed:
        """A ``StepFailed`` for this step, secrets removed from every text."""
        texts = {k: self.redact(v) for k, v in kwargs.items() if isinstance(v, str)}
        return StepFailed(
            self.redact(f"step '{self.step_id}' ({self.step_type}): {message}"),
            node=self.step_id, retryable=retryable, **{**kwargs, **texts},
        )

    def confine(self, path: Any, name: str = "path") -> Path:
        """``path`` under the files root (tea's file-action rule), else a ``StepFailed``."""
        from tea.actions import ActionFailed
        from tea.actions._common import confine

        try:
            return confine(self.action, self.step_type, path, name=name)
        except ActionFailed as exc:
            raise self.fail(exc.message.split(": ", 1)[-1], retryable=False, hint=exc.hint) from None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def stopped(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def out_of_time(self, what: str) -> RunError:
        """The error for a step stopped by its deadline or its cancel event (``what`` ran)."""
        if self.stopped():
            return Cancelled(f"step '{self.step_id}' ({self.step_type}): cancelled; {what} was stopped",
                             node=self.step_id)
        if self.deadline_is_mission:
            return Cancelled(f"step '{self.step_id}' ({self.step_type}): the mission ran out of time; "
                             f"{what} was stopped", node=self.step_id)
        return StepTimeout(
            f"step '{self.step_id}' ({self.step_type}): timed out after {self.timeout_seconds:g}s; "
            f"{what} was stopped", node=self.step_id,
        )

    def check_time(self, what: str) -> None:
        """Raise when the step is cancelled or past its deadline (call between chunks of work)."""
        remaining = self.remaining()
        if self.stopped() or (remaining is not None and remaining <= 0):
            raise self.out_of_time(what)


def is_template(value: Any) -> bool:
    """Whether ``value`` is only known at run time (a template string)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _number(value: Any, integer: bool) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if integer else float(value)
    except (TypeError, ValueError):
        return None


def coerce(param: Param, value: Any) -> tuple[Any, str | None]:
    """``value`` in the kind ``param`` wants (numeric text is a number), or a problem."""
    kind = param.kind
    if value is None or kind == "any":
        return value, None
    if kind == "text":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value), None
        return value, f"must be text, got {type(value).__name__}"
    if kind in ("int", "number"):
        number = _number(value, kind == "int")
        if number is None:
            return value, f"must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}"
        if param.minimum is not None and number < param.minimum:
            return value, f"must be at least {param.minimum:g}, got {number:g}"
        return number, None
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return text in ("true", "yes", "1", "on"), None
        return value, f"must be true or false, got {value!r}"
    return _coerce_container(kind, value)


def _coerce_container(kind: str, value: Any) -> tuple[Any, str | None]:
    if kind == "list":
        ok = isinstance(value, list | tuple)
        return (list(value), None) if ok else (value, f"must be a list, got {type(value).__name__}")
    if kind == "mapping":
        ok = isinstance(value, Mapping)
        return (dict(value), None) if ok else (value, f"must be a mapping, got {type(value).__name__}")
    if kind == "strings":
        if isinstance(value, str):
            return [value], None
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value), None
        return value, "must be a string or a list of strings"
    if isinstance(value, str):  # command
        return value, None
    if not isinstance(value, list | tuple) or not value:
        return value, "must be a non-empty argument list (or a string, split into words without a shell)"
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, str | int | float)]
    if bad:
        return value, f"items must be strings or numbers, got {bad[0]!r} (quote words like 'true' or 'no')"
    return [str(v) for v in value], None


def check_params(stype: StepType, raw: Mapping[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """Load-time problems of ``raw`` for ``stype``: (parameter or None, message, hint).

    Template values are only known at run time, so their kind is not checked here.
    """
    problems: list[tuple[str | None, str, str | None]] = []
    known = list(stype.by_name)
    for key, value in raw.items():
        param = stype.by_name.get(str(key))
        if param is None:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else (
                f"{stype.name} takes: {', '.join(known)}" if known else f"{stype.name} takes no parameters")
            problems.append((str(key), f"unknown parameter '{key}' for step type {stype.name}", hint))
            continue
        if is_template(value):
            continue
        _, problem = coerce(param, value)
        if problem is None and param.choices and value not in param.choices:
            problem = f"must be one of {', '.join(param.choices)}, got {value!r}"
        if problem is not None:
            problems.append((str(key), f"parameter '{key}' {problem}", param.doc or None))
    for param in stype.params:
        if param.required and param.name not in raw:
            problems.append((None, f"missing parameter '{param.name}' for step type {stype.name}",
                             param.doc or None))
    return problems


def resolve_params(ctx: StepContext, stype: StepType, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered ``raw`` with defaults filled in and every value in its kind."""
    out: dict[str, Any] = {}
    for param in stype.params:
        if param.name not in raw or raw[param.name] is None:
            if param.required:
                raise ctx.fail(f"parameter '{param.name}' is empty", retryable=False)
            out[param.name] = param.default
            continue
        value, problem = coerce(param, raw[param.name])
        if problem is None and param.choices and value not in param.choices:
            problem = f"must be one of {', '.join(param.choices)}, got {value!r}"
        if problem is not None:
            raise ctx.fail(f"parameter '{param.name}' {problem}", retryable=False)
        out[param.name] = value
    return out
