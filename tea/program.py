"""A compiled graph as the executors' ``BranchProgram``: how one branch runs, wherever.

::

    executor ─► GraphProgram.run_branch(task, cancel)      (a thread, a worker process, a host)
                  state = BranchState(task.state, task.overrides)   an overlay: copy on first read
                  static branch:  walk from task.entry up to task.exit
                  dynamic branch: the fan-out node's item body (action, steps or subgraph)
                  ◄── the update (state.update_out()): what the branch wrote or changed,
                      plus the raw writes of its reducer keys, for the fan-in to merge

The program pickles with cloudpickle (compiled code is rebuilt from source on
the other side) and carries the run's secrets to wherever the branch runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from executors.base import BranchTask
from tea.errors import InputError, RunError
from tea.graph import Graph, ItemSpec
from tea.nodes import StepsBody, run_body
from tea.overlay import WRITES_KEY, BranchState
from tea.runner import Cursor, Stop, unsaveable_error, walk
from tea.scope import DEFAULT_STEP_BUDGET, Scope, StepBudget
from tea.secrets import Secrets
from tea.subgraph_node import SubgraphBody

__all__ = ["GraphProgram", "run_to_end", "step_budget"]


class GraphProgram:
    """``graph`` bound to a run's ``secrets`` and step ``budget``; a ``PortableProgram``.
    Immutable but for the budget it counts steps on, thread-safe.

    Without ``budget``, a new one of ``settings.step_budget`` steps: one per run (and
    per remote worker, which loads the workflow again); branches and subgraphs share it.
    """

    def __init__(self, graph: Graph, secrets: Secrets | None = None, budget: StepBudget | None = None) -> None:
        self.graph = graph
        self._secrets = secrets if secrets is not None else Secrets()
        self.budget = budget if budget is not None else StepBudget(step_budget(graph.settings))

    @property
    def key(self) -> str:
        return self.graph.key

    @property
    def secrets(self) -> Mapping[str, Any]:
        return self._secrets

    def scope(self, cancel: threading.Event | None = None, depth: int = 0) -> Scope:
        """A fresh scope for one walk of this program (the caller closes it)."""
        return Scope(self.graph, self, secrets=self._secrets, cancel=cancel, depth=depth, budget=self.budget)

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Run one branch and return its update (``BranchProgram`` protocol)."""
        state = BranchState(task.state, task.overrides)
        scope = self.scope(cancel, depth=task.depth)
        try:
            if task.fanout is not None:
                return self._run_item(task.fanout, state, scope)
            _drain(walk(self.graph, scope, state, Cursor(task.entry), stop_at=task.exit))
            return state.update_out()
        finally:
            scope.close()

    def run_subgraph(self, graph: Graph, state: dict[str, Any], scope: Scope) -> dict[str, Any]:
        """Run ``graph`` (a subgraph node's) to its end from ``state``, within ``scope``'s walk
        (``tea.subgraph_node.SubgraphRunner``); returns ``state``, updated in place."""
        program = GraphProgram(graph, self._secrets, scope.budget)
        return run_to_end(program, state, scope.cancel, depth=scope.depth)

    def _run_item(self, fanout: str, state: BranchState, scope: Scope) -> dict[str, Any]:
        """One item of a dynamic fan-out. Steps work on the branch state (the result reads
        through to the parent); an action's or a subgraph's result holds only the item,
        its index and what the body returned, as in the reference dialect."""
        node = self.graph.nodes.get(fanout)
        if node is None or node.fanout is None or node.fanout.each is None:
            raise RunError(f"no dynamic_parallel node '{fanout}' in this workflow")
        each: ItemSpec = node.fanout.each
        body = each.body
        if isinstance(body, StepsBody):
            body.run_on(state, scope, fanout, set())
            return _saveable(state.update_out(), fanout)
        own = {each.item_var: state[each.item_var], each.index_var: state[each.index_var]}
        if isinstance(body, SubgraphBody):
            result = body.final_state(state, scope, fanout, inherit=False)
        else:
            result = _saveable(run_body(body, state, scope, fanout) or {}, fanout)
        # The body's result is the item's own output: each reducer key in it is one write.
        reducers = self.graph.reducers
        writes = {k: [v] for k, v in result.items() if k in reducers}
        update = {**own, **result}
        return {**update, WRITES_KEY: writes} if writes else update

    def workflow_files(
        self, entries: Sequence[str], exit: str | None, fanout: str | None
    ) -> dict[str, str] | None:
        """The branch as a standalone workflow (``PortableProgram`` protocol)."""
        from tea.subset import workflow_files  # here: yaml loads only for the remote strategy

        return workflow_files(self.graph, entries, exit, fanout)


def _saveable(update: dict[str, Any], node: str) -> dict[str, Any]:
    """``update``, unless a value in it contains itself (``unsaveable_error``)."""
    error = unsaveable_error(update, node)
    if error is not None:
        raise error
    return update


def step_budget(settings: Mapping[str, Any]) -> int:
    """``settings.step_budget``: a positive integer, by default ``DEFAULT_STEP_BUDGET``."""
    value = settings.get("step_budget", DEFAULT_STEP_BUDGET)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"settings.step_budget must be a positive integer, got {value!r}",
                         hint=f"the default is {DEFAULT_STEP_BUDGET:,} node steps for the whole run")
    return value


def run_to_end(
    program: GraphProgram, state: dict[str, Any], cancel: threading.Event | None = None, depth: int = 0
) -> dict[str, Any]:
    """Run a whole graph without events (a subgraph); returns ``state``, updated in place."""
    scope = program.scope(cancel, depth=depth)
    try:
        _drain(walk(program.graph, scope, state, Cursor(program.graph.entry)))
    finally:
        scope.close()
    return state


def _drain(steps: Iterator[Any]) -> None:
    """Walk to the end. A walk inside a branch or a subgraph has no run to stop: an
    interrupt there is refused at load, and a stop that still comes is an error, never
    a branch that silently skips the rest of its nodes."""
    for item in steps:
        if isinstance(item, Stop):
            raise RunError(
                f"a branch or subgraph cannot stop at '{item.node}' ({item.label}): only the main "
                "path of a run can be interrupted", node=item.node,
            )
