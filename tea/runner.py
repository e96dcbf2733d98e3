"""The run loop: one execution path for ``invoke``, ``stream``, branches and resume.

``Run.stream()`` yields events as plain dicts (``start``, ``node_start``,
``node_end``, ``state``, ``branch_start``, ``branch_end``, ``interrupt``,
``error``, ``end``); ``Run.invoke()`` drains it and returns the final state.
A branch of a fan-out runs the same loop (``walk_branch``) with its own scope.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tea.errors import Interrupted, Location, NodeError, RecursionLimitError, RunError, TeaError
from tea.fanout import DynamicParallelBody, dispatch, static_tasks
from tea.graph import END, START, Graph, Node
from tea.nodes import run_body
from tea.policy import Fallback
from tea.scope import Scope
from tea.secrets import Secrets
from tea.state import fast_copy, merge
from tea.templates import TemplateError

if TYPE_CHECKING:
    from executors.base import BranchResult, BranchTask
    from tea.signals import StopFlag

__all__ = ["STREAM_MODES", "Run", "Stop", "run_to_end", "walk_branch"]

Event = dict[str, Any]
STREAM_MODES = ("updates", "values", "debug")
_UPDATES_EVENTS = frozenset(
    {"start", "node_end", "branch_end", "interrupt", "error", "end"}
)
_VALUES_EVENTS = frozenset({"start", "state", "interrupt", "error", "end"})


@dataclass
class Stop:
    """Why and where the loop stopped before the end (an interrupt or a signal)."""

    node: str
    position: str
    reason: str


@dataclass
class Cursor:
    """Where a walk is: the node about to run (``before``) or just run (``after``)."""

    node: str
    position: str = "before"
    step: int = 0
    pending: dict[str, list[BranchResult]] = field(default_factory=dict)
    skip_interrupt: bool = False
    fallback: str | None = None


class Hooks:
    """What the main run adds to a walk; a branch walk uses these no-op defaults."""

    interrupt_before: frozenset[str] = frozenset()
    interrupt_after: frozenset[str] = frozenset()
    want_state_events = False
    want_node_start = False

    def stop_requested(self) -> int | None:
        return None

    def node_done(self, node: str) -> None:
        """Called once a node's update is merged (and before its fan-outs run)."""

    def journal(self, fanout: str) -> tuple[dict[str, BranchResult], Callable[[BranchResult], None] | None]:
        return {}, None

    def fanout_done(self, fanout: str) -> None:
        """Called once every branch of the fan-out at ``fanout`` has a result."""


