"""Choosing the next node: goto, then legacy edges, then the next node in the list.

The rules, in order (the dialect's, see docs/YAML_REFERENCE.md "Routing"):
  1. ``goto: <node>`` always wins;
  2. ``goto: [{if, to}, ...]``: the first rule whose condition holds (none: ``__end__``);
  3. legacy edges: the first whose condition holds, or whose ``when`` equals the
     condition's value (none: the fan-in of the node's fan-out, if it has one, else an
     error naming the node, as the reference reports it);
  4. after a fan-out with no route of its own: its fan-in;
  5. otherwise the next node in the list (the last one ends the run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tea.errors import NodeError, RunError
from tea.graph import END, START, Edge, Graph, Route
from tea.templates import TemplateError

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["edge_holds", "next_node"]


def next_node(graph: Graph, name: str, state: Mapping[str, Any], scope: Scope) -> str:
    """The node after ``name``; a failing condition is a ``NodeError`` at ``name``'s line."""
    where = graph.nodes[name].location if name != START else None
    try:
        return _resolve(graph.route_of(name), state, scope)
    except TemplateError as exc:
        raise NodeError(f"routing condition failed: {exc}", node=name, location=where) from exc
    except NodeError as exc:  # a Lua condition that failed or ran out of time
        if exc.location is None:
            exc.location = where
        raise


def _resolve(route: Route, state: Mapping[str, Any], scope: Scope) -> str:
    if route.goto is not None:
        return route.goto
    if route.rules is not None:
        for condition, target in route.rules:
            if condition is None or condition.test(state, scope):
                return target
        return END
    if route.edges:
        for edge in route.edges:
            if edge.dynamic:
                return _chosen(edge, state, scope)
            if edge_holds(edge, state, scope):
                return edge.target
        if route.default_after_fanout is not None:
            return route.default_after_fanout
        raise RunError(
            "no edge out of this node holds: none of its conditions matched the state",
            node=scope.current_node,
            hint="add an edge without a condition (or with when: true) as the fallback",
        )
    if route.default_after_fanout is not None:
        return route.default_after_fanout
    return route.next


def _chosen(edge: Edge, state: Mapping[str, Any], scope: Scope) -> str:
    target = str(edge.condition.evaluate(state, scope))
    nodes = scope.graph.nodes
    if target != END and target not in nodes:
        raise RunError(
            f"the routing function returned '{target}', which is not a node",
            node=scope.current_node,
            hint=f"known nodes: {', '.join(nodes)}, {END}",
        )
    return target


def edge_holds(edge: Edge, state: Mapping[str, Any], scope: Scope) -> bool:
    """Whether ``edge``'s condition holds (or its value equals its ``when``)."""
    if edge.condition is None:
        return True
    if edge.has_match:
        value = edge.condition.evaluate(state, scope)
        return bool(value == edge.match or str(value).lower() == str(edge.match).lower())
    return bool(edge.condition.test(state, scope))
