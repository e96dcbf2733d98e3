"""Whole-graph checks once every node and route is read (part of loading).

Every route names a node that exists; a fan-in is not also one of its branches;
a branch target appears once per fan-out; interrupts name nodes, and never a node
a fan-out's branches run (a branch runs apart from the run: it cannot stop it);
and no fan-out can reach its own source from inside its branches (that would nest
fan-outs without bound: each branch would start the same fan-out again).
"""

from __future__ import annotations

from tea.document import Document
from tea.errors import Location, ReferenceError_, SchemaError
from tea.graph import END, START, FanOut, Node, Route, branch_nodes
from tea.keys import suggest
from tea.problems import Problems
from tea.yamlsrc import location_of

__all__ = ["check_graph"]


def check_graph(document: Document, nodes: dict[str, Node], start: Route | None, problems: Problems) -> None:
    """Report every whole-graph problem into ``problems``."""
    _check_references(nodes, start, problems)
    _check_interrupts(document, nodes, start, problems)
    for fan in _static_fanouts(nodes, start):
        _check_fanout(fan, nodes, problems)


def _check_references(nodes: dict[str, Node], start: Route | None, problems: Problems) -> None:
    known = set(nodes) | {END}
    routes = [(n.name, n.route, n.location) for n in nodes.values()]
    if start is not None:
        routes.append((START, start, Location(problems.file)))
    for name, route, where in routes:
        checks = [route.goto] if route.goto else []
        checks += [t for _, t in route.rules or []]
        checks += [e.target for e in route.edges]
        for fan in route.fanouts:
            checks += [*fan.targets, fan.fan_in]
        node = nodes.get(name)
        if node is not None and node.error_policy is not None and node.error_policy.fallback:
            checks.append(node.error_policy.fallback)
        if node is not None and node.fanout is not None:
            checks.append(node.fanout.fan_in)
        for target in checks:
            if target not in known:
                problems.add(ReferenceError_(
                    f"node '{name}' routes to unknown node '{target}'",
                    problems.where(name, target, where),
                    hint=suggest(target, nodes) or f"known nodes: {', '.join(nodes)}",
                ))


def _check_interrupts(
    document: Document, nodes: dict[str, Node], start: Route | None, problems: Problems
) -> None:
    for name in sorted(document.interrupt_before | document.interrupt_after):
        if name not in nodes:
            problems.add(ReferenceError_(f"interrupt names unknown node '{name}'",
                                         location_of(document.config), hint=suggest(name, nodes)))
    in_branches = branch_nodes(nodes, _static_fanouts(nodes, start))
    for name, source in in_branches.items():
        node = nodes[name]
        listed = [f"config.{key}" for key in ("interrupt_before", "interrupt_after")
                  if name in getattr(document, key)]
        if node.interrupt is None and not listed:
            continue
        how = f"interrupt: {node.interrupt}" if node.interrupt is not None else " and ".join(listed)
        problems.add(SchemaError(
            f"node '{name}' runs in a branch of the fan-out from '{source}', so its {how} could not "
            "stop the run: a branch runs apart from the main path",
            node.location if node.interrupt is not None else location_of(document.config),
            hint=f"interrupt before '{source}' or at the fan-out's fan-in instead",
        ))


def _static_fanouts(nodes: dict[str, Node], start: Route | None) -> list[FanOut]:
    routes = ([start] if start is not None else []) + [n.route for n in nodes.values()]
    return [fan for route in routes for fan in route.fanouts]


def _check_fanout(fan: FanOut, nodes: dict[str, Node], problems: Problems) -> None:
    if fan.fan_in in fan.targets:
        problems.add(SchemaError(f"fan-out from '{fan.source}': fan_in '{fan.fan_in}' is also a branch",
                                 fan.location))
        return
    twice = sorted({t for t in fan.targets if fan.targets.count(t) > 1})
    if twice:
        problems.add(SchemaError(
            f"fan-out from '{fan.source}': branch '{twice[0]}' is listed twice", fan.location,
            hint="each branch target appears once; its result is parallel_results[i] in 'to' order",
        ))
        return
    path = _path_back(fan, nodes)
    if path is not None:
        problems.add(SchemaError(
            f"fan-out from '{fan.source}' can reach '{fan.source}' again from inside its branches "
            f"({' -> '.join(path)}), which would start the same fan-out in every branch without end",
            fan.location,
            hint=f"route the branches to the fan-in '{fan.fan_in}'; loop back to '{fan.source}' "
            "from the fan-in or after it",
        ))


def _path_back(fan: FanOut, nodes: dict[str, Node]) -> list[str] | None:
    """A route from one of ``fan``'s branches back to its source, not through its fan-in."""
    came_from: dict[str, str | None] = {t: None for t in fan.targets}
    todo = list(fan.targets)
    while todo:
        name = todo.pop()
        if name == fan.source:
            path = [name]
            step = came_from[name]
            while step is not None:
                path.append(step)
                step = came_from[step]
            return [fan.source, *reversed(path)]
        node = nodes.get(name)
        if node is None or name == fan.fan_in:
            continue
        following = node.route.targets()
        if node.fanout is not None:
            following.append(node.fanout.fan_in)
        for target in following:
            if target not in came_from and target != fan.fan_in:
                came_from[target] = name
                todo.append(target)
    return None
