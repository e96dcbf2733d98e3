"""One retry core, for a node's error policy and for a fan-out's branches alike.

::

    Retrier(policy, sleep=..., stop=..., node=..., branch=..., on_retry=...).call(attempt, failure=None)
      for n in 1 .. policy.max_attempts:  attempt(n)
        raises exc ──────────────► retried when retryable(policy, exc); else, or after
                                   the last try, exc is re-raised
        returns r, failure(r) is an ErrorInfo ─► retried when retryable(policy, info);
                                   else, or after the last try, r is returned
        before each wait: on_retry(RetryNotice) (default ``log_retry``: one INFO line
        on the ``tea.retry`` logger with its stream event: ``executors.events.report``)
        wait between tries: backoff(policy), through ``sleep`` (a cancel-aware sleep may
        end it early, or raise); ``stop()`` true: no further try

    parse_retry(block, base, path, locate): the YAML keys, with one meaning everywhere

tenacity runs the loop. The keys mean the same at both levels: ``max_attempts``
counts every try, the first included; ``backoff_base_ms`` is the wait before the
second try, doubling after each (``backoff_multiplier``), capped at
``backoff_max_ms``; ``jitter`` draws each wait uniformly between 0 and that
("full jitter", which spreads retries of many branches apart); ``retry_on`` names
error types matched against the error, its base classes and its causes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from executors.base import ErrorInfo, Locate, RetryPolicy, error_kinds
from executors.events import EVENT_KEY, report
from tea.errors import SchemaError

if TYPE_CHECKING:
    import tenacity

__all__ = [
    "EVENT_KEY",
    "NEVER_RETRIED",
    "RETRY_KEYS",
    "OnRetry",
    "Retrier",
    "RetryNotice",
    "backoff",
    "log_retry",
    "parse_retry",
    "retryable",
]

T = TypeVar("T")

NEVER_RETRIED = frozenset({"cancelled", "circuit_open", "setup"})
"""Error categories no retry can help: a stop, a refusing breaker, a setup mistake."""

RETRY_KEYS = ("max_attempts", "backoff_base_ms", "backoff_max_ms", "jitter", "retry_on")
"""The keys of a retry block, at every level."""

_OLD_MAX_ATTEMPTS = "max_retries"
"""The old spelling in tea's own blocks: retries after the first try (max_attempts - 1)."""

log = logging.getLogger("tea.retry")
_SUMMARY_CHARS = 240


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A try that failed and will be tried again after ``wait_seconds``.

    ``node`` and ``branch`` say what is retried, when the caller knows: a node's
    error policy names its node, a fan-out names the branch (and the failed
    result may name the node inside it that failed).
    """

    attempt: int
    """The try that failed, 1-based."""
    max_attempts: int
    error: ErrorInfo
    wait_seconds: float
    node: str | None = None
    branch: str | None = None

    def describe(self) -> str:
        """``node 'fetch': attempt 2/4 failed: ConnectionError: refused; retrying in 0.8 s``."""
        return (
            f"{self._subject()}attempt {self.attempt}/{self.max_attempts} failed: "
            f"{_summary(self.error)}; retrying in {_seconds(self.wait_seconds)}"
        )

    def event(self) -> dict[str, object]:
        """The ``retry`` stream event."""
        event: dict[str, object] = {"type": "retry"}
        node = self.node or self.error.node
        if node is not None:
            event["node"] = node
        if self.branch is not None:
            event["branch"] = self.branch
        event.update(
            attempt=self.attempt, max_attempts=self.max_attempts,
            error={"type": self.error.type, "message": self.error.message},
            wait_seconds=round(self.wait_seconds, 3),
        )
        return event

    def _subject(self) -> str:
        node = self.node or self.error.node
        if self.branch is not None:
            inner = f" (node '{node}')" if node is not None else ""
            return f"branch '{self.branch}'{inner}: "
        return f"node '{node}': " if node is not None else ""


OnRetry = Callable[[RetryNotice], None]


def log_retry(notice: RetryNotice) -> None:
    """Report a retry as one INFO line on the ``tea.retry`` logger, with its event
    (``executors.events.report``: in a worker, kept for the driver)."""
    report(log, logging.INFO, notice.describe(), notice.event())


def _summary(error: ErrorInfo) -> str:
    """The error in one short line: its message, led by its type unless the message already
    starts with the type or a cause's (``ValueError: boom`` of an engine error around it)."""
    message = (error.message.strip().splitlines() or [""])[0]
    named = any(message.startswith(f"{kind}:") for kind in (error.type, *error.kinds))
    text = message if named else f"{error.type}: {message}"
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


