"""The compiled workflow as data: nodes, their routes and fan-outs.

Built by the loader (``tea.loader``) or by ``StateGraph``, then never changed.
Nothing here runs anything: the runner walks a ``Graph`` (``tea.runner``),
``tea.fanout`` turns its ``FanOut`` records into branches, and ``tea.program``
adapts it to the executors' ``BranchProgram``. Bodies and conditions are
opaque objects to this module (``tea.nodes``, ``tea.conditions`` define them).

``StepGraph`` is the other model: a graph built the LangGraph way
(``StateGraph(State)``), run in supersteps by ``tea.supersteps``; ``Send`` is its
map-reduce message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.errors import Location

if TYPE_CHECKING:
    from executors.base import ParallelConfig

__all__ = [
    "END",
    "START",
    "Branch",
    "Channel",
    "Edge",
    "FanOut",
    "Graph",
    "ItemSpec",
    "Node",
    "Route",
    "Send",
    "StepGraph",
    "StepNode",
    "branch_nodes",
]

START = "__start__"
END = "__end__"


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """The per-item half of a dynamic fan-out (``type: dynamic_parallel``).

    ``items`` and ``max_concurrency`` are compiled values (templates or plain data),
    rendered against the state when the fan-out starts. ``body`` is what one item
    runs: an action, steps or subgraph body (``tea.nodes``).
    """

    items: Any
    item_var: str
    index_var: str
    body: Any
    max_concurrency: Any = None
    fail_fast: bool | None = None
    none_is_empty: bool = False
    """Items that render to nothing (``None``) are no items, as the reference reads
    ``parallel_each``; ``dynamic_parallel`` calls that a mistake."""


@dataclass(frozen=True, slots=True)
class FanOut:
    """Branches that run in parallel from ``source`` and meet at ``fan_in``.

    Static (``targets``: one branch per target node, each walking the graph up to
    ``fan_in``) or dynamic (``each``: one branch per item, each running the item
    body). ``config`` is the fan-out's parallel configuration, settings and
    overrides already merged. ``conditions`` (empty: none) holds, per target, the
    compiled ``when:`` of its edge (``None``: always): a branch runs only when its
    condition holds.
    """

    source: str
    fan_in: str
    config: ParallelConfig
    targets: tuple[str, ...] = ()
    each: ItemSpec | None = None
    location: Location = field(default_factory=Location)
    conditions: tuple[Any, ...] = ()

    @property
    def dynamic(self) -> bool:
        return self.each is not None


@dataclass(frozen=True, slots=True)
class Edge:
    """A legacy edge; ``has_match`` means ``condition`` must evaluate equal to ``match``;
    ``dynamic`` means the condition's value is the target (``StateGraph``'s routing functions)."""

    target: str
    condition: Any = None
    match: Any = None
    has_match: bool = False
    dynamic: bool = False


@dataclass(slots=True)
class Route:
    """Where to go after a node: goto, then legacy edges, then the next node in the list.

    Filled in by the loader; not changed once the graph is built.
    """

    goto: str | None = None
    rules: list[tuple[Any, str]] | None = None
    """``goto: [{if, to}]`` rules: a compiled condition (``None``: always) and a target."""
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


@dataclass(slots=True)
class Node:
    """One node: its body (``None``: a no-op), its route, and what surrounds the body.

    ``fanout`` is set on a ``type: dynamic_parallel`` node: the node's work *is*
    the fan-out. ``error_policy`` is the node's retry/fallback policy
    (``tea.policy``), ``None`` when it has none.
    """

    name: str
    body: Any
    location: Location = field(default_factory=Location)
    route: Route = field(default_factory=Route)
    fan_in: bool = False
    interrupt: str | None = None
    error_policy: Any = None
    kind: str = "python"
    fanout: FanOut | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class Graph:
    """A compiled workflow. Immutable; safe to run from many threads at once.

    ``source`` is the YAML document as plain data and ``source_text`` its text
    (``""`` for graphs built in Python); ``key`` identifies the program (a hash of
    the text), so workers can cache it.
    """

    name: str
    nodes: dict[str, Node]
    entry: str
    parallel: ParallelConfig
    start_route: Route | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    reducers: Mapping[str, Any] = field(default_factory=dict)
    lua_settings: Any = None
    """``settings.lua`` checked at load (a ``tea.lua.LuaSettings``); ``None``: the defaults."""
    recursion_limit: int = 10_000
    max_branches: int = 1_000_000
    interrupt_before: frozenset[str] = frozenset()
    interrupt_after: frozenset[str] = frozenset()
    initial_state: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    source_text: str = ""
    path: Path | None = None
    key: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    keeps_results: bool = True
    """Whether the last fan-in's ``parallel_results`` stay in the state (the YAML dialect's
    rule); graphs built with ``StateGraph`` follow LangGraph, where they do not."""
    input_schema: Any = None
    """``input_schema`` (a ``tea.io_schema.IOSchema``): the run's input is checked against it
    before the first node; ``None``: not checked."""
    output_schema: Any = None
    """``output_schema`` (a ``tea.io_schema.IOSchema``): the final state is checked against it
    after the last node; ``None``: not checked."""

    @property
    def workflow_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def route_of(self, name: str) -> Route:
        """The route out of ``name`` (``START``: the edges from ``__start__``)."""
        if name == START:
            assert self.start_route is not None
            return self.start_route
        return self.nodes[name].route

    def fanouts(self) -> list[FanOut]:
        """Every fan-out of the graph, static and dynamic, in node order."""
        routes = [self.start_route] if self.start_route is not None else []
        routes += [node.route for node in self.nodes.values()]
        found = [fan for route in routes for fan in route.fanouts]
        found += [node.fanout for node in self.nodes.values() if node.fanout is not None]
        return found

    def strategies(self) -> frozenset[str]:
        """Every parallel strategy some fan-out of this graph uses."""
        return frozenset(fan.config.strategy for fan in self.fanouts())

    def branch_nodes(self) -> dict[str, str]:
        """Every node the branches of a static fan-out can run (``branch_nodes``)."""
        return branch_nodes(self.nodes, self.fanouts())


def branch_nodes(nodes: Mapping[str, Node], fanouts: Iterable[FanOut]) -> dict[str, str]:
    """Every node the branches of ``fanouts`` can run, with the source of the first fan-out
    found to run it: walked from each target up to (not into) its fan-in, by every route."""
    found: dict[str, str] = {}
    for fan in fanouts:
        seen: set[str] = set()
        todo = list(fan.targets)
        while todo:
            name = todo.pop()
            node = nodes.get(name)
            if node is None or name == fan.fan_in or name in seen:
                continue
            seen.add(name)
            found.setdefault(name, fan.source)
            todo += node.route.targets()
            if node.fanout is not None:
                todo.append(node.fanout.fan_in)
    return found


@dataclass(frozen=True, slots=True)
class Send:
    """Run ``node`` in the next superstep with ``arg`` as its input (LangGraph's
    ``Send``): what a routing function returns to map one node over many inputs."""

    node: str
    arg: Any

    def __hash__(self) -> int:
        return hash((self.node, repr(self.arg)))


@dataclass(frozen=True, slots=True)
class Channel:
    """One key of a ``StepGraph``'s state: ``reducer`` (a ``tea.state.Reducer``) combines
    the writes of a step; ``None``: the key takes one write per step (LangGraph's
    ``LastValue``)."""

    key: str
    reducer: Any = None


@dataclass(frozen=True, slots=True)
class Branch:
    """A conditional edge: ``path(state)`` (or ``path(state, config)``) gives a node name,
    ``END``, a ``Send`` or a list of them; ``path_map`` (when given) maps its values to
    node names."""

    path: Any
    path_map: Mapping[Any, str] | None = None
    wants_config: bool = False


@dataclass(frozen=True, slots=True)
class StepNode:
    """A node of a ``StepGraph``: ``fn(input)`` (or ``fn(input, config)``) returns an
    update or ``None``; ``input_keys`` are the keys it reads (``None``: the whole state);
    ``schema`` (a dataclass or a pydantic model, else ``None``) is built from them;
    a ``defer`` node waits until nothing else is left to run."""

    name: str
    fn: Any
    wants_config: bool = False
    input_keys: frozenset[str] | None = None
    schema: Any = None
    defer: bool = False


@dataclass(frozen=True, kw_only=True, eq=False)
class StepGraph:
    """A graph in LangGraph's model: nodes run in supersteps; every edge out of a node
    that ran fires (several edges run their targets together, in the next step);
    ``joins`` wait for all their sources; ``branches`` route on functions of the state.

    ``channels`` are the state's keys (``any_key``: keys outside them are kept too, for a
    schema without fields); ``input_keys``/``output_keys`` filter what comes in and out.
    """

    name: str
    nodes: Mapping[str, StepNode]
    edges: Mapping[str, tuple[str, ...]]
    branches: Mapping[str, tuple[Branch, ...]]
    joins: tuple[tuple[tuple[str, ...], str], ...]
    channels: Mapping[str, Channel]
    input_keys: frozenset[str]
    output_keys: tuple[str, ...]
    any_key: bool = False
    schema: Any = None
    recursion_limit: int = 25
