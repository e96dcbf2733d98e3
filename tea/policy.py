"""Per-node error policy: retries with backoff, then fail, continue, or fall back.

Configured globally in ``settings.error_policy`` and per node in
``error_policy:`` (or the seed's ``retry:`` + ``fallback:`` keys); the reference
dialect's ``on_error: {mode, max_retries, retry_delay, backoff_multiplier,
retryable_errors, fallback}`` maps onto the same thing::

    error_policy:
      max_retries: 3          # retries after the first attempt
      backoff_base_ms: 200    # 200, 400, 800 ... ms (tenacity's exponential wait)
      backoff_max_ms: 10000
      jitter: true
      retry_on: [TimeoutError, ConnectionError]   # error type names; empty = every error
      on_failure: checkpoint_and_exit   # | continue | fallback
      fallback: use_cached    # implies on_failure: fallback

Once retries are exhausted: ``checkpoint_and_exit`` fails the run (which saves
a checkpoint to resume from); ``continue`` records the error in
``state["__error__"]`` and goes on with the node's normal route; ``fallback``
records it and routes to the fallback node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tea.errors import Interrupted, RunError, SchemaError
from tea.yamlsrc import location_of

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["ErrorPolicy", "Fallback", "parse_node_policy"]

_POLICY_KEYS = frozenset({"max_retries", "backoff_base_ms", "backoff_max_ms", "jitter",
                          "retry_on", "on_failure", "fallback"})
_ON_ERROR_KEYS = frozenset({"mode", "max_retries", "retry_delay", "backoff_multiplier",
                            "retryable_errors", "fallback", "capture_traceback"})
_ON_FAILURE = ("checkpoint_and_exit", "continue", "fallback")


@dataclass(frozen=True)
class Fallback:
    """The node failed for good; go to ``target`` (``None``: the normal route) with ``update``."""

    target: str | None
    update: dict[str, Any]


@dataclass(frozen=True)
class ErrorPolicy:
    max_retries: int = 0
    backoff_base_ms: float = 1000.0
    backoff_max_ms: float = 30_000.0
    backoff_multiplier: float = 2.0
    jitter: bool = True
    retry_on: tuple[str, ...] = ()
    on_failure: str = "checkpoint_and_exit"
    fallback: str | None = None

    def retryable(self, exc: BaseException) -> bool:
        """Named in ``retry_on`` (the error's type or its cause's); with no ``retry_on``,
        every error except those an action marks as not worth retrying (HTTP 4xx)."""
        if not self.retry_on:
            return getattr(exc, "retryable", True) is not False
        names = {t.__name__ for t in type(exc).__mro__}
        cause = exc.__cause__
        if cause is not None:
            names |= {t.__name__ for t in type(cause).__mro__}
        return bool(names & set(self.retry_on))

    def run(self, attempt: Callable[[], Any], node: str, scope: Scope) -> Any:
        """Call ``attempt`` under the policy; returns its update or a ``Fallback``."""
        import tenacity

        wait: Any = tenacity.wait_exponential(
            multiplier=self.backoff_base_ms / 1000.0,
            exp_base=self.backoff_multiplier,
            max=self.backoff_max_ms / 1000.0,
        )
        if self.jitter:
            wait = wait + tenacity.wait_random(0, self.backoff_base_ms / 1000.0)
        def sleep(seconds: float) -> None:
            # The wait between attempts is a safe point: a stop (SIGTERM, SIGINT) or a
            # cancelled branch ends it at once instead of sitting out the backoff.
            stop = scope.stop
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                cancelled = scope.cancel.wait(min(left, 0.05))
                if stop is not None and stop.requested is not None:
                    raise Interrupted(stop.requested)
                if cancelled:
                    raise RunError("cancelled while waiting to retry", node=node)
            if stop is not None and stop.requested is not None:
                raise Interrupted(stop.requested)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception(self.retryable),
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Interrupted:
            raise
        except Exception as exc:
            if self.on_failure == "checkpoint_and_exit":
                raise
            attempts = retrying.statistics.get("attempt_number", 1)
            cause = exc.__cause__ or exc
            error = {
                "type": type(cause).__name__,
                "message": str(cause) if exc.__cause__ is not None else (getattr(exc, "message", None) or str(exc)),
                "node": node,
                "attempts": attempts,
                "timestamp": datetime.now(UTC).isoformat(),
            }
            target = self.fallback if self.on_failure == "fallback" else None
            return Fallback(target, {"__error__": error})


def _number(raw: Mapping[str, Any], key: str, default: float, *, minimum: float = 0) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise SchemaError(f"error policy: '{key}' must be a number >= {minimum:g}", location_of(raw, key))
    return float(value)


def _policy(raw: Mapping[str, Any], base: ErrorPolicy, what: str) -> ErrorPolicy:
    from tea.node_loader import check_keys

    check_keys(raw, _POLICY_KEYS, what)
    retry_on = raw.get("retry_on", list(base.retry_on))
    if not isinstance(retry_on, list) or not all(isinstance(t, str) for t in retry_on):
        raise SchemaError(f"{what}: retry_on must be a list of error type names", location_of(raw, "retry_on"))
    fallback = raw.get("fallback", base.fallback)
    on_failure = raw.get("on_failure", "fallback" if "fallback" in raw else base.on_failure)
    if on_failure not in _ON_FAILURE:
        raise SchemaError(f"{what}: on_failure must be one of {', '.join(_ON_FAILURE)}",
                          location_of(raw, "on_failure"))
    if on_failure == "fallback" and not fallback:
        raise SchemaError(f"{what}: on_failure: fallback needs 'fallback: <node>'", location_of(raw))
    return ErrorPolicy(
        max_retries=int(_number(raw, "max_retries", base.max_retries)),
        backoff_base_ms=_number(raw, "backoff_base_ms", base.backoff_base_ms),
        backoff_max_ms=_number(raw, "backoff_max_ms", base.backoff_max_ms),
        jitter=bool(raw.get("jitter", base.jitter)),
        retry_on=tuple(retry_on),
        on_failure=on_failure,
        fallback=fallback,
    )


def _on_error(raw: Mapping[str, Any], base: ErrorPolicy, node: str) -> ErrorPolicy:
    from tea.node_loader import check_keys

    check_keys(raw, _ON_ERROR_KEYS, f"on_error of node '{node}'")
    mode = raw.get("mode", "raise")
    if mode not in ("raise", "graceful", "retry"):
        raise SchemaError(f"node '{node}': on_error.mode must be raise, graceful or retry",
                          location_of(raw, "mode"))
    fallback = raw.get("fallback")
    # As in the reference: graceful, and retry once its attempts run out, record the
    # error in __error__ and go on; raise fails the run.
    on_failure = "fallback" if fallback else "checkpoint_and_exit" if mode == "raise" else "continue"
    retries = int(_number(raw, "max_retries", 3 if mode == "retry" else 0)) if mode == "retry" else 0
    return ErrorPolicy(
        max_retries=retries,
        backoff_base_ms=_number(raw, "retry_delay", 1.0) * 1000.0,
        backoff_max_ms=base.backoff_max_ms,
        backoff_multiplier=_number(raw, "backoff_multiplier", 2.0, minimum=1),
        jitter=False,
        retry_on=tuple(raw.get("retryable_errors") or ()),
        on_failure=on_failure,
        fallback=fallback,
    )


def global_policy(settings: Mapping[str, Any]) -> ErrorPolicy | None:
    raw = settings.get("error_policy")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SchemaError("settings.error_policy must be a mapping", location_of(settings, "error_policy"))
    return _policy(raw, ErrorPolicy(), "settings.error_policy")


def parse_node_policy(raw: Mapping[str, Any], settings: Mapping[str, Any], node: str) -> ErrorPolicy | None:
    """The error policy of one node, or ``None`` when nothing is configured."""
    base = global_policy(settings)
    if "on_error" in raw:
        on_error = raw["on_error"]
        if not isinstance(on_error, Mapping):
            raise SchemaError(f"node '{node}': on_error must be a mapping", location_of(raw, "on_error"))
        return _on_error(on_error, base or ErrorPolicy(), node)
    policy = base
    for key in ("error_policy", "retry"):
        if key in raw:
            if not isinstance(raw[key], Mapping):
                raise SchemaError(f"node '{node}': {key} must be a mapping", location_of(raw, key))
            policy = _policy(raw[key], policy or ErrorPolicy(), f"{key} of node '{node}'")
    if "fallback" in raw:
        if not isinstance(raw["fallback"], str):
            raise SchemaError(f"node '{node}': fallback must be a node name", location_of(raw, "fallback"))
        policy = replace(policy or ErrorPolicy(), fallback=raw["fallback"], on_failure="fallback")
    return policy