def _seconds(seconds: float) -> str:
    """``0.8 s``, or ``40 ms`` below a tenth of a second (where ``0.0 s`` would say nothing)."""
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def _root_error(exc: BaseException) -> ErrorInfo:
    """``exc`` as an ``ErrorInfo`` describing its cause (the user's own error, when an
    engine error wraps it), named for the node the engine error names."""
    cause = exc.__cause__ or exc
    info = ErrorInfo.from_exception(cause)
    node = getattr(exc, "node", None)
    return replace(info, node=node) if node is not None and info.node is None else info


def retryable(policy: RetryPolicy, error: ErrorInfo | BaseException) -> bool:
    """Whether ``policy`` tries ``error`` again (not counting the attempts left).

    Never for categories in ``NEVER_RETRIED``; with ``retry_on``, only errors one of
    whose kinds it names; without it, every other error except an exception that
    says ``retryable = False`` (an HTTP 4xx of an action).
    """
    if isinstance(error, ErrorInfo):
        category, kinds = error.category, error.kinds or (error.type,)
    else:
        if not isinstance(error, Exception):
            return False
        if not policy.retry_on and getattr(error, "retryable", None) is False:
            return False
        category, kinds = getattr(error, "category", None) or "error", error_kinds(error)
    if category in NEVER_RETRIED:
        return False
    return not policy.retry_on or any(name in kinds for name in policy.retry_on)


def backoff(policy: RetryPolicy) -> tenacity.wait.wait_base:
    """The wait between tries of ``policy`` (see the module docstring)."""
    import tenacity  # here, not at the top: it imports asyncio (and tornado when installed)

    base, cap = policy.backoff_base_ms / 1000.0, policy.backoff_max_ms / 1000.0
    if policy.jitter:
        return tenacity.wait_random_exponential(
            multiplier=base, max=cap, exp_base=policy.backoff_multiplier
        )
    return tenacity.wait_exponential(multiplier=base, max=cap, exp_base=policy.backoff_multiplier)


class Retrier:
    """Runs one operation under a ``RetryPolicy``; one per operation, not thread-safe.

    ``sleep`` waits between tries (a cancel-aware sleep returns early, or raises to
    end the operation with its own exception); ``stop`` is asked before each retry
    and ends the retries when true. ``on_retry`` hears of each retry before its wait
    (default ``log_retry``); ``node`` and ``branch`` name what is retried in it.
    ``attempts`` is the number of tries made, also when ``call`` raised.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        stop: Callable[[], bool] | None = None,
        on_retry: OnRetry = log_retry,
        node: str | None = None,
        branch: str | None = None,
    ) -> None:
        self.policy = policy
        self.attempts = 0
        self._sleep = sleep
        self._stop = stop
        self._on_retry = on_retry
        self._node = node
        self._branch = branch

    def call(
        self,
        attempt: Callable[[int], T],
        failure: Callable[[T], ErrorInfo | None] | None = None,
    ) -> T:
        """``attempt(n)`` for ``n`` = 1, 2, ... until it succeeds, is not retryable, or the
        tries run out; ``failure(result)`` says when a returned result is a failure."""
        if self.policy.max_attempts <= 1:
            self.attempts = 1
            return attempt(1)

        def one() -> T:
            self.attempts += 1
            return attempt(self.attempts)

        import tenacity  # here, not at the top: see backoff()

        on_result = partial(self._retry_result, failure)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=backoff(self.policy),
            retry=tenacity.retry_if_exception(self._retry_exception)
            | tenacity.retry_if_result(on_result),
            sleep=self._sleep,
            before_sleep=partial(self._report, failure),
            retry_error_callback=_last_outcome,
        )
        result: T = retrying(one)
        return result

    def _report(self, failure: Callable[[Any], ErrorInfo | None] | None, state: tenacity.RetryCallState) -> None:
        outcome, action = state.outcome, state.next_action
        assert outcome is not None and action is not None
        exc = outcome.exception()
        if exc is not None:
            error = _root_error(exc)
        else:
            found = failure(outcome.result()) if failure is not None else None
            if found is None:
                return
            error = found
        self._on_retry(RetryNotice(
            state.attempt_number, self.policy.max_attempts, error, action.sleep,
            node=self._node, branch=self._branch,
        ))

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop()

    def _retry_exception(self, exc: BaseException) -> bool:
        return not self._stopped() and retryable(self.policy, exc)

    def _retry_result(self, failure: Callable[[Any], ErrorInfo | None] | None, result: Any) -> bool:
        error = failure(result) if failure is not None else None
        return error is not None and not self._stopped() and retryable(self.policy, error)


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    """The last try's outcome once the tries run out: its result, or its exception raised."""
    assert state.outcome is not None
    return state.outcome.result()


