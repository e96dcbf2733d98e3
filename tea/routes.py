"""Routing of the YAML document → each node's ``Route`` (part of loading).

``goto`` (a name, or ``[{if, to}]`` rules), legacy ``edges`` (normal and
conditional), static fan-outs (``type: parallel`` edges and ``to: [...]`` with
``parallel: true``, grouped by source and fan-in), and the implicit chaining of
the node list (a node without a route goes to the next one; after a fan-out, to
its fan-in; a branch's last node never falls into a sibling branch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from executors.base import ParallelConfig
from tea.conditions import compile_condition
from tea.dialect import IGNORED_EDGE_KEYS, without_ignored
from tea.document import Document
from tea.errors import LoadError, ReferenceError_, SchemaError
from tea.graph import END, START, Edge, FanOut, Node, Route
from tea.keys import check_keys, suggest
from tea.problems import Problems
from tea.yamlsrc import located, location_of

__all__ = ["EDGE_KEYS", "chain", "read_edges", "read_goto"]

_EDGE_PARALLEL_KEYS = ("max_workers", "timeout_seconds", "fail_fast", "retry",
                       "circuit_breaker", "on_branch_failure", "remote")
EDGE_KEYS = frozenset({"from", "to", "when", "condition", "type", "fan_in", "parallel",
                       "parallel_strategy", "description", *_EDGE_PARALLEL_KEYS})


def read_goto(raw: Mapping[str, Any], name: str, problems: Problems) -> Route:
    """The route a node's own ``goto`` gives it (an empty route when it has none)."""
    route = Route()
    goto = raw.get("goto")
    if goto is None:
        return route
    where = location_of(raw, "goto")
    if isinstance(goto, str):
        route.goto = goto
        problems.note(name, goto, where)
        return route
    if not isinstance(goto, list):
        problems.add(SchemaError(f"node '{name}': goto must be a node name or a list of rules", where))
        return route
    rules = []
    for index, rule in enumerate(goto):
        if not isinstance(rule, Mapping) or "to" not in rule:
            problems.add(SchemaError(f"node '{name}': each goto rule needs 'to'", location_of(goto, index),
                                     hint="write {if: <condition>, to: <node>} or {to: <node>}"))
            continue
        try:
            check_keys(rule, frozenset({"if", "to"}), f"goto rule of node '{name}'")
            condition = compile_condition(rule["if"], location_of(rule, "if")) if "if" in rule else None
            rules.append((condition, str(rule["to"])))
            problems.note(name, str(rule["to"]), location_of(rule, "to"))
        except LoadError as exc:
            problems.add(exc)
    route.rules = rules
    return route


def read_edges(document: Document, nodes: dict[str, Node], problems: Problems) -> Route | None:
    """Add the ``edges`` list to the nodes' routes; returns the route out of ``__start__``."""
    edges_raw = document.raw.get("edges")
    if edges_raw is None:
        return None
    if not isinstance(edges_raw, list):
        problems.add(SchemaError("edges must be a list", location_of(document.raw, "edges")))
        return None
    start: list[Route] = []
    groups: dict[tuple[str, str], FanOut] = {}
    for index, edge in enumerate(edges_raw):
        if not isinstance(edge, Mapping):
            problems.add(SchemaError("each edge must be a mapping with 'from' and 'to'",
                                     location_of(edges_raw, index)))
            continue
        edge = edges_raw[index] = without_ignored(edge, IGNORED_EDGE_KEYS, "edge", problems)
        try:
            _read_edge(edge, location_of(edges_raw, index), document, nodes, start, groups, problems)
        except LoadError as exc:
            problems.add(exc)
    return start[0] if start else None


