"""``StateGraph``: build a graph in Python instead of YAML, in one of two models.

LangGraph's model, when the graph is given a state schema, so that programs written
for LangGraph run with only their import changed::

    class State(TypedDict):
        topic: str
        jokes: Annotated[list, operator.add]      # a reducer: parallel writes combine

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("joke", joke)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", lambda s: [Send("joke", {"subject": x}) for x in s["subjects"]])
    graph.add_edge("joke", END)
    app = graph.compile()                         # a tea.compiled.CompiledStateGraph
    app.invoke({"topic": "tea"}, {"recursion_limit": 10})

Every edge out of a node that ran fires; targets run together in the next superstep
(``tea.supersteps``). Without a schema, the graph follows tea's YAML model
(``tea.runner``): a route is followed edge by edge (the first that holds wins),
nodes without edges chain in the order they were added, and ``add_parallel_edges``
fans out to branches that meet at a fan-in, which receives ``parallel_results``;
``compile()`` then returns a ``Workflow``. Graphs built here run on every strategy
except remote, which needs a YAML workflow to ship.
"""

from __future__ import annotations

import inspect
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import is_dataclass
from typing import Any

from executors.base import ParallelConfig
from tea.channels import channels_of, schema_keys
from tea.compiled import CompiledStateGraph
from tea.errors import SchemaError
from tea.graph import END, START, Branch, Edge, FanOut, Graph, Node, Route, StepGraph, StepNode
from tea.nodes import CallableBody
from tea.workflow import Workflow

__all__ = ["END", "START", "StateGraph"]

_NODE_OPTIONS = frozenset({"metadata", "destinations", "input_schema", "input", "defer"})
_LEGACY = {"input": "input_schema", "output": "output_schema", "config_schema": "context_schema"}


