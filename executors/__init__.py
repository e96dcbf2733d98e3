"""Parallel backends, chosen by name through a lazy registry.

``get_executor("thread")`` imports the backend only when first asked for it, so
``tea --version`` never pays for cloudpickle or asyncssh. ``thread`` and
``process`` are built in; every other strategy comes from the entry-point group
``tea.executors`` (``name = "module:Factory"``, a factory taking no arguments and
returning a ``ParallelExecutor``) or from ``register_executor``.

A backend class may parse its own options (``settings.parallel.<strategy>`` merged
with a fan-out's ``<strategy>:`` override) once, at load::

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None, locate: Locate) -> object | None

The engine calls ``parse_options(strategy, raw, locate)`` here, which calls it and
hands the typed record back (it travels in ``ParallelConfig.options``).

A backend may also start what its pool needs before anyone has loaded a workflow
(``prestart(name)`` calls it; a front end that can guess the strategy early, as
``tea run`` does, overlaps that start with its own). A built-in backend names a
function in a light module, so the head start does not wait for the backend's
imports; any other backend's factory may have one::

    @classmethod
    def prestart(cls) -> None   # returns at once; safe to call more than once
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from executors.base import (
    BranchProgram,
    BranchResult,
    BranchTask,
    BreakerPolicy,
    ErrorInfo,
    Locate,
    ParallelConfig,
    ParallelExecutor,
    RetryPolicy,
    SupportsWarm,
)
from tea.errors import SchemaError

__all__ = [
    "BranchProgram",
    "BranchResult",
    "BranchTask",
    "BreakerPolicy",
    "ErrorInfo",
    "Locate",
    "ParallelConfig",
    "ParallelExecutor",
    "RetryPolicy",
    "SupportsWarm",
    "UnknownStrategy",
    "get_executor",
    "get_factory",
    "known_strategies",
    "parse_options",
    "prestart",
    "register_executor",
]

Factory = Callable[[], ParallelExecutor]

_BUILTIN: dict[str, str] = {
    "thread": "executors.thread:ThreadExecutor",
    "process": "executors.process:ProcessExecutor",
}
_BUILTIN_PRESTART: dict[str, str] = {"process": "executors._forkserver"}
"""Built-in strategy -> the light module whose ``prestart()`` gives it a head start."""
_registered: dict[str, Factory] = {}


class UnknownStrategy(ValueError):
    """A strategy name nobody registered."""


def register_executor(name: str, factory: Factory) -> None:
    """Make ``parallel_strategy: <name>`` build executors with ``factory`` (a later
    registration of the same name replaces the earlier one)."""
    _registered[name] = factory


def _entry_point_names() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group="tea.executors")}


def known_strategies() -> list[str]:
    """Every strategy name that ``get_executor`` accepts."""
    names = set(_BUILTIN) | set(_registered) | set(_entry_point_names())
    return sorted(names)


def _import(target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory: Factory = getattr(module, attr)
    return factory


def get_factory(name: str) -> Factory:
    """The factory for ``name``; raises ``UnknownStrategy`` listing the known ones."""
    if name in _registered:
        return _registered[name]
    target = _BUILTIN.get(name) or _entry_point_names().get(name)
    if target is None:
        raise UnknownStrategy(
            f"unknown parallel strategy '{name}'; known: {', '.join(known_strategies())}"
        )
    factory = _import(target)
    _registered[name] = factory
    return factory


def get_executor(name: str) -> ParallelExecutor:
    """A new executor for strategy ``name`` (the caller closes it)."""
    return get_factory(name)()


def parse_options(strategy: str, raw: Mapping[str, Any] | None, locate: Locate) -> object | None:
    """The typed options record of ``strategy`` for ``raw`` (``None``: none given).

    Calls the factory's ``parse_options`` classmethod when it has one, which raises
    ``SchemaError`` for bad input. A strategy without one takes no options: a
    non-empty ``raw`` is a ``SchemaError`` naming the strategy. Raises
    ``UnknownStrategy`` for a name nobody registered.
    """
    parse: Callable[[Mapping[str, Any] | None, Locate], object | None] | None = getattr(
        get_factory(strategy), "parse_options", None
    )
    if parse is not None:
        return parse(raw, locate)
    if raw:
        raise SchemaError(
            f"the {strategy} strategy takes no options, but {strategy}: sets "
            + ", ".join(repr(str(key)) for key in raw),
            locate(raw),
            hint=f"remove the {strategy}: block",
        )
    return None


def prestart(strategy: str) -> None:
    """Start the pool machinery of ``strategy`` now, in the background, if its backend
    has a ``prestart`` classmethod; otherwise, or for a name nobody registered or a
    backend that cannot be imported, do nothing: this is a head start, never an error
    (the run that follows reports a bad strategy with its file and line)."""
    with contextlib.suppress(UnknownStrategy, ImportError, OSError):
        light = _BUILTIN_PRESTART.get(strategy) if strategy not in _registered else None
        owner: Any = importlib.import_module(light) if light else get_factory(strategy)
        start: Callable[[], None] | None = getattr(owner, "prestart", None)
        if start is not None:
            start()
