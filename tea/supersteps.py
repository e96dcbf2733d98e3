"""LangGraph's model: a graph built with ``StateGraph(State)`` runs in supersteps.

::

    step 0   the input is written to the state (through the reducers; keys outside
             the input schema dropped); the edges out of START pick the first nodes
    step n   every node triggered runs, together on threads, on the state as it was
             when the step began (a ``Send``'s node on the ``Send``'s argument); each
             returns its writes, and its edges pick nodes for step n + 1 (a conditional
             edge reads the state with that task's own writes applied)
             ─► the step's writes land task by task in a fixed order (nodes by name,
                then ``Send``s in the order they were made: LangGraph's), reducers
                combining, one write per step for a key without one (``tea.channels``)
             ─► a waiting edge (``add_edge([a, b], c)``) triggers ``c`` once ``a`` and
                ``b`` have all run; a node triggered several times runs once
    end      no node is triggered. Reaching step ``recursion_limit`` before that is a
             ``GraphRecursionError``, as in LangGraph (the input's step counts).

This is a loop of its own, beside ``tea.runner.walk``: the two models differ (a walk
follows one route and fans out to branches that meet at a fan-in; here every edge
fires and a step's writes meet in the state). Tasks are in-process calls of Python
functions, so they run on a thread pool of the run: a node's own exception reaches
the caller unchanged (with a note naming the node), as it does in LangGraph.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tea.channels import InvalidUpdateError, apply_writes, initial_values
from tea.errors import RecursionLimitError, RunError
from tea.graph import END, START, Send, StepGraph, StepNode

__all__ = ["LOOP", "GraphRecursionError", "StepDone", "run_steps"]

LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar("tea_loop", default=None)
"""The event loop of an ``ainvoke``/``astream`` caller: async nodes and routers run on it."""


class GraphRecursionError(RecursionLimitError, RecursionError):
    """More supersteps than the run's ``recursion_limit`` (LangGraph's error of that name)."""


@dataclass(frozen=True, slots=True)
class StepDone:
    """One finished superstep: each task's node and update (``None``: no update), in the
    order their writes were applied, the keys written, and the state after the step."""

    step: int
    updates: list[tuple[str, dict[str, Any] | None]]
    written: set[str]
    values: dict[str, Any]


@dataclass(slots=True)
class _Task:
    node: StepNode
    order: tuple[int, str, int]
    arg: Any = None
    sent: bool = False
    update: dict[str, Any] | None = None
    after: list[str | Send] = field(default_factory=list)


def run_steps(graph: StepGraph, input: Any, config: Mapping[str, Any]) -> Iterator[StepDone]:
    """Run ``graph`` from ``input``; one ``StepDone`` per superstep (step 0: the input).
    ``config`` reaches every node and routing function that takes a ``config`` parameter."""
    config = {"tags": [], "metadata": {}, "callbacks": None, "recursion_limit": graph.recursion_limit,
              "configurable": {}, **config}
    limit = int(config["recursion_limit"])
    values = initial_values(graph.channels)
    start = StepNode(START, None)
    tasks = [_Task(start, (0, START, 0), arg=_input_update(input), sent=True)]
    joins: list[set[str]] = [set() for _ in graph.joins]
    deferred: set[str] = set()
    pool: ThreadPoolExecutor | None = None
    step = 0
    try:
        while tasks:
            _check_limit(step, limit)
            if len(tasks) > 1 and pool is None:
                pool = ThreadPoolExecutor(config.get("max_concurrency"), thread_name_prefix="tea-step")
            _run_all(graph, tasks, values, config, pool)
            tasks.sort(key=lambda t: t.order)
            writes = [(k, v) for t in tasks for k, v in _writes(graph, t)]
            written = apply_writes(values, graph.channels, writes, any_key=graph.any_key)
            yield StepDone(step, [(t.node.name, t.update) for t in tasks if t.node is not start], written, values)
            tasks = _next_tasks(graph, tasks, joins, deferred)
            step += 1
        _check_limit(step, limit)  # LangGraph counts the step that finds nothing left to run
    finally:
        if pool is not None:
            pool.shutdown(wait=False)


def _check_limit(step: int, limit: int) -> None:
    if step > limit:
        raise GraphRecursionError(
            f"Recursion limit of {limit} reached without hitting a stop condition. You can "
            "increase the limit by setting the `recursion_limit` config key.",
            hint='invoke(input, {"recursion_limit": n}) with a larger n, or fix the exit of the loop',
        )


def _input_update(input: Any) -> dict[str, Any]:
    if input is None:
        raise RunError("Received no input for __start__", hint="invoke the graph with a dict of the state's keys")
    update = _as_update(input, START)
    return update or {}


def _writes(graph: StepGraph, task: _Task) -> list[tuple[str, Any]]:
    if task.update is None:
        return []
    if task.node.name == START:
        return [(k, v) for k, v in task.update.items() if k in graph.input_keys or graph.any_key]
    return list(task.update.items())


def _run_all(
    graph: StepGraph, tasks: list[_Task], values: dict[str, Any], config: Mapping[str, Any],
    pool: ThreadPoolExecutor | None,
) -> None:
    """Run every task of a step against ``values`` as they are before the step."""
    if pool is None:
        for task in tasks:
            _run_task(graph, task, values, config)
        return
    futures: list[Future[None]] = [
        pool.submit(contextvars.copy_context().run, _run_task, graph, task, values, config) for task in tasks
    ]
    # Every task finishes before the step fails: no node is left running behind the error.
    failed = [(task.order, exc) for task, future in zip(tasks, futures, strict=True)
              if (exc := future.exception()) is not None]
    if failed:
        raise min(failed, key=lambda pair: pair[0])[1]


def _run_task(graph: StepGraph, task: _Task, values: dict[str, Any], config: Mapping[str, Any]) -> None:
    node = task.node
    if node.name == START:
        task.update = task.arg
    else:
        arg = task.arg if task.sent else _node_input(node, values)
        try:
            task.update = _as_update(_call(node.fn, arg, config, node.wants_config), node.name)
        except Exception as exc:
            if not isinstance(exc, RunError):
                exc.add_note(f"During task with name '{node.name}'")
            raise
    task.after = _route(graph, node.name, values, task, config)


def _node_input(node: StepNode, values: dict[str, Any]) -> Any:
    keys = node.input_keys
    state = dict(values) if keys is None else {k: values[k] for k in keys if k in values}
    return node.schema(**state) if node.schema is not None else state


def _call(fn: Any, arg: Any, config: Mapping[str, Any], wants_config: bool) -> Any:
    """Call a node or a routing function; a compiled graph is invoked, a coroutine awaited."""
    invoke = getattr(fn, "invoke", None)
    if not callable(fn) and callable(invoke):
        return invoke(arg, dict(config))
    value = fn(arg, dict(config)) if wants_config else fn(arg)
    if inspect.isawaitable(value):
        loop = LOOP.get()
        if loop is None:
            return asyncio.run(_awaited(value))
        return asyncio.run_coroutine_threadsafe(_awaited(value), loop).result()
    return value


async def _awaited(value: Any) -> Any:
    return await value


def _as_update(value: Any, name: str) -> dict[str, Any] | None:
    """A node's return value as an update: a mapping, ``None`` (nothing), or a dataclass or
    pydantic instance (its fields); anything else is an ``InvalidUpdateError``."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    fields = getattr(type(value), "__dataclass_fields__", None) or getattr(type(value), "model_fields", None)
    if fields is not None:
        return {key: getattr(value, key) for key in fields}
    raise InvalidUpdateError(
        f"Expected dict, got {value!r:.200}", node=name,
        hint="a node returns a dict of the state keys it changes, or None",
    )


