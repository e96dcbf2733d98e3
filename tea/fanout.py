"""All fan-out: a ``FanOut`` and a state become tasks, an executor runs them, and
the results come back in declaration order, ready for the fan-in.

Static fan-outs (``to: [a, b]`` + ``fan_in``) and ``type: dynamic_parallel``
nodes take the same path::

    FanOut + state ─► tasks: one shared input (a shallow snapshot of the state,
                      the same object for every branch) + each branch's overrides;
                      a static branch whose edge has a ``when:`` that does not hold
                      is left out
                   ─► journal: branches finished by an earlier attempt are not run again
                   ─► scope.executor(strategy).run(program, tasks, config)
                   ─► results (deltas) journaled as they finish, put back in
                      declaration order, each reading through to the shared input
                   ─► the branches' writes of reducer keys merged into the state,
                      branch by branch in declaration order (LangGraph's superstep)

A branch costs what it reads and writes, not what the state holds: nothing is
copied per branch, and a result carries only the branch's own updates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from executors.base import BranchResult, BranchTask, ParallelConfig
from tea.errors import BranchError, FanOutTooDeep, NodeError
from tea.graph import FanOut, ItemSpec
from tea.nodes import StepsBody
from tea.overlay import split_update
from tea.routing import edge_holds
from tea.state import Writes, reduce_into
from tea.templates import Template, TemplateError, render_value

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["MAX_DEPTH", "Journal", "run_fanout"]

MAX_DEPTH = 8
"""How deeply fan-outs may nest (a fan-out inside a branch of a fan-out...). The loader
refuses a fan-out that can reach its own source; this bounds what only shows at run
time (a routing function choosing the source again), before it can grow without end."""

Emit = Callable[[dict[str, Any]], None]


class Journal(Protocol):
    """Where a durable run keeps the finished branches of one fan-out."""

    def done(self) -> Mapping[str, BranchResult]:
        """Results an earlier, interrupted attempt of this fan-out recorded."""
        ...

    def record(self, result: BranchResult) -> None:
        """Keep ``result`` (durable by the next ``commit``)."""
        ...

    def commit(self) -> None:
        """Make every recorded result durable."""
        ...


def run_fanout(
    fan: FanOut,
    state: dict[str, Any],
    scope: Scope,
    emit: Emit,
    journal: Journal | None = None,
) -> list[BranchResult]:
    """Run the branches of ``fan`` from ``state``; results in declaration order (none when
    no branch's ``when:`` holds). Once every branch has finished, their writes of keys
    with a reducer are merged into ``state``.

    A failed branch raises ``BranchError`` when ``on_branch_failure`` is ``fail``;
    with ``continue`` it reaches the fan-in as a failed result.
    """
    depth = scope.depth + 1
    if depth > MAX_DEPTH:
        raise FanOutTooDeep(
            f"fan-outs nested {depth} deep (the limit is {MAX_DEPTH}): a branch keeps starting "
            "fan-outs, most likely by routing back to the one it belongs to",
            node=fan.source, location=fan.location,
            hint="route branches to their fan-in; loop back only from the fan-in or after it",
        )
    # The previous fan-in's results are not part of a new fan-out's input.
    shared = {k: v for k, v in state.items() if k != "parallel_results"}
    tasks, config = _tasks(fan, shared, scope)
    finished: dict[str, BranchResult] = dict(journal.done()) if journal is not None else {}
    todo = [t for t in tasks if t.branch_id not in finished]
    try:
        if todo:
            _dispatch(scope, fan.source, todo, config, emit, finished, journal)
    finally:
        if journal is not None:
            journal.commit()
    # A branch result reads through to the shared input, except an action's or a
    # subgraph's item result, which holds only what that body returned (the dialect's).
    base = shared if fan.each is None or isinstance(fan.each.body, StepsBody) else None
    ordered: list[BranchResult] = []
    writes: list[Writes] = []
    for task in tasks:
        result = finished.get(task.branch_id)
        if result is not None:
            update, written = split_update(result.update)
            ordered.append(replace(result, update=update, base=base) if written else result.with_base(base))
            writes.append(written)
    _raise_failures(ordered, len(tasks), config)
    _merge_writes(state, writes, scope.graph.reducers)
    return ordered


def _merge_writes(state: dict[str, Any], writes: list[Writes], reducers: Mapping[str, Any]) -> None:
    """Each branch's writes of reducer keys, through the reducers, branch by branch in
    declaration order: what LangGraph does with one superstep's writes."""
    for written in writes:
        for key, values in written.items():
            reducer = reducers.get(key)
            if reducer is not None:
                for value in values:
                    reduce_into(state, key, value, reducer)


def _dispatch(
    scope: Scope,
    source: str,
    todo: list[BranchTask],
    config: ParallelConfig,
    emit: Emit,
    finished: dict[str, BranchResult],
    journal: Journal | None,
) -> None:
    executor = scope.executor(config.strategy)
    # The executor only reads ``cancel``: the scope's own event stops this fan-out when
    # the walk it runs in is cancelled. Calling ``run`` checks the whole batch (a state
    # that cannot be shipped fails here, before any branch_start).
    total = len(todo)

    def started(task: BranchTask, where: Mapping[str, Any]) -> None:
        # From the backend's threads, as a worker takes the branch.
        emit({"type": "branch_start", "fanout": source, "branch": task.branch_id,
              "strategy": config.strategy, "total": total, **where})

    results = executor.run(scope.program, todo, config, scope.cancel, on_start=started)
    for result in results:
        finished[result.branch_id] = result
        # A cancelled branch did not finish: it is not journaled, so a resume runs it again.
        if journal is not None and (result.error is None or result.error.category != "cancelled"):
            journal.record(result)
        emit(_branch_end(source, result))


def _branch_end(source: str, result: BranchResult) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "branch_end", "fanout": source, "branch": result.branch_id,
        "success": result.success, "attempts": result.attempts,
        "duration_ms": round(result.duration_ms, 3),
    }
    for where in ("host", "thread", "pid"):  # where it ran
        value = getattr(result, where)
        if value is not None:
            event[where] = value
    if result.error is not None:
        error = result.error
        event["error"] = {"type": error.type, "message": error.message, "category": error.category}
    return event


