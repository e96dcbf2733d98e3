"""What a host needs to run a fan-out's branches: the workflow's YAML subset.

``branch_subset(source, entries, exit)`` keeps the nodes reachable from the
branch entries up to the fan-in (exclusive; the walk stops there), in their
original list order so implicit chaining is unchanged, plus a placeholder for
every node they name but do not include (the fan-in first), so references
validate. It keeps ``variables``, ``data``, ``state_schema``, ``settings`` (with
the parallel strategy forced to ``thread``: the remote side never fans out
remotely again) and the ``imports`` those nodes may use, whose files are shipped
alongside. For a ``dynamic_parallel`` scope the subset is that node (and its
``subgraph`` file). Interrupts, ``initial_state`` and the I/O schemas stay home.

``program_payload`` turns a program into the worker's ``load`` message: the subset
when the program is a YAML-loaded graph, otherwise the program cloudpickled (a
graph built in Python has no YAML to cut).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from executors.base import BranchProgram, BranchTask

__all__ = ["SubsetError", "branch_subset", "program_payload", "subset_files"]

_KEPT_KEYS = ("name", "description", "variables", "data", "state_schema", "settings", "imports")
_END = "__end__"
_START = "__start__"


class SubsetError(ValueError):
    """The source does not contain what the branch needs (an unknown entry node)."""


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the located YAML types do not dump)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _targets(value: Any) -> list[str]:
    """Node names in a ``goto``/``to`` value: a name, a list of names, or ``{if, to}`` rules."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out += _targets(item.get("to") if isinstance(item, Mapping) else item)
        return out
    return []