def _cycle(recent: deque[str]) -> list[str]:
    """The repeating tail of the visited nodes (the loop that hit the limit)."""
    seq = list(recent)
    for size in range(1, len(seq) // 2 + 1):
        if seq[-size:] == seq[-2 * size : -size]:
            return seq[-size:]
    return seq[-10:]


def walk(
    graph: Graph,
    scope: Scope,
    state: dict[str, Any],
    cursor: Cursor,
    stop_at: str | None = None,
    hooks: Hooks | None = None,
) -> Iterator[Event | Stop]:
    """Walk the graph from ``cursor`` until ``__end__`` or ``stop_at`` (exclusive).

    Semantics, per step:
      1. a requested stop (signal) or an interrupt before the node stops the walk
         *before* it runs (a resume runs it);
      2. the node's body runs and its update is merged (reducers apply);
      3. an interrupt after the node stops the walk *after* it (a resume goes on);
      4. the node's fan-outs run; their results wait for their fan-in node,
         which receives them as ``parallel_results`` (declaration order);
      5. the route picks the next node: goto, else legacy edges, else the next
         node in the list (after a fan-out with no route: its fan-in).
    ``state`` is updated in place; events are yielded as they happen.
    """
    hooks = hooks or _NO_HOOKS
    limit = graph.recursion_limit
    recent: deque[str] = deque(maxlen=64)
    buffered: list[Event] = []
    emit = buffered.append
    while cursor.node != END and cursor.node != stop_at:
        name = cursor.node
        if cursor.position == "before":
            signum = hooks.stop_requested()
            if signum is not None:
                yield Stop(name, "before", f"signal:{signum}")
                return
            if scope.cancel.is_set():
                raise RunError("cancelled", node=name)
            if name != START and not cursor.skip_interrupt and (
                name in hooks.interrupt_before or graph.nodes[name].interrupt == "before"
            ):
                yield Stop(name, "before", "interrupt_before")
                return
            cursor.skip_interrupt = False
            cursor.step += 1
            if cursor.step > limit:
                cycle = _cycle(recent)
                raise RecursionLimitError(
                    f"recursion limit of {limit} steps reached; the run keeps cycling through "
                    f"{' -> '.join(cycle)}",
                    node=name,
                    hint="fix the loop's exit condition, or raise settings.recursion_limit",
                )
            recent.append(name)
            if name != START:
                node = graph.nodes[name]
                results = cursor.pending.pop(name, None)
                if hooks.want_node_start:
                    yield {"type": "node_start", "node": name, "step": cursor.step}
                started = time.perf_counter()
                scope.current_node = name
                try:
                    update = _run_node(graph, node, state, scope, results, emit, hooks, cursor.pending)
                except Interrupted as stop:  # asked to stop while the node waited to retry
                    if results is not None:
                        cursor.pending[name] = results
                    yield Stop(name, "before", f"signal:{stop.signum}")
                    return
                except RunError:
                    yield from buffered  # a failed fan-out's branch events come before its error
                    signum = hooks.stop_requested()
                    if signum is not None:  # the node (a dynamic fan-out) was stopped by a signal
                        if results is not None:
                            cursor.pending[name] = results
                        yield Stop(name, "before", f"signal:{signum}")
                        return
                    raise
                if isinstance(update, Fallback):
                    cursor.fallback = update.target
                    update = update.update
                merge(state, update, graph.reducers)
                if buffered:
                    yield from buffered
                    buffered.clear()
                yield {
                    "type": "node_end",
                    "node": name,
                    "update": update,
                    "duration_ms": (time.perf_counter() - started) * 1000.0,
                }
                if hooks.want_state_events:
                    yield {"type": "state", "node": name, "state": dict(state)}
            cursor.position = "after"
            if name != START:
                hooks.node_done(name)
            if name != START and (
                name in hooks.interrupt_after or graph.nodes[name].interrupt == "after"
            ):
                yield Stop(name, "after", "interrupt_after")
                return
        if cursor.fallback is not None:
            cursor.node, cursor.fallback = cursor.fallback, None
            cursor.position = "before"
            continue
        route = graph.route_of(name)
        for fan in route.fanouts:
            done, on_result = hooks.journal(name)
            tasks = static_tasks(name, fan.targets, fan.fan_in, state)
            try:
                cursor.pending[fan.fan_in] = dispatch(
                    scope, name, tasks, fan.config, emit, done=done, on_result=on_result
                )
            except RunError:
                yield from buffered
                signum = hooks.stop_requested()
                if signum is not None:  # stopped mid fan-out: resume runs the unfinished branches
                    yield Stop(name, "after", f"signal:{signum}")
                    return
                raise
            hooks.fanout_done(name)
            yield from buffered
            buffered.clear()
        try:
            cursor.node = route.resolve(state, scope)
        except TemplateError as exc:
            raise NodeError(f"routing condition failed: {exc}", node=name,
                            location=graph.nodes[name].location if name != START else None) from exc
        except NodeError as exc:  # a Lua condition that failed or ran out of time
            if exc.location is None and name != START:
                exc.location = graph.nodes[name].location
            raise
        cursor.position = "before"


def _run_node(
    graph: Graph,
    node: Node,
    state: dict[str, Any],
    scope: Scope,
    results: list[BranchResult] | None,
    emit: Callable[[Event], None],
    hooks: Hooks,
    pending: dict[str, list[BranchResult]],
) -> dict[str, Any] | Fallback | None:
    body = node.body
    if isinstance(body, DynamicParallelBody):
        try:
            tasks, config = body.tasks(state, scope, node.name)
        except TemplateError as exc:
            raise NodeError(str(exc), node=node.name, location=node.location) from exc
        except NodeError as exc:
            _attach_location(exc, graph, node)
            raise
        done, on_result = hooks.journal(node.name)
        pending[body.fan_in] = dispatch(
            scope, node.name, tasks, config, emit, done=done, on_result=on_result
        )
        hooks.fanout_done(node.name)
        return None
    if body is None:
        return None
    view = state
    if results is not None:
        view = {**state, "parallel_results": results}
    policy = node.error_policy
    try:
        if policy is not None:
            return policy.run(lambda: run_body(body, view, scope, node.name, results), node.name, scope)
        return run_body(body, view, scope, node.name, results)
    except NodeError as exc:
        _attach_location(exc, graph, node)
        raise


def _attach_location(exc: NodeError, graph: Graph, node: Node) -> None:
    """Point the error at the user's own line when the traceback reaches the YAML file."""
    if exc.location is not None:
        return
    line = None
    lua_line = getattr(exc, "lua_line", None)
    lua_start = getattr(getattr(node.body, "location", None), "line", None)
    if lua_line is not None and lua_start is not None:
        line = lua_start + lua_line - 1
    elif graph.path is not None:
        tb = exc.__cause__.__traceback__ if exc.__cause__ is not None else None
        filename = str(graph.path)
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
    exc.location = Location(str(graph.path) if graph.path else None, line or node.location.line)


_NO_HOOKS = Hooks()


def walk_branch(graph: Graph, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run one static branch from ``task.entry`` up to ``task.exit`` (exclusive)."""
    scope = Scope(graph, secrets=graph.secrets, cancel=cancel)
    state = dict(task.state)
    try:
        for _ in walk(graph, scope, state, Cursor(task.entry), task.exit):
            pass
    finally:
        scope.close()
    return state


def run_to_end(graph: Graph, state: dict[str, Any], cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run a whole graph without events (subgraphs of dynamic_parallel)."""
    scope = Scope(graph, secrets=graph.secrets, cancel=cancel)
    try:
        for _ in walk(graph, scope, state, Cursor(graph.entry), None):
            pass
    finally:
        scope.close()
    return state


class Run:
    """One execution of a graph. Not reusable: build a new ``Run`` per execution."""

    def __init__(
        self,
        graph: Graph,
        state: Mapping[str, Any] | None = None,
        *,
        secrets: Mapping[str, Any] | None = None,
        stream_mode: str = "updates",
        hooks: Hooks | None = None,
        cursor: Cursor | None = None,
        stop_flag: StopFlag | None = None,
    ) -> None:
        if stream_mode not in STREAM_MODES:
            raise ValueError(f"unknown stream mode '{stream_mode}'; known: {', '.join(STREAM_MODES)}")
        self.graph = graph
        # initial_state is copied: a node mutating it in place must not change the next run.
        self.state: dict[str, Any] = (
            {**fast_copy(graph.initial_state), **(state or {})} if cursor is None else dict(state or {})
        )
        # One Secrets per run: the scope, the branches and every redaction share it.
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
        self.mode = stream_mode
        self.hooks = hooks or Hooks()
        self.hooks.want_state_events = stream_mode in ("values", "debug")
        self.hooks.want_node_start = stream_mode == "debug"
        self.cursor = cursor or Cursor(graph.entry)
        self.stopped: Stop | None = None
        self.stop_flag = stop_flag

    def _wanted(self, event: Event) -> bool:
        if self.mode == "debug":
            return True
        allowed = _UPDATES_EVENTS if self.mode == "updates" else _VALUES_EVENTS
        return event["type"] in allowed

    def stream(self) -> Iterator[Event]:
        """The run's events; a secret's value never appears in one (it reads ``***``)."""
        if not self.secrets:
            yield from self._events()
            return
        for event in self._events():
            yield self.secrets.redact(event)

    def _events(self) -> Iterator[Event]:
        # A stop (SIGTERM, SIGINT) also cancels the fan-out in progress: its finished
        # branches are journaled, the others stop and run again on resume.
        stop_event = self.stop_flag.event if self.stop_flag is not None else None
        scope = Scope(self.graph, secrets=self.secrets, stop=self.stop_flag, cancel=stop_event)
        if "process" in self.graph.strategies:
            # Boot the worker pool now, in the background, while the first nodes run.
            scope.executor("process").start()  # type: ignore[attr-defined]
        started = time.perf_counter()
        try:
            yield {"type": "start", "workflow": self.graph.name, "node": self.cursor.node,
                   "state": dict(self.state)}
            try:
                for item in walk(
                    self.graph, scope, self.state, self.cursor, None, self.hooks
                ):
                    if isinstance(item, Stop):
                        self.stopped = item
                        yield from self.on_stop(item)
                        return
                    if self._wanted(item):
                        yield item
            except TeaError as exc:
                yield from self.on_error(exc)
                raise
            yield {"type": "end", "state": dict(self.state),
                   "duration_ms": (time.perf_counter() - started) * 1000.0}
        finally:
            scope.close()

    def on_stop(self, stop: Stop) -> Iterator[Event]:
        """Events for a stop (the checkpointing run overrides this)."""
        yield {"type": "interrupt", "node": stop.node, "position": stop.position,
               "reason": stop.reason, "state": dict(self.state)}

    def on_error(self, exc: TeaError) -> Iterator[Event]:
        yield {"type": "error", "node": getattr(exc, "node", None), "error": exc.to_dict(),
               "state": dict(self.state)}

    def invoke(self) -> dict[str, Any]:
        for _ in self.stream():
            pass
        return self.state
