"""Fan-out dispatch: tasks to an executor, results back in declaration order.

Static fan-outs (``to: [a, b]`` + ``fan_in``) and ``type: dynamic_parallel``
nodes both end here. The runner never talks to a backend in any other way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from executors.base import BranchResult, BranchTask, ParallelConfig
from tea.errors import BranchError, NodeError
from tea.state import fast_copy
from tea.templates import Template, render_value

if TYPE_CHECKING:
    from tea.graph import Graph
    from tea.nodes import ActionBody, StepsBody
    from tea.scope import Scope

__all__ = ["DynamicParallelBody", "dispatch", "static_tasks"]

# Failures no retry or fan-in can help with: the message itself says what to fix.
_SETUP_ERRORS = frozenset({"RemoteSetupError", "AllHostsDown", "SerializationError"})

Emit = Callable[[dict[str, Any]], None]


def static_tasks(source: str, targets: tuple[str, ...], fan_in: str, state: dict[str, Any]) -> list[BranchTask]:
    """One task per target, sharing one deep copy of ``state`` (executors copy it again
    for each attempt, or serialise it, so a branch never sees another's writes)."""
    snapshot = fast_copy(state)
    return [
        BranchTask(
            branch_id=f"{source}[{target}]",
            entry=target,
            exit=fan_in,
            state=snapshot,
            index=index,
            target=target,
        )
        for index, target in enumerate(targets)
    ]


def dispatch(
    scope: Scope,
    fanout: str,
    tasks: list[BranchTask],
    config: ParallelConfig,
    emit: Emit,
    *,
    done: Mapping[str, BranchResult] | None = None,
    on_result: Callable[[BranchResult], None] | None = None,
) -> list[BranchResult]:
    """Run ``tasks`` on ``config.strategy``; results come back in declaration order.

    ``done`` holds results journaled by an earlier, interrupted attempt: those
    branches are not run again. A failed branch raises ``BranchError`` when
    ``on_branch_failure`` is ``fail``; with ``continue`` it reaches the fan-in.
    """
    finished: dict[str, BranchResult] = dict(done or {})
    todo = [t for t in tasks if t.branch_id not in finished]
    if todo:
        executor = scope.executor(config.strategy)
        program = scope.graph.with_secrets(scope.secrets)
        # The executor only reads ``cancel``: the scope's own event stops this fan-out
        # when the branch it runs in is cancelled. Calling ``run`` checks the whole batch
        # (a state that cannot be shipped fails here, before any branch_start).
        results = executor.run(program, todo, config, scope.cancel)
        for task in todo:
            emit({"type": "branch_start", "fanout": fanout, "branch": task.branch_id,
                  "strategy": config.strategy})
        for result in results:
            finished[result.branch_id] = result
            if on_result is not None:
                on_result(result)
            event: dict[str, Any] = {
                "type": "branch_end", "fanout": fanout, "branch": result.branch_id,
                "success": result.success, "attempts": result.attempts,
                "duration_ms": round(result.duration_ms, 3),
            }
            if result.host:
                event["host"] = result.host
            if result.error is not None:
                event["error"] = {"type": result.error.type, "message": result.error.message}
            emit(event)
    ordered = [finished[t.branch_id] for t in tasks if t.branch_id in finished]
    failed = [r for r in ordered if not r.success]
    if failed and config.on_branch_failure != "continue":
        first = failed[0]
        assert first.error is not None
        error = BranchError(
            f"{len(failed)} of {len(tasks)} branches failed; first: {first.branch_id}: "
            f"{first.error.type}: {first.error.message}",
            node=first.error.node,
            branch=first.branch_id,
            host=first.host,
            exit_status=first.error.exit_status,
            stderr_tail=first.error.stderr_tail,
            hint=None if first.error.type in _SETUP_ERRORS else
            "set settings.parallel.on_branch_failure: continue to let the fan-in see "
            "failed branches, or retry: {max_attempts: N} to retry them",
        )
        error.details = first.error.traceback
        raise error
    return ordered


@dataclass
class DynamicParallelBody:
    """``type: dynamic_parallel``: one branch per item, merged at ``fan_in``."""

    items: Any
    item_var: str
    index_var: str
    max_concurrency: Any
    fail_fast: bool | None
    fan_in: str
    config: ParallelConfig
    action: ActionBody | None = None
    steps: StepsBody | None = None
    subgraph: Graph | None = None
    subgraph_input: Any = None

    def tasks(self, state: dict[str, Any], scope: Scope, node: str) -> tuple[list[BranchTask], ParallelConfig]:
        context = scope.template_context(state)
        items = render_value(self.items, context)
        if isinstance(items, Mapping):
            items = list(items.items())
        if isinstance(items, str) or not hasattr(items, "__iter__"):
            raise NodeError(
                f"items must be a list, got {type(items).__name__}: {items!r:.80}", node=node
            )
        config = self.config
        limit = self.max_concurrency
        if isinstance(limit, Template):
            limit = limit.render(context)
        if limit is not None:
            if isinstance(limit, bool) or not str(limit).strip().isdigit() or int(limit) < 1:
                raise NodeError(f"max_concurrency must be a positive integer, got {limit!r}", node=node)
            config = replace(config, max_workers=int(limit))
        if self.fail_fast is not None:
            config = replace(config, fail_fast=self.fail_fast)
        tasks = [
            BranchTask(
                branch_id=f"{node}[{index}]",
                entry=node,
                exit=None,
                state={**fast_copy(state), self.item_var: item, self.index_var: index},
                index=index,
                target=node,
                scope=node,
            )
            for index, item in enumerate(items)
        ]
        return tasks, config

    def run(self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None) -> None:
        raise NodeError("dynamic_parallel runs through the runner's fan-out", node=node)

    def run_item(self, state: dict[str, Any], scope: Scope, node: str) -> dict[str, Any]:
        """Run the body for one item (inside a branch) and return the branch state."""
        from tea.nodes import run_body

        if self.steps is not None:
            update = self.steps.run(state, scope, node)
            return {**state, **(update or {})}
        if self.action is not None:
            update = run_body(self.action, state, scope, node) or {}
            return {self.item_var: state[self.item_var], self.index_var: state[self.index_var], **update}
        assert self.subgraph is not None
        from tea.runner import run_to_end

        context = scope.template_context(state)
        sub_input = render_value(self.subgraph_input, context) if self.subgraph_input else {}
        sub_state = {**fast_copy(self.subgraph.initial_state), **(sub_input or {})}
        final = run_to_end(self.subgraph.with_secrets(scope.secrets), sub_state, scope.cancel)
        return {self.item_var: state[self.item_var], self.index_var: state[self.index_var], **final}
