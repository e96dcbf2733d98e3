"""Per-node error policy: retries with backoff, then fail, continue, or fall back.

Configured globally in ``settings.error_policy`` and per node in
``error_policy:`` (or the seed's ``retry:`` + ``fallback:`` keys). Retries run
on the one retry core (``executors.retry``), with the same keys and meanings as
a fan-out's ``settings.parallel.retry``::

    error_policy:
      max_attempts: 4         # tries in all, the first included (default 1)
      backoff_base_ms: 200    # 200, 400, 800 ... ms before the 2nd, 3rd, 4th try
      backoff_max_ms: 10000
      jitter: true            # each wait drawn uniformly between 0 and that
      retry_on: [TimeoutError, ConnectionError]   # error type names; empty = every error
      on_failure: checkpoint_and_exit   # | continue | fallback
      fallback: use_cached    # implies on_failure: fallback

``max_retries: N`` (the old spelling, retries after the first try) still works as
``max_attempts: N + 1``, with a deprecation warning in the log. The reference
dialect's ``on_error: {mode, max_retries, retry_delay, backoff_multiplier,
retryable_errors, fallback}`` maps onto the same policy, unchanged and silently.

Once the tries run out: ``checkpoint_and_exit`` fails the run (which saves a
checkpoint to resume from); ``continue`` records the error in
``state["__error__"]`` and goes on with the node's normal route; ``fallback``
records it and routes to the fallback node.

Recoveries are reported: each retry as one INFO line on ``tea.retry`` (the retry
core's), a fallback or a continue as one WARNING line on ``tea.policy``; each
record carries its stream event (``retry``, ``fallback``) as ``tea_event``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from executors.base import RetryPolicy
from executors.events import report
from executors.retry import RETRY_KEYS, Retrier, parse_retry
from tea.errors import Interrupted, RunError, SchemaError
from tea.keys import check_keys
from tea.yamlsrc import location_of

__all__ = ["NODE_RETRY", "ErrorPolicy", "Fallback", "global_policy", "parse_node_policy"]

log = logging.getLogger("tea.policy")

NODE_RETRY = RetryPolicy(max_attempts=1, backoff_base_ms=1000.0, backoff_max_ms=30_000.0)
"""A node's retry defaults: one try; when retried, waits from 1 s up to 30 s, with jitter."""

_POLICY_KEYS = frozenset({*RETRY_KEYS, "max_retries", "on_failure", "fallback"})
_ON_ERROR_KEYS = frozenset({"mode", "max_retries", "retry_delay", "backoff_multiplier",
                            "retryable_errors", "fallback", "capture_traceback"})
_ON_FAILURE = ("checkpoint_and_exit", "continue", "fallback")
# A plain threading.Event has no callback: the wait between tries looks at the stop
# flag this often.
_POLL_SECONDS = 0.05


class _StopFlag(Protocol):
    @property
    def requested(self) -> int | None: ...


class Waiting(Protocol):
    """What the wait between tries watches: the walk's cancel event and the run's stop flag."""

    @property
    def cancel(self) -> threading.Event: ...

    @property
    def stop(self) -> _StopFlag | None: ...


@dataclass(frozen=True)
class Fallback:
    """The node failed for good; go to ``target`` (``None``: the normal route) with ``update``."""

    target: str | None
    update: dict[str, Any]


@dataclass(frozen=True)
class ErrorPolicy:
    """How a node's failures are retried (``retry``) and what happens once they run out."""

    retry: RetryPolicy = NODE_RETRY
    on_failure: str = "checkpoint_and_exit"
    fallback: str | None = None

    def run(self, attempt: Callable[[], Any], node: str, scope: Waiting) -> Any:
        """Call ``attempt`` under the policy; returns its update or a ``Fallback``.

        The wait between tries is a safe point: a stop (SIGTERM, SIGINT) raises
        ``Interrupted`` there, a cancelled branch ends it with a ``RunError``.
        """
        retrier = Retrier(self.retry, sleep=lambda seconds: _wait(seconds, node, scope), node=node)
        try:
            return retrier.call(lambda _: attempt())
        except Interrupted:
            raise
        except Exception as exc:
            if self.on_failure == "checkpoint_and_exit":
                raise
            cause = exc.__cause__ or exc
            message = str(cause) if exc.__cause__ is not None else getattr(exc, "message", None)
            error = {
                "type": type(cause).__name__,
                "message": message or str(exc),
                "node": node,
                "attempts": retrier.attempts,
                "timestamp": datetime.now(UTC).isoformat(),
            }
            target = self.fallback if self.on_failure == "fallback" else None
            _report_fallback(node, target, error)
            return Fallback(target, {"__error__": error})