def parse_retry(
    block: Mapping[str, Any], base: RetryPolicy, path: str, locate: Locate
) -> RetryPolicy:
    """The retry keys (``RETRY_KEYS``) of ``block`` on top of ``base``.

    Other keys are the caller's to check. The old ``max_retries`` (retries after the
    first try) is read as ``max_attempts = max_retries + 1`` with a deprecation
    warning logged. Raises ``SchemaError`` at the key at fault; ``path`` names the
    block (``settings.parallel.retry``, ``error_policy of node 'x'``).
    """
    changes: dict[str, Any] = {}
    if "max_attempts" in block:
        changes["max_attempts"] = _int(block, "max_attempts", path, locate, minimum=1)
    if _OLD_MAX_ATTEMPTS in block:
        changes["max_attempts"] = _old_max_retries(block, path, locate)
    for key in ("backoff_base_ms", "backoff_max_ms"):
        if key in block:
            changes[key] = _number(block, key, path, locate)
    if "jitter" in block:
        value = block["jitter"]
        if not isinstance(value, bool):
            raise _error(block, "jitter", path, locate, f"must be true or false, not {_kind(value)}")
        changes["jitter"] = value
    if "retry_on" in block:
        changes["retry_on"] = _names(block, "retry_on", path, locate)
    policy = replace(base, **changes)
    if policy.backoff_max_ms < policy.backoff_base_ms:
        key = "backoff_max_ms" if "backoff_max_ms" in block else "backoff_base_ms"
        raise _error(block, key, path, locate, "backoff_max_ms must not be below backoff_base_ms")
    return policy


def _old_max_retries(block: Mapping[str, Any], path: str, locate: Locate) -> int:
    if "max_attempts" in block:
        raise _error(
            block, _OLD_MAX_ATTEMPTS, path, locate,
            "and max_attempts both set the tries; keep max_attempts (the tries in all)",
        )
    attempts = _int(block, _OLD_MAX_ATTEMPTS, path, locate, minimum=0) + 1
    where = str(locate(block, _OLD_MAX_ATTEMPTS))
    if where not in _WARNED:  # a block inherited by every node is read once per node
        _WARNED.add(where)
        log.warning(
            "%s: %s.max_retries is deprecated; write max_attempts: %d instead "
            "(the tries in all, the first included)",
            where, path, attempts,
        )
    return attempts


_WARNED: set[str] = set()
"""Where a deprecated key was reported already (once per place and process)."""


def _error(
    block: Mapping[str, Any], key: str, path: str, locate: Locate, problem: str
) -> SchemaError:
    return SchemaError(f"{path}.{key} {problem}", locate(block, key), path=f"{path}.{key}")


def _kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a number"),
             (list, "a list"), (Mapping, "a mapping"))
    if value is None:
        return "null"
    return next((name for klass, name in kinds if isinstance(value, klass)), type(value).__name__)


def _int(block: Mapping[str, Any], key: str, path: str, locate: Locate, *, minimum: int) -> int:
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(block, key, path, locate, f"must be an integer, not {_kind(value)}")
    if value < minimum:
        raise _error(block, key, path, locate, f"must be at least {minimum}, not {value}")
    return value


def _number(block: Mapping[str, Any], key: str, path: str, locate: Locate) -> float:
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(block, key, path, locate, f"must be a number, not {_kind(value)}")
    if value < 0:
        raise _error(block, key, path, locate, f"must not be negative, not {value}")
    return float(value)


def _names(block: Mapping[str, Any], key: str, path: str, locate: Locate) -> tuple[str, ...]:
    value = block[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _error(block, key, path, locate, "must be a list of error type names")
    return tuple(value)