def _route(
    graph: StepGraph, name: str, values: dict[str, Any], task: _Task, config: Mapping[str, Any]
) -> list[str | Send]:
    """Where a task leads: its static edges, then each conditional edge's choice."""
    after: list[str | Send] = [t for t in graph.edges.get(name, ()) if t != END]
    branches = graph.branches.get(name, ())
    if not branches:
        return after
    # A Send's node (and START) routes on its own input too, under the state, as in LangGraph.
    fresh = {**task.arg, **values} if task.sent and isinstance(task.arg, dict) else dict(values)
    apply_writes(fresh, graph.channels, _writes(graph, task), any_key=graph.any_key)
    for branch in branches:
        chosen = _call(branch.path, fresh, config, branch.wants_config)
        for value in chosen if isinstance(chosen, list | tuple) else [chosen]:
            after += _destination(graph, name, value, branch.path_map)
    return after


def _destination(graph: StepGraph, name: str, value: Any, path_map: Mapping[Any, str] | None) -> list[str | Send]:
    if isinstance(value, Send):
        if value.node == END:
            raise InvalidUpdateError("Cannot send a packet to the END node", node=name)
        if value.node not in graph.nodes:
            raise RunError(f"a Send names '{value.node}', which is not a node", node=name,
                           hint=f"known nodes: {', '.join(graph.nodes)}")
        return [value]
    if path_map is not None:
        if value not in path_map:
            raise RunError(f"the routing function returned {value!r}, which its path_map does not map",
                           node=name, hint=f"path_map keys: {', '.join(map(repr, path_map))}")
        value = path_map[value]
    if value is None or value == START:
        raise RunError("Branch did not return a valid destination", node=name,
                       hint="return a node name, END, a Send, or a list of them")
    if value == END:
        return []
    if value not in graph.nodes:
        raise RunError(f"the routing function returned '{value}', which is not a node", node=name,
                       hint=f"known nodes: {', '.join(graph.nodes)}, {END}")
    return [value]


def _next_tasks(graph: StepGraph, done: list[_Task], joins: list[set[str]], deferred: set[str]) -> list[_Task]:
    """The tasks of the next step: nodes an edge led to (once each, by name), then Sends;
    a ``defer`` node waits in ``deferred`` until a step would otherwise run nothing."""
    pulled: set[str] = set()
    sends: list[Send] = []
    for task in done:
        for target in task.after:
            if isinstance(target, Send):
                sends.append(target)
            else:
                pulled.add(target)
    ran = {task.node.name for task in done}
    for (sources, target), seen in zip(graph.joins, joins, strict=True):
        seen.update(ran.intersection(sources))
        if seen.issuperset(sources):
            pulled.add(target)
            seen.clear()
    deferred.update(name for name in pulled if graph.nodes[name].defer)
    pulled.difference_update(deferred)
    if not pulled and not sends:
        pulled = set(deferred)
        deferred.clear()
    tasks = [_Task(graph.nodes[name], (0, name, 0)) for name in sorted(pulled)]
    tasks += [_Task(graph.nodes[send.node], (1, "", index), arg=send.arg, sent=True)
              for index, send in enumerate(sends)]
    return tasks
