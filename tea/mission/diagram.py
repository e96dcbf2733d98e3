"""Views of a mission for ``tea inspect``: text, JSON, Mermaid and Graphviz DOT.

Arrows go from a step to the steps that depend on it (the order they run in);
steps without dependencies hang off ``__start__``, as a workflow's entry does.
"""

from __future__ import annotations

import json
from typing import Any

from tea.mission.model import Mission

__all__ = ["FORMATS", "describe", "mission_diagram", "plan"]

FORMATS = ("text", "json", "mermaid", "dot")
_START = "__start__"


def plan(mission: Mission) -> dict[str, Any]:
    """The ``--dry-run`` view: what would run, in which order, with what parallelism."""
    return {
        "name": mission.name,
        "steps": len(mission.steps),
        "strategy": mission.strategy,
        "max_concurrent_steps": mission.max_concurrent,
        **mission.plan.to_dict(),
    }


def describe(mission: Mission) -> dict[str, Any]:
    """The mission as plain data: its steps (with line and level) and dependency edges."""
    depth = mission.plan.depth
    return {
        "name": mission.name,
        "strategy": mission.strategy,
        "steps": [
            {"id": s.id, "name": s.name, "step_type": s.step_type, "depends_on": list(s.depends_on),
             "line": s.location.line, "level": depth[s.id], "continue_on_error": s.continue_on_error}
            for s in mission.steps
        ],
        "edges": [{"from": source, "to": target} for source, target in _edges(mission)],
        "critical_path": list(mission.plan.critical_path),
    }


def _edges(mission: Mission) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for step in mission.steps:
        if not step.depends_on:
            out.append((_START, step.id))
        out.extend((dep, step.id) for dep in step.depends_on)
    return out


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")


def _mermaid(mission: Mission) -> str:
    ids = {_START: "n0"}
    lines = ["flowchart TD", f'    n0(["{_START}"])']
    for n, step in enumerate(mission.steps, start=1):
        ids[step.id] = f"n{n}"
        lines.append(f'    n{n}["{_mermaid_text(step.id)}<br/>{_mermaid_text(step.step_type)}"]')
    lines.extend(f"    {ids[s]} --> {ids[t]}" for s, t in _edges(mission))
    return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot(mission: Mission) -> str:
    lines = [f'digraph "{_dot_text(mission.name)}" {{', "  rankdir=TB;", f'  "{_START}" [shape=oval];']
    for step in mission.steps:
        lines.append(f'  "{_dot_text(step.id)}" [shape=box, label="{_dot_text(step.id)}\\n{step.step_type}"];')
    lines.extend(f'  "{_dot_text(s)}" -> "{_dot_text(t)}";' for s, t in _edges(mission))
    lines.append("}")
    return "\n".join(lines)


def _text(mission: Mission) -> str:
    info = describe(mission)
    lines = [f"mission {mission.name} ({len(mission.steps)} steps, strategy {mission.strategy}, "
             f"at most {mission.max_concurrent} at once)", "steps:"]
    for step in info["steps"]:
        after = f"  after {', '.join(step['depends_on'])}" if step["depends_on"] else ""
        lines.append(f"  {step['id']:<24} {step['step_type']:<16} line {step['line']}  level {step['level']}{after}")
    lines.append("critical path: " + " -> ".join(mission.plan.critical_path))
    return "\n".join(lines)


def mission_diagram(mission: Mission, fmt: str = "text") -> str:
    """``mission`` drawn as ``fmt`` (one of ``FORMATS``); ``ValueError`` for another format."""
    if fmt == "json":
        return json.dumps(describe(mission), indent=2)
    if fmt == "mermaid":
        return _mermaid(mission)
    if fmt == "dot":
        return _dot(mission)
    if fmt == "text":
        return _text(mission)
    raise ValueError(f"unknown diagram format '{fmt}'; known: {', '.join(FORMATS)}")