def _report_fallback(node: str, target: str | None, error: Mapping[str, Any]) -> None:
    """One WARNING line (and a ``fallback`` event) for a node that failed for good but
    whose run goes on."""
    attempts = error["attempts"]
    tries = f"after {attempts} attempts" if attempts > 1 else "on its only attempt"
    then = f"falling back to '{target}'" if target else "continuing (the error is in state.__error__)"
    first_line = (str(error["message"]).strip().splitlines() or [""])[0]
    event = {
        "type": "fallback", "node": node, "target": target, "attempts": attempts,
        "error": {"type": error["type"], "message": error["message"]},
    }
    report(log, logging.WARNING, f"node '{node}': failed {tries}: {error['type']}: {first_line}; {then}", event)


def _wait(seconds: float, node: str, scope: Waiting) -> None:
    """Sleep ``seconds`` unless the run is stopped (``Interrupted``) or the walk cancelled."""
    stop = scope.stop
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        cancelled = scope.cancel.wait(min(left, _POLL_SECONDS))
        if stop is not None and stop.requested is not None:
            raise Interrupted(stop.requested)
        if cancelled:
            raise RunError("cancelled while waiting to retry", node=node)
    if stop is not None and stop.requested is not None:
        raise Interrupted(stop.requested)


def _number(raw: Mapping[str, Any], key: str, default: float, *, minimum: float = 0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise SchemaError(f"error policy: '{key}' must be a number >= {minimum:g}",
                          location_of(raw, key))
    return float(value)


def _policy(raw: Mapping[str, Any], base: ErrorPolicy, path: str) -> ErrorPolicy:
    """An ``error_policy:`` (or ``retry:``) block on top of ``base``; ``path`` names it."""
    check_keys(raw, _POLICY_KEYS, path)
    fallback = raw.get("fallback", base.fallback)
    on_failure = raw.get("on_failure", "fallback" if "fallback" in raw else base.on_failure)
    if on_failure not in _ON_FAILURE:
        raise SchemaError(f"{path}: on_failure must be one of {', '.join(_ON_FAILURE)}",
                          location_of(raw, "on_failure"), path=f"{path}.on_failure")
    if on_failure == "fallback" and not fallback:
        raise SchemaError(f"{path}: on_failure: fallback needs 'fallback: <node>'",
                          location_of(raw), path=path)
    retry = parse_retry(raw, base.retry, path, location_of)
    return ErrorPolicy(retry=retry, on_failure=on_failure, fallback=fallback)


def _on_error(raw: Mapping[str, Any], base: ErrorPolicy, node: str) -> ErrorPolicy:
    """The reference dialect's ``on_error:`` block, read as it always was."""
    check_keys(raw, _ON_ERROR_KEYS, f"on_error of node '{node}'")
    mode = raw.get("mode", "raise")
    if mode not in ("raise", "graceful", "retry"):
        raise SchemaError(f"node '{node}': on_error.mode must be raise, graceful or retry",
                          location_of(raw, "mode"))
    fallback = raw.get("fallback")
    # As in the reference: graceful, and retry once its attempts run out, record the
    # error in __error__ and go on; raise fails the run.
    on_failure = "fallback" if fallback else "checkpoint_and_exit" if mode == "raise" else "continue"
    retries = int(_number(raw, "max_retries", 3)) if mode == "retry" else 0
    retry = RetryPolicy(
        max_attempts=retries + 1,
        backoff_base_ms=_number(raw, "retry_delay", 1.0) * 1000.0,
        backoff_max_ms=base.retry.backoff_max_ms,
        backoff_multiplier=_number(raw, "backoff_multiplier", 2.0, minimum=1),
        jitter=False,
        retry_on=tuple(raw.get("retryable_errors") or ()),
    )
    return ErrorPolicy(retry=retry, on_failure=on_failure, fallback=fallback)


def global_policy(settings: Mapping[str, Any]) -> ErrorPolicy | None:
    """``settings.error_policy``, or ``None`` when the workflow sets none."""
    raw = settings.get("error_policy")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SchemaError("settings.error_policy must be a mapping",
                          location_of(settings, "error_policy"))
    return _policy(raw, ErrorPolicy(), "settings.error_policy")


def parse_node_policy(
    raw: Mapping[str, Any], settings: Mapping[str, Any], node: str
) -> ErrorPolicy | None:
    """The error policy of one node, or ``None`` when nothing is configured."""
    base = global_policy(settings)
    if "on_error" in raw:
        on_error = raw["on_error"]
        if not isinstance(on_error, Mapping):
            raise SchemaError(f"node '{node}': on_error must be a mapping",
                              location_of(raw, "on_error"))
        return _on_error(on_error, base or ErrorPolicy(), node)
    policy = base
    for key in ("error_policy", "retry"):
        if key in raw:
            if not isinstance(raw[key], Mapping):
                raise SchemaError(f"node '{node}': {key} must be a mapping", location_of(raw, key))
            policy = _policy(raw[key], policy or ErrorPolicy(), f"nodes.{node}.{key}")
    if "fallback" in raw:
        if not isinstance(raw["fallback"], str):
            raise SchemaError(f"node '{node}': fallback must be a node name",
                              location_of(raw, "fallback"))
        policy = replace(policy or ErrorPolicy(), fallback=raw["fallback"], on_failure="fallback")
    return policy
