"""The compiled graph: nodes, their routes and fan-outs. Immutable once built.

A ``Graph`` is also the ``BranchProgram`` every executor runs: it pickles with
cloudpickle (compiled code is rebuilt from source on the other side), and
``run_branch`` walks one branch of a fan-out wherever it lands.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.errors import Location, RunError

if TYPE_CHECKING:
    from executors.base import BranchTask, ParallelConfig
    from tea.conditions import Condition
    from tea.lua import LuaSettings
    from tea.nodes import Body
    from tea.scope import Scope
    from tea.state import Reducer

__all__ = ["END", "START", "Edge", "FanOut", "Graph", "Node", "Route"]

START = "__start__"
END = "__end__"


@dataclass(frozen=True, slots=True)
class FanOut:
    """Branches ``targets`` run in parallel from ``source``; they meet at ``fan_in``."""

    source: str
    targets: tuple[str, ...]
    fan_in: str
    config: ParallelConfig
    location: Location = field(default_factory=Location)


@dataclass(frozen=True, slots=True)
class Edge:
    """A legacy edge; ``when`` set means ``condition`` must evaluate equal to it."""

    target: str
    condition: Condition | None = None
    match: Any = None
    has_match: bool = False

    def pick(self, state: Mapping[str, Any], scope: Scope) -> str | None:
        """The target when the edge holds for ``state``, else ``None``."""
        if self.condition is None:
            return self.target
        if self.has_match:
            value = self.condition.evaluate(state, scope)
            holds = value == self.match or str(value).lower() == str(self.match).lower()
        else:
            holds = self.condition.test(state, scope)
        return self.target if holds else None


@dataclass(slots=True)
class Route:
    """Where to go after a node: goto, then legacy edges, then the next node in the list."""

    goto: str | None = None
    rules: list[tuple[Condition | None, str]] | None = None
    edges: list[Edge] = field(default_factory=list)
    fanouts: list[FanOut] = field(default_factory=list)
    next: str = END
    default_after_fanout: str | None = None

    def targets(self) -> list[str]:
        """Every node this route can lead to (for validation and drawing)."""
        out: list[str] = []
        if self.goto:
            out.append(self.goto)
        out.extend(t for _, t in self.rules or [])
        out.extend(e.target for e in self.edges)
        for fan in self.fanouts:
            out.extend(fan.targets)
            out.append(fan.fan_in)
        if not (self.goto or self.rules or self.edges):
            out.append(self.default_after_fanout or self.next)
        return out

    def resolve(self, state: Mapping[str, Any], scope: Scope) -> str:
        if self.goto is not None:
            return self.goto
        if self.rules is not None:
            for condition, target in self.rules:
                if condition is None or condition.test(state, scope):
                    return target
            return END
        if self.edges:
            for edge in self.edges:
                picked = edge.pick(state, scope)
                if picked is not None:
                    return picked
            return END
        if self.default_after_fanout is not None:
            return self.default_after_fanout
        return self.next


@dataclass(slots=True)
class Node:
    name: str
    body: Body | None
    location: Location = field(default_factory=Location)
    route: Route = field(default_factory=Route)
    fan_in: bool = False
    interrupt: str | None = None
    error_policy: Any = None
    kind: str = "python"


class Graph:
    """An immutable, runnable workflow graph. Safe to run from many threads at once."""

    def __init__(
        self,
        *,
        name: str,
        nodes: dict[str, Node],
        entry: str,
        start_route: Route | None = None,
        variables: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        reducers: Mapping[str, Reducer] | None = None,
        parallel: ParallelConfig,
        lua_settings: LuaSettings | None = None,
        recursion_limit: int = 10_000,
        interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(),
        initial_state: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        source_text: str = "",
        path: Path | None = None,
        key: str = "",
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.nodes = nodes
        self.entry = entry
        self.start_route = start_route
        self.variables = dict(variables or {})
        self.settings = dict(settings or {})
        self.data = dict(data or {})
        self.reducers = dict(reducers or {})
        self.parallel = parallel
        self._lua_settings = lua_settings
        self.recursion_limit = recursion_limit
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.initial_state = dict(initial_state or {})
        self.source = source or {}
        self.source_text = source_text
        self.path = path
        self.key = key
        self.config = dict(config or {})
        self.secrets: Mapping[str, Any] = {}
        """Bound by ``with_secrets`` (a ``tea.secrets.Secrets``) for the branches of one run."""

    @property
    def workflow_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def lua_settings(self) -> LuaSettings:
        if self._lua_settings is None:
            from tea.lua import LuaSettings

            self._lua_settings = LuaSettings.from_mapping(self.settings.get("lua"))
        return self._lua_settings

    @functools.cached_property
    def strategies(self) -> frozenset[str]:
        """Every parallel strategy some fan-out of this graph can use."""
        found = {fan.config.strategy for node in self.nodes.values() for fan in node.route.fanouts}
        if self.start_route is not None:
            found |= {fan.config.strategy for fan in self.start_route.fanouts}
        for node in self.nodes.values():
            config = getattr(node.body, "config", None)
            if config is not None and hasattr(config, "strategy"):
                found.add(config.strategy)
        return frozenset(found)

    def with_secrets(self, secrets: Mapping[str, Any]) -> Graph:
        """A copy that carries ``secrets`` to wherever its branches run."""
        if not secrets and not self.secrets:
            return self
        bound = copy.copy(self)
        bound.secrets = secrets
        return bound

    def route_of(self, name: str) -> Route:
        if name == START:
            assert self.start_route is not None
            return self.start_route
        return self.nodes[name].route

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Run one branch (``BranchProgram`` protocol) and return its final state."""
        from tea.runner import walk_branch

        if task.scope is not None:
            from tea.fanout import DynamicParallelBody

            node = self.nodes.get(task.scope)
            if node is None or not isinstance(node.body, DynamicParallelBody):
                raise RunError(f"no dynamic_parallel node '{task.scope}' in this workflow")
            from tea.scope import Scope

            scope = Scope(self, secrets=self.secrets, cancel=cancel)
            try:
                return node.body.run_item(dict(task.state), scope, task.scope)
            finally:
                scope.close()
        return walk_branch(self, task, cancel)