def _raise_failures(ordered: list[BranchResult], total: int, config: ParallelConfig) -> None:
    failed = [r for r in ordered if not r.success]
    if not failed or config.on_branch_failure == "continue":
        return
    first = failed[0]
    assert first.error is not None
    # A setup failure's own message says what to fix: it is passed on, not wrapped again
    # by every fan-out it crosses.
    setup = first.error.category == "setup"
    error = BranchError(
        first.error.message if setup else
        f"{len(failed)} of {total} branches failed; first: {first.branch_id}: "
        f"{first.error.type}: {first.error.message}",
        node=first.error.node,
        branch=first.branch_id,
        host=first.host,
        exit_status=first.error.exit_status,
        stderr_tail=first.error.stderr_tail,
        hint=None if setup else
        "set settings.parallel.on_branch_failure: continue to let the fan-in see "
        "failed branches, or retry: {max_attempts: N} to retry them",
    )
    error.details = first.error.traceback
    if setup:
        error.category = "setup"
    raise error


def _tasks(fan: FanOut, shared: dict[str, Any], scope: Scope) -> tuple[list[BranchTask], ParallelConfig]:
    if fan.each is None:
        tasks = [
            BranchTask(branch_id=f"{fan.source}[{target}]", entry=target, exit=fan.fan_in,
                       state=shared, index=index, target=target, depth=scope.depth + 1)
            for index, target in enumerate(fan.targets)
            if _holds(fan, index, shared, scope)
        ]
        return tasks, fan.config
    try:
        return _item_tasks(fan, fan.each, shared, scope)
    except TemplateError as exc:
        raise NodeError(str(exc), node=fan.source, location=fan.location) from exc
    except NodeError as exc:
        if exc.location is None:
            exc.location = fan.location
        raise


def _item_tasks(
    fan: FanOut, each: ItemSpec, shared: dict[str, Any], scope: Scope
) -> tuple[list[BranchTask], ParallelConfig]:
    node = fan.source
    context = scope.template_context(shared)
    rendered = render_value(each.items, context)
    items = [] if rendered is None and each.none_is_empty else _items(rendered, node, scope.graph.max_branches)
    config = fan.config
    limit = each.max_concurrency
    if isinstance(limit, Template):
        limit = limit.render(context)
    if limit is not None:
        if isinstance(limit, bool) or not str(limit).strip().isdigit() or int(limit) < 1:
            raise NodeError(f"max_concurrency must be a positive integer, got {limit!r}", node=node)
        config = replace(config, max_workers=int(limit))
    if each.fail_fast is not None:
        config = replace(config, fail_fast=each.fail_fast)
    item_var, index_var = each.item_var, each.index_var
    tasks = [
        BranchTask(branch_id=f"{node}[{index}]", entry=node, exit=None, state=shared,
                   index=index, target=node, fanout=node,
                   overrides={item_var: item, index_var: index}, depth=scope.depth + 1)
        for index, item in enumerate(items)
    ]
    return tasks, config


def _holds(fan: FanOut, index: int, state: Mapping[str, Any], scope: Scope) -> bool:
    """Whether the edge to branch ``index`` has no ``when:``, or one that holds."""
    edge = fan.conditions[index] if fan.conditions else None
    if edge is None:
        return True
    try:
        return edge_holds(edge, state, scope)
    except TemplateError as exc:
        raise NodeError(f"the condition of the parallel edge to '{fan.targets[index]}' failed: {exc}",
                        node=fan.source, location=fan.location) from exc


_SEQUENCES = (list, tuple, range)


def _items(value: Any, node: str, limit: int) -> list[Any]:
    """The items of a dynamic fan-out: a list (a mapping gives its ``(key, value)`` pairs)."""
    items: list[Any]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, _SEQUENCES):
        items = list(value)
    else:
        raise NodeError(
            f"items must be a list, got {type(value).__name__}: {value!r:.80}", node=node,
            hint="items: \"{{ state.things }}\" where state.things is a list",
        )
    if len(items) > limit:
        raise NodeError(
            f"items has {len(items):,} entries, more than settings.parallel.max_branches ({limit:,})",
            node=node,
            hint="split the work, or raise settings.parallel.max_branches",
        )
    return items
