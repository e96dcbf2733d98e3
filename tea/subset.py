"""A fan-out's branches as a standalone workflow: what a host that runs tea needs.

``workflow_files(graph, entries, exit, fanout)`` returns the files of that
workflow, ``{"workflow.yaml": text, "files/...": text}``, or ``None`` for a graph
with no YAML source (built in Python). It reads only the graph's data (``source``,
``path``, ``nodes`` and their routes); the pure halves are:

- ``branch_subset(source, entries, exit, fanout, nodes)``: the document. It keeps
  the nodes reachable from the branch entries up to the fan-in (exclusive; the walk
  stops there), in their original list order so implicit chaining is unchanged, plus
  a placeholder for every node they name but do not include (the fan-in first), so
  references validate. It keeps ``variables``, ``data``, ``state_schema``,
  ``settings`` (the parallel strategy forced to ``thread``: a branch never fans out
  remotely again) and ``imports``. For the item body of a ``dynamic_parallel`` node
  (``fanout``) the subset is that node. Interrupts, ``initial_state`` and the I/O
  schemas stay home.
- ``subset_files(doc, base)``: the document's text plus every file it references
  (``imports:`` paths, ``subgraph:`` files, and in turn the files those subgraphs
  reference), renamed under ``files/`` so nothing points outside the program
  directory.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tea.graph import END, START, Graph, Node

__all__ = ["SubsetError", "branch_subset", "subset_files", "workflow_files"]

_KEPT_KEYS = ("name", "description", "variables", "data", "state_schema", "settings", "imports")
_PLACEHOLDER_BODY = "return {}"


class SubsetError(ValueError):
    """The source does not contain what the branch needs (an unknown entry node)."""


def workflow_files(
    graph: Graph, entries: Sequence[str], exit: str | None, fanout: str | None
) -> dict[str, str] | None:
    """The files of the standalone workflow for these branches; ``None`` when the graph
    has no YAML source to cut them from (built in Python, or nodes it does not hold)."""
    if not graph.source or not graph.source.get("nodes"):
        return None
    try:
        doc = branch_subset(graph.source, entries, exit, fanout, graph.nodes)
    except SubsetError:
        return None
    return subset_files(doc, graph.path.parent if graph.path is not None else None)


def branch_subset(
    source: Mapping[str, Any],
    entries: Sequence[str],
    exit: str | None,
    fanout: str | None = None,
    compiled: Mapping[str, Node] | None = None,
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
    starts = [fanout] if fanout else list(entries)
    missing = [s for s in starts if s not in position]
    if missing:
        raise SubsetError(f"no node named {missing[0]!r} in the workflow source")
    routes = compiled if fanout is None else None
    keep = _reachable(starts, exit, position, nodes, edges, routes, walk=fanout is None)
    kept: dict[str, dict[str, Any]] = {}
    wanted: set[str] = {exit} if exit else set()
    for node in nodes:
        name = str(node.get("name"))
        if name not in keep:
            continue
        node = kept[name] = copy.deepcopy(node)
        target = _fall_through(routes.get(name)) if routes is not None else None
        if target is not None:
            node["goto"] = target
        wanted |= _referenced(node, edges)
        if node.get("parallel_strategy"):
            node["parallel_strategy"] = "thread"
    placeholders = wanted - keep
    subset_nodes = [
        kept.get(name) or {"name": name, "run": _PLACEHOLDER_BODY}
        for name in position
        if name in keep or name in placeholders
    ]
    subset_nodes += [{"name": n, "run": _PLACEHOLDER_BODY} for n in sorted(placeholders - set(position))]
    out = {k: doc[k] for k in _KEPT_KEYS if k in doc}
    out["settings"] = _force_thread(doc.get("settings"))
    out["nodes"] = subset_nodes
    kept_edges = [_thread_edge(e) for e in edges if e.get("from") in keep]
    if kept_edges:
        out["edges"] = kept_edges
    return out


def subset_files(doc: dict[str, Any], base: Path | None) -> dict[str, str]:
    """The files to ship: ``workflow.yaml`` (``doc``, changed in place) plus the files it
    references, found relative to ``base`` (default: the current directory)."""
    files: dict[str, str] = {}
    _ship_references(doc, base or Path.cwd(), files, {}, prefix="files/")
    files["workflow.yaml"] = _dump(doc)
    return files


def _ship_references(
    doc: Mapping[str, Any], base: Path, files: dict[str, str], shipped: dict[Path, str], prefix: str
) -> None:
    """Ship the files ``doc`` references and point it at them; ``prefix`` is how ``files/``
    is reached from the document (a subgraph already sits in it)."""

    def ship(path_text: str, *, subgraph: bool) -> str:
        local = (base / path_text).expanduser().resolve()
        if not local.is_file():
            return path_text  # the loader on the host reports it, with its location
        if local not in shipped:
            name = shipped[local] = f"{len(shipped)}_{local.name}"
            text = local.read_text(encoding="utf-8")
            if subgraph:
                sub = yaml.safe_load(text)
                if isinstance(sub, dict):
                    _ship_references(sub, local.parent, files, shipped, prefix="")
                    text = _dump(sub)
            files[f"files/{name}"] = text
        return prefix + shipped[local]

    for entry in doc.get("imports") or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entry["path"] = ship(entry["path"], subgraph=False)
    for node in doc.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("subgraph"), str):
            node["subgraph"] = ship(node["subgraph"], subgraph=True)


def _reachable(
    starts: list[str],
    exit: str | None,
    position: Mapping[str, int],
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    routes: Mapping[str, Node] | None,
    walk: bool,
) -> set[str]:
    """Every node a branch can reach from ``starts`` before ``exit``: by the compiled
    ``routes`` where known, else by the YAML; only ``starts`` when not ``walk`` (the
    item body of a dynamic fan-out is its node alone)."""
    keep: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name in keep or name == exit or name not in position:
            continue
        keep.add(name)
        if not walk:
            continue
        if routes is not None and name in routes:
            todo += [t for t in routes[name].route.targets() if t not in (END, START)]
        else:
            todo += _successors(position[name], nodes, edges)
    return keep


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the located YAML types do not dump)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=4096)


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
    """Where a node of the source can lead, read from the YAML alone."""
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
    return [n for n in names if n not in (END, START)]


def _referenced(node: Mapping[str, Any], edges: Iterable[Mapping[str, Any]]) -> set[str]:
    names = set(_targets(node.get("goto")))
    if isinstance(node.get("fan_in"), str):
        names.add(node["fan_in"])
    for edge in edges:
        if edge.get("from") == node.get("name"):
            names.update(_targets(edge.get("to")))
            if isinstance(edge.get("fan_in"), str):
                names.add(edge["fan_in"])
    return names - {END, START}


def _force_thread(settings: Any) -> dict[str, Any]:
    """``settings`` with every fan-out of the subset on threads: a branch running on a
    host never fans out to other hosts again."""
    out: dict[str, Any] = dict(settings or {})
    parallel = dict(out.get("parallel") or {})
    parallel.pop("remote", None)
    parallel["strategy"] = "thread"
    out["parallel"] = parallel
    return out


def _thread_edge(edge: dict[str, Any]) -> dict[str, Any]:
    edge = dict(edge)
    if edge.get("parallel_strategy"):
        edge["parallel_strategy"] = "thread"
    return edge


def _fall_through(node: Node | None) -> str | None:
    """Where a compiled node goes when nothing in its own YAML says so, else ``None``."""
    if node is None or node.fanout is not None:
        return None
    route = node.route
    if route.goto or route.rules or route.edges or route.fanouts:
        return None
    return route.default_after_fanout or route.next
