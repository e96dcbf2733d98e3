"""Views of a graph for ``tea inspect``: text, JSON, Mermaid and Graphviz DOT."""

from __future__ import annotations

import json
from typing import Any

from tea.graph import START, Graph, Route

__all__ = ["describe", "render"]


def _edges(graph: Graph) -> list[tuple[str, str, str]]:
    """(source, target, label) for every route, fan-out and fan-in of ``graph``."""
    out: list[tuple[str, str, str]] = []
    routes: list[tuple[str, Route]] = [(n, graph.nodes[n].route) for n in graph.nodes]
    if graph.start_route is not None:
        routes.insert(0, (START, graph.start_route))
    else:
        out.append((START, graph.entry, ""))
    for name, route in routes:
        if route.goto:
            out.append((name, route.goto, "goto"))
        for condition, target in route.rules or []:
            out.append((name, target, condition.describe() if condition else "else"))
        for edge in route.edges:
            condition = getattr(edge, "condition", None)
            label = condition.describe() if condition is not None and hasattr(condition, "describe") else ""
            out.append((name, edge.target, label))
        for fan in route.fanouts:
            for target in fan.targets:
                out.append((name, target, f"parallel ({fan.config.strategy})"))
            out.append((name, fan.fan_in, "fan-in"))
        dynamic = graph.nodes[name].fanout if name in graph.nodes else None
        fan_in = dynamic.fan_in if dynamic is not None else None
        after = route.default_after_fanout or route.next
        if not (route.goto or route.rules or route.edges or route.fanouts) and after != fan_in:
            out.append((name, after, ""))
        if isinstance(fan_in, str):
            out.append((name, fan_in, "fan-in"))
    return out


def describe(graph: Graph) -> dict[str, Any]:
    return {
        "name": graph.name,
        "entry": graph.entry,
        "nodes": [
            {"name": n.name, "kind": n.kind, "line": n.location.line, "fan_in": n.fan_in,
             "interrupt": n.interrupt}
            for n in graph.nodes.values()
        ],
        "edges": [{"from": s, "to": t, "label": label} for s, t, label in _edges(graph)],
    }


def _mermaid_id(name: str, ids: dict[str, str]) -> str:
    """A safe Mermaid id per node (names may hold spaces, accents, punctuation)."""
    if name not in ids:
        ids[name] = f"n{len(ids)}"
    return ids[name]


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")


def _mermaid(edges: list[tuple[str, str, str]]) -> str:
    ids: dict[str, str] = {}
    lines = ["flowchart TD"]
    for s, t, label in edges:
        for name in (s, t):
            if name not in ids:
                lines.append(f'    {_mermaid_id(name, ids)}["{_mermaid_text(name)}"]')
        arrow = f' -->|"{_mermaid_text(label)}"| ' if label else " --> "
        lines.append(f"    {ids[s]}{arrow}{ids[t]}")
    return "\n".join(lines)


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(graph: Graph, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(describe(graph), indent=2)
    edges = _edges(graph)
    if fmt == "mermaid":
        return _mermaid(edges)
    if fmt == "dot":
        lines = [f'digraph "{_dot(graph.name)}" {{']
        for s, t, label in edges:
            attr = f' [label="{_dot(label)}"]' if label else ""
            lines.append(f'  "{_dot(s)}" -> "{_dot(t)}"{attr};')
        lines.append("}")
        return "\n".join(lines)
    info = describe(graph)
    lines = [f"workflow {info['name']} (entry: {info['entry']})", "nodes:"]
    for node in info["nodes"]:
        extra = " [fan-in]" if node["fan_in"] else ""
        extra += f" [interrupt {node['interrupt']}]" if node["interrupt"] else ""
        lines.append(f"  {node['name']:<24} {node['kind']:<16} line {node['line']}{extra}")
    lines.append("routes:")
    for s, t, label in edges:
        lines.append(f"  {s} -> {t}" + (f"  ({label})" if label else ""))
    return "\n".join(lines)
