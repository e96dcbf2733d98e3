"""The ``subgraph:`` node body: another workflow, run to its end as one node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tea.errors import NodeError, RunError
from tea.overlay import BranchState
from tea.state import Reduced, fast_copy, reduce_into
from tea.templates import render_value

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["SubgraphBody", "SubgraphRunner"]


@runtime_checkable
class SubgraphRunner(Protocol):
    """What runs a whole graph for a ``SubgraphBody``: the walk's program
    (``tea.program.GraphProgram``), so that bodies never import the runner."""

    def run_subgraph(self, graph: Any, state: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """Run ``graph`` from ``state`` to its end; returns the final state."""
        ...


class SubgraphBody:
    """``subgraph: other.yaml`` with ``input:`` and ``output:``: another workflow, run to its
    end as this node's body.

    Without ``input`` the subgraph works on this node's state (read through an overlay,
    as a branch does) and what it changed is the update (a key this graph reduces gets
    the subgraph's writes of it); with ``input`` it starts from its own ``initial_state``
    plus the rendered mapping, and its final state is an update like an action's.
    ``output`` maps it as an action's does (a key, or templates that see the final state
    as ``result``).
    """

    __slots__ = ("graph", "input", "output")

    def __init__(self, graph: Any, input: Any = None, output: Any = None) -> None:
        self.graph = graph
        self.input = input
        self.output = output

    def final_state(self, state: dict[str, Any], scope: Scope, node: str, *, inherit: bool) -> dict[str, Any]:
        """The subgraph run to its end from what this node gives it (``inherit``: this
        node's state when there is no ``input``; otherwise nothing but the input)."""
        initial = self.graph.initial_state
        start: dict[str, Any]
        if self.input is None and inherit:
            start = BranchState(state, {k: fast_copy(v) for k, v in initial.items() if k not in state})
        else:
            given = render_value(self.input, scope.template_context(state)) if self.input is not None else {}
            if not isinstance(given, Mapping):
                raise NodeError(f"a subgraph's input must give a mapping, got {type(given).__name__}", node=node)
            start = {**fast_copy(dict(initial)), **given}
        runner = scope.program
        if not isinstance(runner, SubgraphRunner):
            raise RunError("this program cannot run subgraphs", node=node)
        return runner.run_subgraph(self.graph, start, scope)

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        final = self.final_state(state, scope, node, inherit=True)
        if self.output is None:
            return _inherited(final, state, scope.graph.reducers) if isinstance(final, BranchState) else final
        if isinstance(self.output, str):
            return {self.output: dict(final)}
        context = {**scope.template_context(state), "result": final}
        return {key: render_value(value, context) for key, value in self.output.items()}


def _inherited(final: BranchState, state: dict[str, Any], reducers: Mapping[str, Any]) -> Reduced:
    """What a subgraph that worked on this state changed, as this state's update: a key this
    graph reduces gets the subgraph's writes of it (or its new value) through its reducer,
    never the subgraph's whole value again; any other key takes the subgraph's value."""
    out: dict[str, Any] = {}
    writes: dict[str, list[Any]] = {}
    for key, value in final.delta().items():
        reducer = reducers.get(key)
        if reducer is None:
            out[key] = value
            continue
        writes[key] = final.writes.get(key) or [value]
        reduced = {key: state[key]} if key in state else {}
        for write in writes[key]:
            reduce_into(reduced, key, write, reducer)
        out[key] = reduced[key]
    return Reduced(out, writes)