class _FunctionCondition:
    """A routing function as a condition: its value picks the target."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def evaluate(self, state: Mapping[str, Any], scope: Any) -> Any:
        return self.fn(dict(state))


class StateGraph:
    """A mutable graph builder; ``compile()`` returns the graph ready to run.

    With ``state_schema`` (a ``TypedDict``, dataclass or pydantic model; LangGraph's
    model) ``compile()`` gives a ``CompiledStateGraph``; without one (tea's YAML model),
    a ``Workflow``. ``reducers`` gives keys a reducer ``fn(old, new)`` in either model.
    """

    def __init__(
        self,
        state_schema: Any = None,
        context_schema: Any = None,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
        name: str = "graph",
        reducers: Mapping[str, Any] | None = None,
        **legacy: Any,
    ) -> None:
        given = {"input_schema": input_schema, "output_schema": output_schema, "context_schema": context_schema}
        for key, value in legacy.items():
            if key not in _LEGACY:
                raise TypeError(f"StateGraph() got an unexpected keyword argument '{key}'")
            given[_LEGACY[key]] = given[_LEGACY[key]] or value
        self.name = name
        self.state_schema = state_schema
        self.input_schema = given["input_schema"] or state_schema
        self.output_schema = given["output_schema"] or state_schema
        self._reducers = dict(reducers or {})
        self._nodes: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._entry: str | None = None
        self._edges: list[tuple[str, str | Branch]] = []
        """Edges out of each source, in the order they were added: a target, or a conditional edge."""
        self._joins: list[tuple[tuple[str, ...], str]] = []
        self._fanouts: list[FanOut] = []
        channels_of(state_schema)  # a bad reducer signature fails here, as in LangGraph

    @property
    def langgraph(self) -> bool:
        """Whether this graph follows LangGraph's model (it was given a state schema)."""
        return self.state_schema is not None

    def add_node(self, node: Any, action: Any = None, **options: Any) -> StateGraph:
        """Add ``action`` (a function of the state, or a compiled graph) as node ``node``;
        ``add_node(fn)`` names the node after the function."""
        if not isinstance(node, str):
            node, action = getattr(node, "name", None) or getattr(node, "__name__", None), node
            if not isinstance(node, str):
                raise SchemaError("add_node needs a name when the action is not a named function")
        unknown = sorted(set(options) - (_NODE_OPTIONS if self.langgraph else set()))
        if unknown:
            raise SchemaError(f"add_node: tea does not support {', '.join(unknown)}",
                              hint="see docs/MIGRATING.md for what tea runs of LangGraph")
        if action is None and self.langgraph:
            raise SchemaError(f"node '{node}' has no action", hint="add_node(name, fn): fn(state) -> update")
        if node in self._nodes:
            raise SchemaError(f"duplicate node name '{node}'")
        if node in (START, END):
            raise SchemaError(f"'{node}' is reserved")
        self._nodes[node] = (action, options)
        return self

    def add_sequence(self, nodes: Sequence[Any]) -> StateGraph:
        """Add nodes (functions, or ``(name, function)`` pairs) joined by edges in order."""
        if not nodes:
            raise SchemaError("add_sequence needs at least one node")
        previous: str | None = None
        for item in nodes:
            name, action = item if isinstance(item, tuple) else (getattr(item, "__name__", None), item)
            self.add_node(name, action)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, name: str) -> StateGraph:
        return self.add_edge(START, name)

    def set_finish_point(self, name: str) -> StateGraph:
        return self.add_edge(name, END)

    def set_conditional_entry_point(self, path: Callable[..., Any], path_map: Any = None) -> StateGraph:
        return self.add_conditional_edges(START, path, path_map)

    def add_edge(self, source: str | Sequence[str], target: str) -> StateGraph:
        """An edge; from a list of nodes (LangGraph's model), ``target`` waits for them all."""
        if source == END:
            raise SchemaError("END cannot be the start of an edge")
        if target == START:
            raise SchemaError("START cannot be the end of an edge")
        if not isinstance(source, str):
            if not self.langgraph:
                raise SchemaError("an edge from several nodes needs LangGraph's model: give StateGraph a state schema")
            self._joins.append((tuple(source), target))
        elif source == START and not self.langgraph:
            self._entry = target
        else:
            self._edges.append((source, target))
        return self

    def add_conditional_edges(self, source: str, path: Callable[..., Any], path_map: Any = None) -> StateGraph:
        """Route on ``path(state)``: a node name (mapped through ``path_map`` when given) or,
        in LangGraph's model, a list of names and ``Send``s, all of which run."""
        mapping = {name: name for name in path_map} if isinstance(path_map, list | tuple) else path_map
        self._edges.append((source, Branch(path, dict(mapping) if mapping is not None else None, _takes_config(path))))
        return self

    def add_parallel_edges(
        self,
        source: str,
        targets: Sequence[str],
        *,
        fan_in: str,
        config: ParallelConfig | None = None,
    ) -> StateGraph:
        """tea's model: fan out to ``targets``; the branches meet at ``fan_in``, which gets
        their results as ``parallel_results``."""
        if self.langgraph:
            raise SchemaError("add_parallel_edges belongs to tea's model; in LangGraph's, add an edge "
                              "from the source to each target and from each target to the fan-in")
        self._fanouts.append(
            FanOut(source=source, fan_in=fan_in, config=config or ParallelConfig(), targets=tuple(targets))
        )
        return self

    def compile(
        self,
        checkpointer: Any = None,
        *,
        parallel: ParallelConfig | None = None,
        recursion_limit: int | None = None,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        debug: bool = False,
        name: str | None = None,
    ) -> Any:
        """The graph ready to run: a ``CompiledStateGraph`` (LangGraph's model; default
        ``recursion_limit`` 25) or a ``Workflow`` (tea's; default 10,000)."""
        if not self._nodes:
            raise SchemaError("the graph has no nodes")
        if checkpointer is not None or interrupt_before or interrupt_after:
            raise SchemaError("tea's StateGraph takes no checkpointer and no interrupts",
                              hint="a YAML workflow has both: see docs/MIGRATING.md")
        if self.langgraph:
            if parallel is not None:
                raise SchemaError("parallel= belongs to tea's model; in LangGraph's, a step's nodes run on "
                                  'threads (set {"max_concurrency": n} in the config)')
            return CompiledStateGraph(self._step_graph(25 if recursion_limit is None else recursion_limit, name))
        return Workflow(self._walk_graph(parallel, 10_000 if recursion_limit is None else recursion_limit, name))

    def _walk_graph(self, parallel: ParallelConfig | None, recursion_limit: int, name: str | None) -> Graph:
        """tea's model: a ``Graph`` for ``tea.runner``."""
        names = list(self._nodes)
        known = set(names) | {END}
        # Fresh routes: a graph compiled earlier keeps its routes when the builder changes.
        nodes = {
            node: Node(name=node, body=CallableBody(action) if action else None, kind="python",
                       route=Route(next=names[index + 1] if index + 1 < len(names) else END))
            for index, (node, (action, _)) in enumerate(self._nodes.items())
        }
        for source, edge in self._walk_edges():
            if source not in nodes:
                raise SchemaError(f"edge from unknown node '{source}'")
            if not edge.dynamic and edge.target not in known:
                raise SchemaError(f"edge to unknown node '{edge.target}'")
            route = nodes[source].route
            if route.edges and route.edges[-1].condition is None:
                raise SchemaError(
                    f"node '{source}' has an edge to '{route.edges[-1].target}' that always holds and "
                    f"another to '{edge.target}' after it, which would never be taken",
                    hint="fan out with add_parallel_edges, or give StateGraph a state schema for "
                    "LangGraph's model (every edge fires)",
                )
            route.edges.append(edge)
        self._attach_fanouts(nodes, known)
        entry = self._entry or names[0]
        if entry not in self._nodes:
            raise SchemaError(f"entry point '{entry}' is not a node")
        # Python functions have no source to hash: each compiled graph is its own program.
        return Graph(name=name or self.name, nodes=nodes, entry=entry, reducers=self._reducers,
                     parallel=parallel or ParallelConfig(), recursion_limit=recursion_limit,
                     key=uuid.uuid4().hex, keeps_results=False)

    def _walk_edges(self) -> list[tuple[str, Edge]]:
        edges: list[tuple[str, Edge]] = []
        for source, target in self._edges:
            if isinstance(target, str):
                edges.append((source, Edge(target)))
                continue
            condition = _FunctionCondition(target.path)
            if target.path_map is None:
                edges.append((source, Edge("<dynamic>", condition, dynamic=True)))
            else:
                edges += [(source, Edge(to, condition, value, True)) for value, to in target.path_map.items()]
        return edges

    def _attach_fanouts(self, nodes: dict[str, Node], known: set[str]) -> None:
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

    def _step_graph(self, recursion_limit: int, name: str | None) -> StepGraph:
        """LangGraph's model: a ``StepGraph`` for ``tea.supersteps``."""
        schemas = [self.state_schema, self.input_schema, self.output_schema]
        nodes: dict[str, StepNode] = {}
        for node, (action, options) in self._nodes.items():
            schema = options.get("input_schema") or options.get("input") or _input_schema(action, self.state_schema)
            keys = frozenset(schema_keys(schema)) or None
            if schema is not None:
                schemas.append(schema)
            build = schema if schema is not None and (is_dataclass(schema) or hasattr(schema, "model_fields")) else None
            nodes[node] = StepNode(node, action, _takes_config(action), keys, build, bool(options.get("defer")))
        channels: dict[str, Any] = {}
        for schema in schemas:
            channels.update({k: v for k, v in channels_of(schema).items() if k not in channels})
        channels.update(channels_of(None, self._reducers))
        self._check_steps(nodes)
        edges: dict[str, list[str]] = {}
        branches: dict[str, tuple[Branch, ...]] = {}
        for source, target in self._edges:
            if isinstance(target, Branch):
                branches[source] = (*branches.get(source, ()), target)
            elif target not in edges.setdefault(source, []):
                edges[source].append(target)
        output = schema_keys(self.output_schema)
        return StepGraph(
            name=name or self.name, nodes=nodes, edges={k: tuple(v) for k, v in edges.items()},
            branches=branches, joins=tuple(self._joins),
            channels=channels, input_keys=frozenset(schema_keys(self.input_schema)),
            output_keys=tuple(output), any_key=not schema_keys(self.state_schema),
            schema=self.state_schema, recursion_limit=recursion_limit,
        )

    def _check_steps(self, nodes: Mapping[str, StepNode]) -> None:
        """LangGraph's checks at compile: an entry point, and edges between known nodes."""
        sources = {source for source, _ in self._edges} | {s for group, _ in self._joins for s in group}
        if START not in sources:
            raise SchemaError("Graph must have an entrypoint: add at least one edge from START to another node")
        for source in sources - {START}:
            if source not in nodes:
                raise SchemaError(f"Found edge starting at unknown node '{source}'")
        targets = {target for _, target in self._edges if isinstance(target, str)}
        targets |= {target for _, target in self._joins}
        targets |= {t for _, b in self._edges if isinstance(b, Branch) for t in (b.path_map or {}).values()}
        for target in targets - {END}:
            if target not in nodes:
                raise SchemaError(f"Found edge ending at unknown node `{target}`")


def _input_schema(action: Any, state_schema: Any) -> Any:
    """The schema a node function's first parameter is annotated with (LangGraph reads a node's
    input keys from it), or the graph's state schema."""
    if inspect.isfunction(action) or inspect.ismethod(action):
        fn = action
    elif callable(action) and not isinstance(action, type):
        fn = action.__call__  # an object with __call__: its method's first parameter after self
    else:
        return state_schema
    try:
        hints = typing.get_type_hints(fn)
        first = next(iter(inspect.signature(fn).parameters), None)
    except (NameError, TypeError, ValueError):
        return state_schema
    hint = hints.get(first) if first is not None else None
    if isinstance(hint, type) and schema_keys(hint):
        return hint
    return state_schema


def _takes_config(action: Any) -> bool:
    if not callable(action):
        return False
    try:
        return "config" in inspect.signature(action).parameters
    except (TypeError, ValueError):
        return False
