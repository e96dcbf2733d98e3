"""What node bodies can reach while they run: one ``Scope`` per walk.

The main path of a run has one scope; every parallel branch gets a fresh one
(its own Lua runtime, its own cancel flag), so branches never share mutable
engine state. Expensive parts (the Lua runtime, executors) are created on first
use. A scope is used by one thread at a time.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executors import get_executor
from tea.graph import Graph
from tea.secrets import Secrets
from tea.templates import EnvironProxy

if TYPE_CHECKING:
    from executors.base import BranchProgram, ParallelConfig, ParallelExecutor
    from tea.graph import FanOut
    from tea.lua import LuaRuntime
    from tea.signals import StopFlag

__all__ = ["DEFAULT_STEP_BUDGET", "Scope", "StepBudget"]

DEFAULT_STEP_BUDGET = 10_000_000
"""``settings.step_budget`` when the workflow does not set it."""

_ENV = EnvironProxy()


class StepBudget:
    """The node steps a whole run may take: its main path, every branch and every
    subgraph draw from one budget (``settings.step_budget``).

    Thread-safe: the walks of a thread fan-out share one object. It pickles as what
    was used so far, so a process or remote worker counts on from there on its own.
    """

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        # next() on a count is one atomic step under the GIL: no lock on the per-node path
        self._steps = itertools.count(used + 1)
        self._last = used

    @property
    def used(self) -> int:
        """Steps taken so far, as the last one saw it (other threads may be taking more)."""
        return self._last

    def spend(self) -> bool:
        """Take one step; ``False`` when that goes past the limit."""
        step = next(self._steps)
        self._last = step
        return step <= self.limit

    def __getstate__(self) -> dict[str, int]:
        return {"limit": self.limit, "used": self._last}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["limit"], state["used"])  # type: ignore[misc]


class Scope:
    """Services for one walk through the graph (the main path or one branch).

    ``program`` is what this walk's fan-outs hand to an executor (the graph,
    bound to the run's secrets, as a ``BranchProgram``).
    """

    def __init__(
        self,
        graph: Graph,
        program: BranchProgram,
        *,
        secrets: Secrets | None = None,
        cancel: threading.Event | None = None,
        stop: StopFlag | None = None,
        depth: int = 0,
        budget: StepBudget | None = None,
    ) -> None:
        self.graph = graph
        self.program = program
        self.variables: Mapping[str, Any] = graph.variables
        self.settings: Mapping[str, Any] = graph.settings
        self.secrets = secrets if secrets is not None else Secrets()
        self.cancel = cancel or threading.Event()
        self.stop = stop
        """The run's stop flag (set by SIGTERM/SIGINT); only the main path has one."""
        self.depth = depth
        """How many fan-outs this walk is nested in (0: the main path)."""
        self.budget = budget if budget is not None else StepBudget(DEFAULT_STEP_BUDGET)
        """The run's step budget, shared with the walks this one starts."""
        self.current_node: str | None = None
        self._lua: LuaRuntime | None = None
        self._executors: dict[str, ParallelExecutor] = {}

    @property
    def workflow_dir(self) -> Path:
        return self.graph.workflow_dir

    def template_context(self, state: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        context = {
            "state": state,
            "variables": self.variables,
            "secrets": self.secrets,
            "env": _ENV,
            "settings": self.settings,
            "data": self.graph.data,
        }
        if extra:
            context.update(extra)
        return context

    def lua(self) -> LuaRuntime:
        if self._lua is None:
            from tea.lua import LuaRuntime, LuaSettings  # lupa loads only for Lua workflows

            self._lua = LuaRuntime(self.graph.lua_settings or LuaSettings.from_mapping(None))
        return self._lua

    def executor(self, strategy: str) -> ParallelExecutor:
        """The walk's executor for ``strategy``, created on first use and reused after."""
        executor = self._executors.get(strategy)
        if executor is None:
            executor = get_executor(strategy)
            self._executors[strategy] = executor
        return executor

    def warm(self, strategies: frozenset[str]) -> None:
        """Start the pools of ``strategies`` in the background (executors that can)."""
        for strategy in sorted(strategies):
            warm = getattr(self.executor(strategy), "warm", None)
            if callable(warm):
                warm()

    def preflight(self, fanouts: Iterable[FanOut]) -> None:
        """Let each strategy check what its fan-outs need before the first node runs
        (executors with a ``preflight(configs)`` method; the remote strategy connects
        its hosts). Raises what the executor raises: the run then runs nothing."""
        by_strategy: dict[str, list[ParallelConfig]] = {}
        for fan in fanouts:
            by_strategy.setdefault(fan.config.strategy, []).append(fan.config)
        for strategy, configs in sorted(by_strategy.items()):
            preflight = getattr(self.executor(strategy), "preflight", None)
            if callable(preflight):
                preflight(configs)

    def close(self) -> None:
        if self._lua is not None:
            self._lua.close()
            self._lua = None
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()