def _successors(index: int, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> list[str]:
    node = nodes[index]
    name = node.get("name")
    names: list[str] = []
    if "goto" in node:
        names += _targets(node["goto"])
    own = [e for e in edges if e.get("from") == name]
    for edge in own:
        names += _targets(edge.get("to"))
        if isinstance(edge.get("fan_in"), str):
            names.append(edge["fan_in"])
    if isinstance(node.get("fan_in"), str):
        names.append(node["fan_in"])
    if "goto" not in node and not [e for e in own if not e.get("parallel")] and index + 1 < len(nodes):
        names.append(str(nodes[index + 1].get("name")))
    return [n for n in names if n not in (_END, _START)]


def _referenced(node: Mapping[str, Any], edges: Iterable[Mapping[str, Any]]) -> set[str]:
    names = set(_targets(node.get("goto")))
    if isinstance(node.get("fan_in"), str):
        names.add(node["fan_in"])
    for edge in edges:
        if edge.get("from") == node.get("name"):
            names.update(_targets(edge.get("to")))
            if isinstance(edge.get("fan_in"), str):
                names.add(edge["fan_in"])
    return names - {_END, _START}


def _force_thread(settings: Any) -> dict[str, Any]:
    settings = dict(settings or {})
    parallel = dict(settings.get("parallel") or {})
    parallel.pop("remote", None)
    parallel["strategy"] = "thread"
    settings["parallel"] = parallel
    return settings


def _fall_through(node: Any) -> str | None:
    """Where a compiled node goes when nothing in its own YAML says so, else ``None``."""
    route = getattr(node, "route", None)
    if route is None or route.goto or route.rules or route.edges or route.fanouts:
        return None
    if isinstance(getattr(node.body, "fan_in", None), str):
        return None
    return str(route.default_after_fanout or route.next)


def branch_subset(
    source: Mapping[str, Any],
    entries: Sequence[str],
    exit: str | None,
    scope: str | None = None,
    compiled: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The standalone workflow document for branches starting at ``entries``.

    ``compiled`` (the graph's nodes by name) makes the walk follow the engine's own
    routes, and pins each fall-through node with an explicit ``goto``: in the full
    workflow a branch's last node never falls into a sibling branch, a rule the
    subset (which has no siblings) could not re-derive.
    """
    doc = _plain(source)
    nodes: list[dict[str, Any]] = [n for n in doc.get("nodes") or [] if isinstance(n, dict)]
    edges: list[dict[str, Any]] = [e for e in doc.get("edges") or [] if isinstance(e, dict)]
    position = {str(n.get("name")): i for i, n in enumerate(nodes)}
    starts = [scope] if scope else list(entries)
    missing = [s for s in starts if s not in position]
    if missing:
        raise SubsetError(f"no node named {missing[0]!r} in the workflow source")
    keep: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name in keep or name == exit or name not in position:
            continue
        keep.add(name)
        if scope is None and compiled is not None and name in compiled:
            todo += [t for t in compiled[name].route.targets() if t not in (_END, _START)]
        elif scope is None:
            todo += _successors(position[name], nodes, edges)
    kept = [copy.deepcopy(n) for n in nodes if n.get("name") in keep]
    wanted: set[str] = set()
    for node in kept:
        name = str(node.get("name"))
        target = _fall_through(compiled.get(name)) if compiled and not scope else None
        if target is not None:
            node["goto"] = target
        wanted |= _referenced(node, edges)
        if node.get("parallel_strategy"):
            node["parallel_strategy"] = "thread"
    if exit:
        wanted.add(exit)
    placeholders = {n for n in wanted if n not in keep}
    subset_nodes = []
    for node in nodes:
        name = str(node.get("name"))
        if name in keep:
            subset_nodes.append(next(k for k in kept if k.get("name") == name))
        elif name in placeholders:
            subset_nodes.append({"name": name, "run": "return {}"})
    for name in sorted(placeholders - set(position)):
        subset_nodes.append({"name": name, "run": "return {}"})
    out = {k: doc[k] for k in _KEPT_KEYS if k in doc}
    out["settings"] = _force_thread(doc.get("settings"))
    out["nodes"] = subset_nodes
    kept_edges = []
    for edge in edges:
        if edge.get("from") in keep:
            edge = dict(edge)
            if edge.get("parallel_strategy"):
                edge["parallel_strategy"] = "thread"
            kept_edges.append(edge)
    if kept_edges:
        out["edges"] = kept_edges
    return out


def subset_files(doc: dict[str, Any], base: Path | None) -> dict[str, str]:
    """The files to ship: ``workflow.yaml`` plus imported and subgraph files, paths rewritten
    to stay inside the program directory."""
    files: dict[str, str] = {}
    base = base or Path.cwd()

    def ship(path_text: str) -> str:
        local = (base / path_text).resolve()
        if not local.is_file():
            return path_text  # the loader on the host reports it, with its location
        name = f"files/{len(files)}_{local.name}"
        files[name] = local.read_text(encoding="utf-8")
        return name

    for entry in doc.get("imports") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entry["path"] = ship(entry["path"])
    for node in doc.get("nodes") or []:
        if isinstance(node.get("subgraph"), str):
            node["subgraph"] = ship(node["subgraph"])
    files["workflow.yaml"] = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=4096)
    return files


def program_payload(
    program: BranchProgram, tasks: Sequence[BranchTask]
) -> tuple[str, dict[str, Any]]:
    """``(key, load message)`` for ``program``: its YAML subset, else its cloudpickle."""
    secrets = dict(getattr(program, "secrets", None) or {})
    source = getattr(program, "source", None)
    message: dict[str, Any] | None = None
    if isinstance(source, Mapping) and source.get("nodes") and tasks:
        scopes = {t.scope for t in tasks}
        exits = {t.exit for t in tasks}
        if len(scopes) == 1 and len(exits) == 1:
            try:
                entries = sorted({t.entry for t in tasks})
                compiled = getattr(program, "nodes", None)
                doc = branch_subset(source, entries, exits.pop(), scopes.pop(), compiled)
            except SubsetError:
                doc = None
            if doc is not None:
                path = getattr(program, "path", None)
                base = Path(path).parent if path else None
                message = {"kind": "yaml", "entry": "workflow.yaml", "files": subset_files(doc, base)}
    if message is None:
        import cloudpickle

        data = base64.b64encode(cloudpickle.dumps(program)).decode("ascii")
        message = {"kind": "pickle", "data": data}
    digest = hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()[:16]
    if secrets:
        message["secrets"] = secrets
    return digest, message
