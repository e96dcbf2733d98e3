"""Parallel backends, chosen by name through a lazy registry.

``get_executor("thread")`` imports the backend only when first asked for it, so
``tea --version`` never pays for cloudpickle or asyncssh. Third parties add a
strategy through the entry-point group ``tea.executors`` (a factory taking no
arguments and returning a ``ParallelExecutor``), or ``register_executor``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from executors.base import (
    BranchProgram,
    BranchResult,
    BranchTask,
    BreakerPolicy,
    ErrorInfo,
    ParallelConfig,
    ParallelExecutor,
    RetryPolicy,
)

__all__ = [
    "BranchProgram",
    "BranchResult",
    "BranchTask",
    "BreakerPolicy",
    "ErrorInfo",
    "ParallelConfig",
    "ParallelExecutor",
    "RetryPolicy",
    "UnknownStrategy",
    "get_executor",
    "known_strategies",
    "register_executor",
]

Factory = Callable[[], ParallelExecutor]

_BUILTIN: dict[str, str] = {
    "thread": "executors.thread:ThreadExecutor",
    "process": "executors.process:ProcessExecutor",
    "remote": "remote.executor:RemoteExecutor",
}
_registered: dict[str, Factory] = {}


class UnknownStrategy(ValueError):
    """A strategy name nobody registered."""


def register_executor(name: str, factory: Factory) -> None:
    """Make ``parallel_strategy: <name>`` build executors with ``factory``."""
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
