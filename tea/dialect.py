"""The reference's and the seeds' spellings, read into tea's (part of loading).

Run before any check, so the rest of loading sees one dialect:

* keys the reference accepts and does nothing with (top-level ``interrupt_before``
  and ``checkpoint``, ``settings.parallel.streams``, a node's ``streams``, a
  ``condition:`` on a node that is not a ``while_loop``, annotations such as
  ``_render_items``) are dropped, each with one WARNING on the ``tea`` logger
  naming the key, its file:line and that it is ignored;
* the seeds' forms become the dialect's: a top-level ``error_policy`` is
  ``settings.error_policy``, ``nodes:`` as a mapping (name → node) is the node
  list, a node's ``config:`` is its action's ``with:``. Where both spellings are
  written, loading fails with a hint naming the one to keep.

The result is the document tea compiles (``Graph.source``), so what is shipped to
a remote host is already in the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from tea.errors import SchemaError
from tea.problems import Problems
from tea.yamlsrc import LocDict, LocList, located, location_of

__all__ = ["IGNORED_EDGE_KEYS", "IGNORED_NODE_KEYS", "IGNORED_TOP_LEVEL", "SEED_TOP_LEVEL", "normalize_document",
           "normalize_node", "without_ignored"]

IGNORED_TOP_LEVEL: dict[str, str] = {
    "interrupt_before": "the reference reads interrupts from config: only; "
                        "write config: {interrupt_before: [...]} to stop there",
    "interrupt_after": "the reference reads interrupts from config: only; "
                       "write config: {interrupt_after: [...]} to stop there",
    "checkpoint": "checkpoints are config.checkpoint_dir and tea resume",
    "endpoint": "HTTP exposure is not part of tea",
}
"""Top-level keys the reference accepts that tea reads and ignores, with why."""

SEED_TOP_LEVEL = frozenset({"error_policy"})
"""Top-level keys of the seeds that tea reads as another key (``settings.error_policy``)."""

_INTERRUPT = "the reference stops only for interrupt: before|after on a node (or config:); write that to stop here"
IGNORED_NODE_KEYS: dict[str, str] = {
    "streams": "stdin/stdout channels between nodes are not part of tea; pass data in the state",
    "next": "the reference does not route on next: either (the node goes on to the next one in the list); "
            "write goto: <node> to route there",
    "params": "the reference passes no params: to the action either; an action's parameters are with:",
    "interrupt_before": _INTERRUPT,
    "interrupt_after": _INTERRUPT,
    "condition": "the node always runs (as in the reference); to skip it, route around it "
                 "with goto: [{if: ..., to: ...}]",
}
"""Node keys the reference accepts that tea reads and ignores (``condition`` only off a
``while_loop``), with why; keys starting with ``_`` (tool annotations such as the DOT
importer's ``_render_items``) are ignored too."""

IGNORED_EDGE_KEYS: dict[str, str] = {
    "stream_mode": "stdin/stdout channels between nodes are not part of tea; pass data in the state",
}
"""Edge keys the reference accepts that tea reads and ignores, with why."""


def normalize_document(doc: Mapping[str, Any], problems: Problems) -> Mapping[str, Any]:
    """``doc`` in tea's spelling (a new mapping; ``doc`` is not changed)."""
    out = located({k: v for k, v in doc.items() if k not in IGNORED_TOP_LEVEL}, doc)
    for key in doc:
        if key in IGNORED_TOP_LEVEL:
            problems.warn(f"top-level '{key}' is ignored", location_of(doc, key), IGNORED_TOP_LEVEL[key])
    settings = doc.get("settings")
    if isinstance(settings, Mapping):
        out["settings"] = _settings(settings, problems)
    if "error_policy" in doc:
        problems.guard(lambda: _move_error_policy(doc, out), None)
    nodes = doc.get("nodes")
    if isinstance(nodes, Mapping) and nodes:
        out["nodes"] = _node_list(nodes, problems)
    return out


def _settings(settings: Mapping[str, Any], problems: Problems) -> Mapping[str, Any]:
    parallel = settings.get("parallel")
    if not isinstance(parallel, Mapping) or "streams" not in parallel:
        return settings
    problems.warn("settings.parallel.streams is ignored", location_of(parallel, "streams"),
                  "stdin/stdout channels between nodes are not part of tea; pass data in the state")
    out = located(settings, settings)
    out["parallel"] = located({k: v for k, v in parallel.items() if k != "streams"}, parallel)
    return out


def _move_error_policy(doc: Mapping[str, Any], out: LocDict) -> None:
    """The seed's top-level ``error_policy`` is ``settings.error_policy``."""
    del out["error_policy"]
    settings = out.get("settings")
    if settings is None:
        settings = located({}, doc)
        settings.key_locs["error_policy"] = location_of(doc, "error_policy")
    elif not isinstance(settings, Mapping):
        return  # read_document reports the settings themselves
    elif "error_policy" in settings:
        raise SchemaError(
            "error_policy is written twice: at the top level and in settings",
            location_of(doc, "error_policy"),
            hint="keep settings.error_policy (the top-level error_policy is the seeds' spelling of it)",
        )
    else:
        settings = located(settings, settings)
        settings.key_locs["error_policy"] = location_of(doc, "error_policy")
    settings["error_policy"] = doc["error_policy"]
    out["settings"] = settings


def _node_list(nodes: Mapping[str, Any], problems: Problems) -> LocList:
    """``nodes:`` as a mapping (name → node, the seeds' form) → the node list, in order;
    a node that cannot be read is reported and left out."""
    out = LocList()
    out.loc = location_of(nodes)
    out.item_locs = []
    for name, raw in nodes.items():
        node: LocDict | None = problems.guard(partial(_named, nodes, name, raw), None)
        if node is not None:
            out.append(node)
            out.item_locs.append(location_of(nodes, name))
    return out


def _named(nodes: Mapping[str, Any], name: str, raw: Any) -> LocDict:
    """The node ``nodes[name]`` with its ``name`` (located at the key)."""
    where = location_of(nodes, name)
    if raw is None:
        raw = located({}, nodes)
        raw.loc = where
    if not isinstance(raw, Mapping):
        raise SchemaError(f"node '{name}' must be a mapping", where,
                          hint="under nodes:, each name maps to the node's keys (run:, uses:, ...)")
    if "name" in raw and raw["name"] != name:
        raise SchemaError(
            f"node '{name}' is also named '{raw['name']}'", location_of(raw, "name"),
            hint="under nodes: as a mapping the key is the name: drop name:",
        )
    node = located({"name": name, **raw}, raw)
    node.key_locs["name"] = where
    return node


def normalize_node(raw: Mapping[str, Any], what: str, problems: Problems) -> Mapping[str, Any]:
    """A node in tea's spelling: ignored keys dropped (each warned), ``config:`` → ``with:``."""
    ignored = {k: why for k in raw if (why := _ignored_because(raw, k)) is not None}
    if not ignored and "config" not in raw:
        return raw
    for key, why in ignored.items():
        problems.warn(f"{what}: '{key}' is ignored", location_of(raw, key), why)
    out = located({k: v for k, v in raw.items() if k not in ignored}, raw)
    if "config" in out:
        _config_as_with(out, what)
    return out


def _ignored_because(raw: Mapping[str, Any], key: Any) -> str | None:
    """Why the reference does nothing with ``raw[key]`` (``None``: it is read)."""
    if not isinstance(key, str):
        return None
    if key.startswith("_"):
        return "keys starting with _ are annotations of other tools"
    if key == "condition":
        return None if raw.get("type") == "while_loop" else IGNORED_NODE_KEYS[key]
    if key == "strategy" and not (isinstance(raw[key], Mapping) and "matrix" in raw[key]):
        return "strategy: on a node only means strategy: {matrix: ...}; the parallel strategy is " \
               "settings.parallel.strategy"
    if key == "max_workers" and "parallel_each" not in raw:
        return "max_workers on a node applies to parallel_each only"
    return IGNORED_NODE_KEYS.get(key)


def _config_as_with(node: LocDict, what: str) -> None:
    """The seed's ``action:`` + ``config:`` is the dialect's ``uses:`` + ``with:``."""
    where = location_of(node, "config")
    if not isinstance(node.get("action", node.get("uses")), str):
        raise SchemaError(f"{what}: 'config' holds the parameters of an action, and the node has none",
                          where, hint="name the action: uses: <action> (or action:), with its "
                          "parameters under with:")
    if "with" in node:
        raise SchemaError(f"{what}: both 'config' and 'with' give the action's parameters", where,
                          hint="keep with: (config: is the seeds' spelling of it)")
    value_at = node.value_loc("config")
    node["with"] = node.pop("config")
    node.key_locs["with"] = where
    node.value_locs["with"] = value_at


def without_ignored(raw: Mapping[str, Any], ignored: Mapping[str, str], what: str,
                    problems: Problems) -> Mapping[str, Any]:
    """``raw`` without the keys of ``ignored`` it has, each warned with its reason."""
    found = [key for key in raw if key in ignored]
    for key in found:
        problems.warn(f"{what}: '{key}' is ignored", location_of(raw, key), ignored[key])
    return located({k: v for k, v in raw.items() if k not in found}, raw) if found else raw
