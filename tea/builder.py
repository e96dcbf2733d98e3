"""``StateGraph``: build a graph in Python instead of YAML.

::

    graph = tea.StateGraph()
    graph.add_node("fetch", fetch)            # fn(state) -> update dict
    graph.add_node("a", a); graph.add_node("b", b)
    graph.add_node("merge", merge)            # fn(state, parallel_results) -> update
    graph.add_parallel_edges("fetch", ["a", "b"], fan_in="merge")
    graph.add_edge("merge", tea.END)
    workflow = graph.compile()
    workflow.invoke({"x": 1})

Nodes are plain functions; ``add_conditional_edges`` routes on a function's
return value, mapped through ``path_map`` when one is given. Graphs built here
run on every strategy except remote, which needs a YAML workflow to ship.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from executors.base import ParallelConfig
from tea.errors import SchemaError
from tea.graph import END, START, Edge, FanOut, Graph, Node, Route
from tea.nodes import CallableBody
from tea.workflow import Workflow

__all__ = ["END", "START", "StateGraph"]


class _FunctionCondition:
    """A routing function as a condition: its value picks the target."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def evaluate(self, state: Mapping[str, Any], scope: Any) -> Any:
        return self.fn(dict(state))


class StateGraph:
    """A mutable graph builder; ``compile()`` returns a runnable ``Workflow``."""

    def __init__(self, *, name: str = "graph", reducers: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}
        self._entry: str | None = None
        self._edges: list[tuple[str, Edge]] = []
        self._fanouts: list[FanOut] = []
        self._reducers = dict(reducers or {})

    def add_node(self, name: str, fn: Callable[..., Any] | None = None) -> StateGraph:
        if name in self._nodes:
            raise SchemaError(f"duplicate node name '{name}'")
        if name in (START, END):
            raise SchemaError(f"'{name}' is reserved")
        self._nodes[name] = Node(name=name, body=CallableBody(fn) if fn else None, kind="python")
        return self

    def set_entry_point(self, name: str) -> StateGraph:
        self._entry = name
        return self

    def add_edge(self, source: str, target: str) -> StateGraph:
        if source == START:
            self._entry = target
        else:
            self._edges.append((source, Edge(target)))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[[dict[str, Any]], Any],
        path_map: Mapping[Any, str] | None = None,
    ) -> StateGraph:
        condition = _FunctionCondition(path)
        if path_map is None:
            self._edges.append((source, Edge("<dynamic>", condition, dynamic=True)))
        else:
            for value, target in path_map.items():
                self._edges.append((source, Edge(target, condition, value, True)))
        return self

    def add_parallel_edges(
        self,
        source: str,
        targets: Sequence[str],
        *,
        fan_in: str,
        config: ParallelConfig | None = None,
    ) -> StateGraph:
        self._fanouts.append(
            FanOut(source=source, fan_in=fan_in, config=config or ParallelConfig(), targets=tuple(targets))
        )
        return self

    def compile(self, *, parallel: ParallelConfig | None = None, recursion_limit: int = 10_000) -> Workflow:
        if not self._nodes:
            raise SchemaError("the graph has no nodes")
        names = list(self._nodes)
        known = set(names) | {END}
        # Fresh copies: a graph compiled earlier keeps its routes when the builder changes.
        nodes = {
            name: replace(node, route=Route(next=names[index + 1] if index + 1 < len(names) else END))
            for index, (name, node) in enumerate(self._nodes.items())
        }
        for source, edge in self._edges:
            if source not in nodes:
                raise SchemaError(f"edge from unknown node '{source}'")
            if not edge.dynamic and edge.target not in known:
                raise SchemaError(f"edge to unknown node '{edge.target}'")
            nodes[source].route.edges.append(edge)
        for fan in self._fanouts:
            for target in (fan.source, *fan.targets, fan.fan_in):
                if target not in known:
                    raise SchemaError(f"parallel edge to unknown node '{target}'")
            route = nodes[fan.source].route
            route.fanouts.append(fan)
            route.default_after_fanout = fan.fan_in
            for target in fan.targets:
                target_route = nodes[target].route
                if not target_route.edges and not target_route.fanouts:
                    target_route.next = fan.fan_in
        entry = self._entry or names[0]
        if entry not in self._nodes:
            raise SchemaError(f"entry point '{entry}' is not a node")
        # Python functions have no source to hash: each compiled graph is its own program.
        key = uuid.uuid4().hex
        graph = Graph(
            name=self.name,
            nodes=nodes,
            entry=entry,
            reducers=self._reducers,
            parallel=parallel or ParallelConfig(),
            recursion_limit=recursion_limit,
            key=key,
            keeps_results=False,
        )
        return Workflow(graph)


