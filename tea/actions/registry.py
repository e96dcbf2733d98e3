"""The action registry, the per-call context, and the one way an action is called.

An action is any callable ``fn(state, **params)`` returning a dict (an update)
or any value (stored under ``output:``), exactly as in the reference
implementation, so its users' action modules work unchanged. The registry is
dict-like (``registry["name"] = fn``). Built-ins that need the node's context
(settings, secrets, workflow directory) are marked with ``takes_context`` and
get it as the keyword ``ctx``.

A registry is filled at load time and only read while running, so one registry
may be shared by every branch thread; it pickles (cloudpickle) for the process
and remote strategies.

This module knows no action: the built-ins import it (through ``_common``) and
``tea.actions.builtin`` collects them into registries.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tea.errors import Location, NodeError, SchemaError, TeaError
from tea.secrets import Secrets

__all__ = [
    "ActionContext",
    "ActionFailed",
    "ActionRegistry",
    "UnknownAction",
    "call_action",
    "parameter_problems",
    "redact_text",
    "register_action",
    "registered_actions",
    "takes_context",
]

Action = Callable[..., Any]
F = TypeVar("F", bound=Action)

_global_actions: dict[str, Action] = {}
_global_lock = threading.Lock()


@dataclass
class ActionContext:
    """What an action may know about the node calling it; built per node call."""

    node: str
    workflow_dir: Path
    settings: Mapping[str, Any]
    secrets: Secrets
    variables: Mapping[str, Any] = field(default_factory=dict)
    document: Mapping[str, Any] | None = None
    """The workflow's top level as plain data (keys such as ``extraction_schema``)."""
    run_node: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None
    """Run another node of the workflow by name on a state; its update (``retry.loop``)."""
    actions: Mapping[str, Action] | None = None
    """Every action the workflow can name (its ``imports:`` and the command line's
    included): where composite actions (``reason.react`` tools) find the ones they call."""

    def __post_init__(self) -> None:
        # A plain mapping would leave nothing able to redact; wrap it once here.
        if not isinstance(self.secrets, Secrets):
            self.secrets = Secrets(self.secrets or {})

    def section(self, name: str) -> Mapping[str, Any]:
        """``settings[name]`` when it is a mapping, else an empty one."""
        value = self.settings.get(name) if isinstance(self.settings, Mapping) else None
        return value if isinstance(value, Mapping) else {}


class ActionFailed(NodeError):
    """A built-in action failed; says which action and whether a retry could help."""

    def __init__(
        self, action: str, message: str, *, node: str | None = None,
        retryable: bool = False, **kwargs: Any,
    ) -> None:
        super().__init__(f"{action}: {message}", node=node, **kwargs)
        self.action = action
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(action=self.action, retryable=self.retryable)
        return out


class UnknownAction(SchemaError, KeyError):
    """A ``uses:`` name no registry entry matches; suggests the closest names."""

    def __init__(self, name: str, known: list[str], location: Location | None = None) -> None:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = (
            "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
            if close else "register it with tea.register_action or load it through imports:"
        )
        super().__init__(f"unknown action '{name}'", location, hint=hint)
        self.name = name
        self.suggestions = close

    __str__ = SchemaError.__str__


def takes_context(fn: F) -> F:
    """Mark an action that receives the ``ActionContext`` as the keyword ``ctx``."""
    fn.__tea_context__ = True  # type: ignore[attr-defined]
    return fn


class ActionRegistry(MutableMapping[str, Action]):
    """Action names to callables, dict-like (``registry["ns.name"] = fn``)."""

    def __init__(self, actions: Mapping[str, Action] | None = None) -> None:
        self._actions: dict[str, Action] = dict(actions or {})
        # (source, namespace) pairs already imported, so a repeated import is skipped.
        self.loaded: set[tuple[str, str]] = set()

    def __getitem__(self, name: str) -> Action:
        return self._actions[name]

    def __setitem__(self, name: str, fn: Action) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"an action name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise TypeError(f"action '{name}' must be callable, got {type(fn).__name__}")
        self._actions[name] = fn

    def __delitem__(self, name: str) -> None:
        del self._actions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._actions)

    def __len__(self) -> int:
        return len(self._actions)

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __repr__(self) -> str:
        return f"ActionRegistry({len(self._actions)} actions)"

    def resolve(self, name: str, *, location: Location | None = None) -> Action:
        """The action called ``name``; ``UnknownAction`` (a ``KeyError``) with suggestions."""
        try:
            return self._actions[name]
        except KeyError:
            raise UnknownAction(name, self.names(), location) from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._actions)

    def copy(self) -> ActionRegistry:
        """An independent registry with the same actions."""
        out = ActionRegistry(self._actions)
        out.loaded = set(self.loaded)
        return out


def register_action(name: str, fn: Action) -> None:
    """Make ``fn`` available as ``uses: name`` in every registry built after this call."""
    if not callable(fn):
        raise TypeError(f"action '{name}' must be callable, got {type(fn).__name__}")
    with _global_lock:
        _global_actions[name] = fn


def registered_actions() -> dict[str, Action]:
    """A snapshot of what ``register_action`` has added so far."""
    with _global_lock:
        return dict(_global_actions)


@functools.lru_cache(maxsize=1024)
def _signature(fn: Action) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _accepts(sig: inspect.Signature, name: str) -> bool:
    param = sig.parameters.get(name)
    if param is not None:
        return param.kind not in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL)
    return any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def parameter_problems(fn: Action, params: Mapping[str, Any]) -> list[str]:
    """Parameters ``fn`` would reject (unknown or missing), with suggestions."""
    sig = _signature(fn)
    if sig is None:
        return []
    listed = list(sig.parameters.values())
    names = [p.name for p in listed[1:] if p.name != "ctx" and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    problems = []
    for key in params:
        if not _accepts(sig, key):
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            tip = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(names)})"
            problems.append(f"unknown parameter '{key}'{tip}")
    for p in listed[1:]:
        missing = p.default is p.empty and p.name not in params and p.name != "ctx"
        if missing and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            problems.append(f"missing parameter '{p.name}'")
    return problems


def redact_text(ctx: ActionContext, text: str) -> str:
    """``text`` without the values of ``ctx.secrets``."""
    return ctx.secrets.redact_text(text)


def call_action(
    fn: Action, state: dict[str, Any], params: Mapping[str, Any], ctx: ActionContext,
    *, name: str | None = None, extra: Mapping[str, Any] | None = None,
) -> Any:
    """Call ``fn(state, **params)`` (plus ``ctx=`` for context actions) for ``ctx.node``.

    ``extra`` keywords (for example ``parallel_results`` at a fan-in) are passed
    only when ``fn`` accepts them. Any exception other than a ``TeaError``
    becomes ``NodeError`` naming the action and the node, secrets redacted.
    """
    label = name or getattr(fn, "__name__", "action")
    kwargs = dict(params)
    sig = _signature(fn)
    if extra and sig is not None:
        kwargs.update({k: v for k, v in extra.items() if k not in kwargs and _accepts(sig, k)})
    if getattr(fn, "__tea_context__", False):
        kwargs["ctx"] = ctx
    problems = parameter_problems(fn, params)
    if problems:
        raise NodeError(f"action '{label}': " + "; ".join(problems), node=ctx.node)
    try:
        return fn(state, **kwargs)
    except TeaError as exc:
        if isinstance(exc, NodeError) and exc.node is None:
            exc.node = ctx.node
        raise
    except Exception as exc:
        detail = redact_text(ctx, f"{type(exc).__name__}: {exc}")
        raise NodeError(f"action '{label}' failed: {detail}", node=ctx.node) from exc
