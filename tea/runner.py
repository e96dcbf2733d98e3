"""The walk: one loop for the main path of a run, its branches, subgraphs and resume.

``walk`` yields events (plain dicts) and, when it stops before the end, one
``Stop``. What a run adds to it (interrupts, signals, checkpoints, journals)
comes through one ``Observer``; a branch walks with the no-op default.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tea.errors import Interrupted, Location, NodeError, RecursionLimitError, RunError
from tea.fanout import Journal, run_fanout
from tea.graph import END, START, Graph, Node
from tea.nodes import run_body
from tea.policy import Fallback
from tea.routing import next_node
from tea.state import CYCLIC, MAX_NESTING, merge, unsaveable

if TYPE_CHECKING:
    from executors.base import BranchResult
    from tea.scope import Scope

__all__ = ["Cursor", "Event", "Observer", "Stop", "unsaveable_error", "walk"]

Event = dict[str, Any]
Steps = Generator[Event, None, "Stop | None"]


@dataclass(frozen=True, slots=True)
class Stop:
    """Why and where a walk stopped before the end.

    ``reason`` is ``interrupt_before``, ``interrupt_after`` or ``signal`` (then
    ``signum`` is the signal's number).
    """

    node: str
    position: str
    reason: str
    signum: int | None = None

    @property
    def label(self) -> str:
        """The reason as events print it (``signal:15`` for a signal)."""
        return f"signal:{self.signum}" if self.reason == "signal" else self.reason


@dataclass(slots=True)
class Cursor:
    """Where a walk is: the node about to run (``before``) or just run (``after``)."""

    node: str
    position: str = "before"
    step: int = 0
    pending: dict[str, list[BranchResult]] = field(default_factory=dict)
    """Fan-out results waiting for their fan-in node, by fan-in name."""
    skip_interrupt: bool = False
    fallback: str | None = None


class Observer:
    """What a run adds to a walk. Every method is a no-op here (a branch's walk)."""

    interrupt_before: frozenset[str] = frozenset()
    interrupt_after: frozenset[str] = frozenset()

    def stop_requested(self) -> int | None:
        """The number of a signal asking the run to stop, else ``None``."""
        return None

    def node_done(self, node: str) -> None:
        """``node``'s update is merged (its fan-outs have not run yet)."""

    def journal(self, fanout: str) -> Journal | None:
        """Where the fan-out at ``fanout`` keeps its finished branches (``None``: nowhere)."""
        return None

    def fanout_done(self, fanout: str) -> None:
        """Every branch of the fan-out at ``fanout`` has a result."""

    @property
    def watching(self) -> bool:
        """Whether ``branch_event`` wants the branch events as they happen."""
        return False

    def branch_event(self, event: Event) -> None:
        """A ``branch_start`` or ``branch_end`` event, as it happens (the walk yields it
        later, once the fan-out is over): for progress displays."""


NO_OBSERVER = Observer()


def walk(
    graph: Graph,
    scope: Scope,
    state: dict[str, Any],
    cursor: Cursor,
    *,
    stop_at: str | None = None,
    observer: Observer = NO_OBSERVER,
    detail: frozenset[str] = frozenset(),
) -> Iterator[Event | Stop]:
    """Walk the graph from ``cursor`` until ``__end__`` or ``stop_at`` (exclusive).

    Semantics, per step:
      1. a requested stop (signal) or an interrupt before the node stops the walk
         *before* it runs (a resume runs it);
      2. the node's body runs and its update is merged (reducers apply; a value
         that contains itself fails the node instead); a dynamic_parallel
         node's body is its fan-out;
      3. an interrupt after the node stops the walk *after* it (a resume goes on);
      4. the node's fan-outs run; their results wait for their fan-in node,
         which receives them as ``parallel_results`` (declaration order);
      5. the route picks the next node (``tea.routing``).
    ``state`` is updated in place. ``detail`` adds ``node_start`` and ``state`` events.
    """
    steps = _Steps(graph, scope, state, cursor, observer, detail)
    while cursor.node not in (END, stop_at):
        name = cursor.node
        if cursor.position == "before":
            stop = steps.before(name)
            if stop is None and name != START:
                stop = yield from steps.run_node(graph.nodes[name])
            if stop is None:
                cursor.position = "after"
                stop = steps.after(name)
            if stop is not None:
                yield stop
                return
        if cursor.fallback is not None:
            cursor.node, cursor.fallback, cursor.position = cursor.fallback, None, "before"
            continue
        if graph.route_of(name).fanouts:
            stop = yield from steps.fan_out(name)
            if stop is not None:
                yield stop
                return
        cursor.node, cursor.position = next_node(graph, name, state, scope), "before"


class _Steps:
    """The steps of ``walk``, sharing one walk's graph, scope, state and cursor."""

    def __init__(self, graph: Graph, scope: Scope, state: dict[str, Any], cursor: Cursor,
                 observer: Observer, detail: frozenset[str]) -> None:
        self.graph = graph
        self.scope = scope
        self.state = state
        self.cursor = cursor
        self.observer = observer
        self.detail = detail
        self.recent: deque[str] = deque(maxlen=64)

    def before(self, name: str) -> Stop | None:
        """Step 1: stop for a signal or an interrupt, else count the step against the walk's
        ``recursion_limit`` and the run's step budget (``scope.budget``, which the walk's
        branches and subgraphs share)."""
        cursor, observer = self.cursor, self.observer
        signum = observer.stop_requested()
        if signum is not None:
            return Stop(name, "before", "signal", signum)
        if self.scope.cancel.is_set():
            raise RunError("cancelled", node=name)
        if name != START and not cursor.skip_interrupt and (
            name in observer.interrupt_before or self.graph.nodes[name].interrupt == "before"
        ):
            return Stop(name, "before", "interrupt_before")
        cursor.skip_interrupt = False
        cursor.step += 1
        limit = self.graph.recursion_limit
        if cursor.step > limit:
            raise RecursionLimitError(
                f"recursion limit of {limit} steps reached; the run keeps cycling through "
                f"{' -> '.join(_cycle(self.recent))}",
                node=name,
                hint="fix the loop's exit condition, or raise settings.recursion_limit",
            )
        if not self.scope.budget.spend():
            spent = RecursionLimitError(
                f"the run's step budget of {self.scope.budget.limit:,} node steps is spent (the main "
                "path, every branch and every subgraph count against it)",
                node=name,
                hint="raise settings.step_budget, or look for branches that do more work than meant",
            )
            spent.category = "setup"  # no retry and no fan-in can fix it: passed on as it is
            raise spent
        self.recent.append(name)
        return None

    def run_node(self, node: Node) -> Steps:
        """Step 2: run the body (or the node's fan-out) and merge its update."""
        name, cursor = node.name, self.cursor
        results = cursor.pending.pop(name, None)
        if "node_start" in self.detail:
            yield {"type": "node_start", "node": name, "step": cursor.step}
        started = time.perf_counter()
        self.scope.current_node = name
        events: list[Event] = []
        try:
            update = self._execute(node, results, self._collector(events))
        except Interrupted as stop:  # asked to stop while the node waited to retry
            signum: int | None = stop.signum
        except RunError:
            yield from events  # a failed fan-out's branch events come before its error
            signum = self.observer.stop_requested()
            if signum is None:
                raise
        else:
            if isinstance(update, Fallback):
                cursor.fallback, update = update.target, update.update
            if update and isinstance(update, dict):
                _refuse_unsaveable(update, node, self.graph)
            merge(self.state, update, self.graph.reducers)
            if results is not None and self.graph.keeps_results:
                self.state["parallel_results"] = results
            yield from events
            yield {"type": "node_end", "node": name, "update": update,
                   "duration_ms": (time.perf_counter() - started) * 1000.0}
            if "state" in self.detail:
                yield {"type": "state", "node": name, "state": dict(self.state)}
            return None
        if results is not None:  # the fan-in runs again on resume: keep what it was given
            cursor.pending[name] = results
        return Stop(name, "before", "signal", signum)

    def _collector(self, events: list[Event]) -> Callable[[Event], None]:
        """Where a fan-out's branch events go: kept for the walk, and shown to the observer."""
        if not self.observer.watching:
            return events.append
        live = self.observer.branch_event

        def collect(event: Event) -> None:
            events.append(event)
            live(event)

        return collect

    def _execute(self, node: Node, results: list[BranchResult] | None, emit: Callable[[Event], None]) -> Any:
        if node.fanout is not None:
            fan = node.fanout
            self.cursor.pending[fan.fan_in] = run_fanout(
                fan, self.state, self.scope, emit, self.observer.journal(node.name)
            )
            self.observer.fanout_done(node.name)
            return None
        body = node.body
        if body is None:
            return None
        view = self.state if results is None else {**self.state, "parallel_results": results}
        try:
            if node.error_policy is not None:
                return node.error_policy.run(
                    lambda: run_body(body, view, self.scope, node.name, results), node.name, self.scope
                )
            return run_body(body, view, self.scope, node.name, results)
        except NodeError as exc:
            _locate(exc, self.graph, node)
            raise

    def after(self, name: str) -> Stop | None:
        """Step 3: tell the observer, then stop for an interrupt after the node."""
        if name == START:
            return None
        self.observer.node_done(name)
        if name in self.observer.interrupt_after or self.graph.nodes[name].interrupt == "after":
            return Stop(name, "after", "interrupt_after")
        return None

    def fan_out(self, name: str) -> Steps:
        """Step 4: run the node's static fan-outs; results wait for their fan-in."""
        for fan in self.graph.route_of(name).fanouts:
            events: list[Event] = []
            try:
                self.cursor.pending[fan.fan_in] = run_fanout(
                    fan, self.state, self.scope, self._collector(events), self.observer.journal(name)
                )
            except RunError:
                yield from events
                signum = self.observer.stop_requested()
                if signum is None:
                    raise
                # stopped mid fan-out: a resume runs the unfinished branches
                return Stop(name, "after", "signal", signum)
            self.observer.fanout_done(name)
            yield from events
        return None


def _cycle(recent: deque[str]) -> list[str]:
    """The repeating tail of the visited nodes (the loop that hit the limit)."""
    seq = list(recent)
    for size in range(1, len(seq) // 2 + 1):
        if seq[-size:] == seq[-2 * size : -size]:
            return seq[-size:]
    return seq[-10:]


def unsaveable_error(update: Mapping[str, Any], node: str) -> NodeError | None:
    """The ``NodeError`` for an update of ``node`` holding a value that contains itself
    (or nests past ``MAX_NESTING``), which could never be saved or printed; else ``None``."""
    found = unsaveable(update)
    if found is None:
        return None
    key, why = found
    return NodeError(
        f"the value of '{key}' cannot be saved: {why}", node=node,
        hint="return plain data: a dict or list must not hold itself (copy the inner part)"
        if why == CYCLIC else f"flatten the data: values may nest {MAX_NESTING} levels deep",
    )


def _refuse_unsaveable(update: dict[str, Any], node: Node, graph: Graph) -> None:
    """The node fails before such an update reaches the state, so the run's checkpoint
    keeps the state it had."""
    error = unsaveable_error(update, node.name)
    if error is not None:
        _locate(error, graph, node)
        raise error


def _locate(exc: NodeError, graph: Graph, node: Node) -> None:
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
