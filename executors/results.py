"""Building a branch's ``BranchResult``, the same way in every backend.

Every backend (thread, process, remote, the test double) makes its results here,
so a failed result always has the same shape::

    succeeded(task, update)            success, carrying the branch's update (a delta)
    failed(task, exc | ErrorInfo)      failure; update = the task's own overrides only
    cancelled(task)                    failure of category "cancelled" (fail_fast, a stop)
    with_stderr(info, text, source)    a worker's last stderr lines appended to the traceback

``where`` keywords (``thread``, ``pid``, ``host``) say where the branch ran; a worker
adds ``events=`` (what it captured while the branch ran: ``executors.events``).
"""

from __future__ import annotations

import traceback as tb
from dataclasses import replace
from typing import Any

from executors.base import BranchResult, BranchTask, ErrorInfo
from executors.events import replay
from tea.errors import Cancelled

__all__ = ["cancelled", "error_info", "failed", "finished", "succeeded", "with_stderr"]

_CANCELLED_MESSAGE = "cancelled before it finished (fail_fast, or the run was stopped)"


def error_info(exc: BaseException, *, traceback: bool = True) -> ErrorInfo:
    """``ErrorInfo`` for ``exc`` (its category included), with its formatted traceback
    unless ``traceback`` is false (an error made by the driver has no useful one)."""
    text = "".join(tb.format_exception(exc)) if traceback else None
    return ErrorInfo.from_exception(exc, text)


def succeeded(task: BranchTask, update: dict[str, Any], **where: Any) -> BranchResult:
    """A successful result for ``task`` carrying ``update``, the keys the branch wrote."""
    return BranchResult(
        task.branch_id, True, update, index=task.index, attempts=task.attempt, **where
    )


def failed(task: BranchTask, error: ErrorInfo | BaseException, **where: Any) -> BranchResult:
    """A failed result for ``task``: ``error`` (an exception becomes ``error_info(exc)``),
    and as update only the task's own overrides (a dynamic branch's item and index)."""
    info = error if isinstance(error, ErrorInfo) else error_info(error)
    return BranchResult(
        task.branch_id, False, dict(task.overrides), info, index=task.index,
        attempts=task.attempt, **where,
    )


def finished(
    result: BranchResult, *, attempts: int, duration_ms: float, breaker_state: str | None
) -> BranchResult:
    """``result`` as the final result of its branch: how many tries it took, how long, and
    its breaker's state. What its worker reported (``result.events``) is reported here,
    in the driver, before anyone sees the result, and left out of what is returned.
    (The constructor, not ``replace``: this runs once per branch.)"""
    replay(result.events)
    return BranchResult(
        result.branch_id, result.success, result.update, result.error, attempts, duration_ms,
        result.index, result.thread, result.pid, result.host, breaker_state, (), result.base,
    )


def cancelled(task: BranchTask, **where: Any) -> BranchResult:
    """The result of a branch stopped before it finished (category ``cancelled``)."""
    exc = Cancelled(_CANCELLED_MESSAGE, branch=task.branch_id)
    return failed(task, error_info(exc, traceback=False), **where)


def with_stderr(info: ErrorInfo, stderr: str, source: str = "the worker") -> ErrorInfo:
    """``info`` with ``stderr`` (what ``source`` wrote while it ran the branch) after its
    traceback; ``info`` unchanged when ``stderr`` is empty."""
    if not stderr.strip():
        return info
    text = f"{info.traceback or ''}\n--- stderr of {source} (last lines) ---\n{stderr.rstrip()}\n"
    return replace(info, traceback=text)
