"""A compiled graph as the executors' ``BranchProgram``: how one branch runs, wherever.

::

    executor ─► GraphProgram.run_branch(task, cancel)      (a thread, a worker process, a host)
                  state = BranchState(task.state, task.overrides)   an overlay: copy on first read
                  static branch:  walk from task.entry up to task.exit
                  dynamic branch: the fan-out node's item body (action, steps or subgraph)
                  ◄── the update (state.delta()): what the branch wrote or changed

The program pickles with cloudpickle (compiled code is rebuilt from source on
the other side) and carries the run's secrets to wherever the branch runs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from executors.base import BranchTask
from tea.errors import RunError
from tea.graph import Graph, ItemSpec
from tea.nodes import StepsBody, run_body
from tea.overlay import BranchState
from tea.runner import Cursor, walk
from tea.scope import Scope
from tea.secrets import Secrets
from tea.state import fast_copy
from tea.subset import workflow_files
from tea.templates import render_value

__all__ = ["GraphProgram", "run_to_end"]


class GraphProgram:
    """``graph`` bound to a run's ``secrets``; a ``PortableProgram``. Immutable, thread-safe."""

    def __init__(self, graph: Graph, secrets: Secrets | None = None) -> None:
        self.graph = graph
        self._secrets = secrets if secrets is not None else Secrets()

    @property
    def key(self) -> str:
        return self.graph.key

    @property
    def secrets(self) -> Mapping[str, Any]:
        return self._secrets

    def scope(self, cancel: threading.Event | None = None, depth: int = 0) -> Scope:
        """A fresh scope for one walk of this program (the caller closes it)."""
        return Scope(self.graph, self, secrets=self._secrets, cancel=cancel, depth=depth)

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Run one branch and return its update (``BranchProgram`` protocol)."""
        state = BranchState(task.state, task.overrides)
        scope = self.scope(cancel, depth=task.depth)
        try:
            if task.fanout is not None:
                return self._run_item(task.fanout, state, scope)
            for _ in walk(self.graph, scope, state, Cursor(task.entry), stop_at=task.exit):
                pass
            return state.delta()
        finally:
            scope.close()

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
            return state.delta()
        own = {each.item_var: state[each.item_var], each.index_var: state[each.index_var]}
        if isinstance(body, Graph):
            context = scope.template_context(state)
            sub_input = render_value(each.subgraph_input, context) if each.subgraph_input else {}
            sub_state = {**fast_copy(dict(body.initial_state)), **(sub_input or {})}
            subgraph = GraphProgram(body, self._secrets)
            return {**own, **run_to_end(subgraph, sub_state, scope.cancel, depth=scope.depth)}
        return {**own, **(run_body(body, state, scope, fanout) or {})}

    def workflow_files(
        self, entries: Sequence[str], exit: str | None, fanout: str | None
    ) -> dict[str, str] | None:
        """The branch as a standalone workflow (``PortableProgram`` protocol)."""
        return workflow_files(self.graph, entries, exit, fanout)


def run_to_end(
    program: GraphProgram, state: dict[str, Any], cancel: threading.Event | None = None, depth: int = 0
) -> dict[str, Any]:
    """Run a whole graph without events (a subgraph); returns ``state``, updated in place."""
    scope = program.scope(cancel, depth=depth)
    try:
        for _ in walk(program.graph, scope, state, Cursor(program.graph.entry)):
            pass
    finally:
        scope.close()
    return state
