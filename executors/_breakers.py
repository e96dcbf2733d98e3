"""Circuit breakers per branch target, on pybreaker's state machine.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole call,
which would serialise every branch sharing a target (all items of a
dynamic_parallel node). So a branch asks ``admit()`` before its attempt, runs
unlocked, and ``record()``s the outcome afterwards by replaying it through
``call``: pybreaker still counts failures, trips at the threshold and moves
open → half-open → closed. While half-open, one attempt at a time is let through
as the trial.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Literal

import pybreaker

from executors.base import BranchResult, BreakerPolicy, ErrorInfo
from tea.errors import CircuitOpen

__all__ = ["BreakerRegistry", "TargetBreaker", "Ticket"]

Ticket = Literal["closed", "trial"]
"""How an attempt was admitted: normally, or as the trial of a half-open breaker."""

_NOT_THE_TARGETS_FAULT = frozenset({"Cancelled", "CircuitOpen"})


class _ReplayedFailure(Exception):
    """Carries a failed attempt's outcome through ``pybreaker.CircuitBreaker.call``."""


def _replay(success: bool) -> None:
    if not success:
        raise _ReplayedFailure


class TargetBreaker:
    """The breaker of one branch target. Thread-safe."""

    def __init__(self, target: str, policy: BreakerPolicy) -> None:
        self.target = target
        self._storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=policy.failure_threshold,
            reset_timeout=policy.reset_timeout_seconds,
            state_storage=self._storage,
            name=target,
            throw_new_error_on_trip=False,
        )
        self._lock = threading.Lock()
        self._trial_running = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return str(self._breaker.current_state)

    def configure(self, policy: BreakerPolicy) -> None:
        """Apply a fan-out's policy (another edge may set other limits for the same target)."""
        self._breaker.fail_max = policy.failure_threshold
        self._breaker.reset_timeout = policy.reset_timeout_seconds

    def admit(self) -> Ticket | None:
        """Whether an attempt may run now; ``None`` means the circuit is open."""
        with self._lock:
            state = self._breaker.current_state
            if state == pybreaker.STATE_CLOSED:
                return "closed"
            if self._trial_running:
                return None
            if state == pybreaker.STATE_OPEN:
                if self._reopens_at() > datetime.now(UTC):
                    return None
                self._breaker.half_open()
            self._trial_running = True
            return "trial"

    def record(self, result: BranchResult, ticket: Ticket) -> None:
        """Count the outcome of an admitted attempt."""
        with self._lock:
            trial = ticket == "trial"
            if trial:
                self._trial_running = False
            if result.error is not None and result.error.type in _NOT_THE_TARGETS_FAULT:
                return
            if self._breaker.current_state != pybreaker.STATE_CLOSED and not trial:
                return
            with contextlib.suppress(_ReplayedFailure, pybreaker.CircuitBreakerError):
                self._breaker.call(_replay, result.success)

    def open_error(self, branch_id: str) -> ErrorInfo:
        """Why an attempt was refused."""
        left = max(0.0, (self._reopens_at() - datetime.now(UTC)).total_seconds())
        exc = CircuitOpen(
            f"circuit breaker for target '{self.target}' is open after "
            f"{self._breaker.fail_max} consecutive failures; next trial in {left:.1f}s",
            branch=branch_id,
        )
        return ErrorInfo.from_exception(exc)

    def _reopens_at(self) -> datetime:
        opened_at = self._storage.opened_at or datetime.now(UTC)
        return opened_at + timedelta(seconds=self._breaker.reset_timeout)


class BreakerRegistry:
    """One ``TargetBreaker`` per target, kept for the executor's life (one run). Thread-safe."""

    def __init__(self) -> None:
        self._breakers: dict[str, TargetBreaker] = {}
        self._lock = threading.Lock()

    def get(self, target: str, policy: BreakerPolicy) -> TargetBreaker:
        with self._lock:
            breaker = self._breakers.get(target)
            if breaker is None:
                breaker = self._breakers[target] = TargetBreaker(target, policy)
            else:
                breaker.configure(policy)
            return breaker

    def states(self) -> dict[str, str]:
        """Every target's breaker state (for events and ``tea inspect``)."""
        with self._lock:
            return {target: b.state for target, b in self._breakers.items()}