def _read_edge(edge: Mapping[str, Any], where: Any, document: Document, nodes: dict[str, Node],
               start: list[Route], groups: dict[tuple[str, str], FanOut], problems: Problems) -> None:
    check_keys(edge, EDGE_KEYS, "edge")
    for key in ("from", "to"):
        if key not in edge:
            raise SchemaError(f"edge without '{key}'", where)
    source = str(edge["from"])
    if source != START and source not in nodes:
        raise ReferenceError_(f"edge from unknown node '{source}'", location_of(edge, "from"),
                              hint=suggest(source, nodes))
    if source == START and not start:
        start.append(Route())
    route = start[0] if source == START else nodes[source].route
    targets = edge["to"]
    for target in targets if isinstance(targets, list) else [targets]:
        problems.note(source, str(target), location_of(edge, "to"))
    if isinstance(edge.get("fan_in"), str):
        problems.note(source, edge["fan_in"], location_of(edge, "fan_in"))
    if edge.get("type") == "parallel" or edge.get("parallel") is True or isinstance(targets, list):
        fan = _fanout(edge, source, document)
        merged = groups.get((source, fan.fan_in))
        if merged is not None:
            _check_same_settings(merged, fan)
            route.fanouts.remove(merged)
            fan = replace(merged, targets=merged.targets + fan.targets,
                          conditions=merged.conditions + fan.conditions)
        groups[(source, fan.fan_in)] = fan
        route.fanouts.append(fan)
        return
    if edge.get("type") not in (None, "normal"):
        raise SchemaError(f"unknown edge type '{edge.get('type')}'", location_of(edge, "type"),
                          hint="use type: parallel (with fan_in) or leave it out")
    route.edges.append(_edge(edge, str(targets)))


def _edge(edge: Mapping[str, Any], target: str) -> Edge:
    if "condition" in edge:
        cond_raw = edge["condition"]
        if isinstance(cond_raw, Mapping) and cond_raw.get("type") == "expression":
            cond_raw = cond_raw.get("value")
        condition = compile_condition(cond_raw, location_of(edge, "condition"))
        if "when" in edge:
            return Edge(target, condition, edge["when"], True)
        return Edge(target, condition)
    if "when" in edge:
        return Edge(target, compile_condition(edge["when"], location_of(edge, "when")))
    return Edge(target)


def _fanout(edge: Mapping[str, Any], source: str, document: Document) -> FanOut:
    where = location_of(edge)
    fan_in = edge.get("fan_in")
    if not isinstance(fan_in, str):
        raise SchemaError(f"parallel edge from '{source}' has no fan_in", where,
                          hint="add fan_in: <node where the branches meet>")
    targets = edge["to"]
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise SchemaError("'to' of a parallel edge must be a node name or a list of names",
                          location_of(edge, "to"))
    overrides = {k: edge[k] for k in _EDGE_PARALLEL_KEYS if k in edge}
    if "parallel_strategy" in edge:
        overrides["strategy"] = edge["parallel_strategy"]
    config = document.parallel
    if overrides:
        settings_at = located(overrides, edge, {"strategy": "parallel_strategy"})
        config = document.parse_parallel(settings_at, config, f"parallel edge from '{source}'")
    condition = _edge(edge, "") if "when" in edge or "condition" in edge else None
    return FanOut(source=source, fan_in=fan_in, config=config, targets=tuple(targets), location=where,
                  conditions=(condition,) * len(targets))


def _check_same_settings(first: FanOut, other: FanOut) -> None:
    """Edges of one fan-out (same source and fan-in) run as one fan-out: one set of settings."""
    if first.config == other.config:
        return
    differ = [f.name for f in fields(ParallelConfig) if getattr(first.config, f.name) != getattr(other.config, f.name)]
    raise SchemaError(
        f"the parallel edges from '{first.source}' to fan-in '{first.fan_in}' run as one fan-out but "
        f"disagree on {', '.join(differ)}: the edge at line {first.location.line} and the edge at "
        f"line {other.location.line}",
        other.location,
        hint="write the same settings on every edge of the fan-out, or write one edge with to: [a, b, ...]",
    )


def chain(nodes: dict[str, Node], start: Route | None) -> None:
    """Fill in where each node goes when its own route does not say (the node list's order)."""
    names = list(nodes)
    sibling_entries: dict[str, str] = {}
    routes = [node.route for node in nodes.values()] + ([start] if start is not None else [])
    for route in routes:
        for fan in route.fanouts:
            for target in fan.targets:
                sibling_entries[target] = fan.fan_in
    if start is not None and start.fanouts:
        start.default_after_fanout = start.fanouts[0].fan_in
    for index, name in enumerate(names):
        route = nodes[name].route
        route.next = names[index + 1] if index + 1 < len(names) else END
        if route.fanouts:
            route.default_after_fanout = route.fanouts[0].fan_in
        dynamic = nodes[name].fanout
        if dynamic is not None:
            route.default_after_fanout = dynamic.fan_in
        # A branch's last node never falls through into a sibling branch's entry.
        nxt = route.next
        in_branch = name in sibling_entries or any(
            name in nodes[e].route.targets() for e in sibling_entries if e in nodes
        )
        if nxt in sibling_entries and name not in sibling_entries.values() and in_branch:
            route.next = sibling_entries[nxt]
