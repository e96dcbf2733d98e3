"""Circuit breakers by name, on pybreaker's state machine: the one adapter of tea.

Used per branch target by ``executors.resilience`` and per host by the remote
strategy::

    breaker = breakers.get("api", policy)       # one Breaker per name, kept for a run
    ticket = breaker.admit()                    # None: open, refuse the attempt
    ... run the attempt, unlocked ...
    breaker.record(ticket, success)             # True / False / None (not the target's fault)

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole call,
which would serialise every attempt sharing a name (all items of a
dynamic_parallel node). So an attempt is admitted first, runs unlocked, and its
outcome is replayed through ``call`` afterwards: pybreaker still counts the
failures, trips at the threshold and moves open → half-open → closed. While
half-open, one attempt at a time is let through as the trial.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Literal

from executors.base import BreakerPolicy

__all__ = ["Breaker", "BreakerRegistry", "Ticket"]

# pybreaker's state names, which its ``current_state`` returns.
_CLOSED, _OPEN = "closed", "open"

Ticket = Literal["closed", "trial"]
"""How an attempt was admitted: normally, or as the trial of a half-open breaker."""


class _ReplayedFailure(Exception):
    """Carries a failed attempt's outcome through ``pybreaker.CircuitBreaker.call``."""


def _replay(success: bool) -> None:
    if not success:
        raise _ReplayedFailure


class Breaker:
    """The breaker of one name (a branch target, a host). Thread-safe."""

    def __init__(self, name: str, policy: BreakerPolicy) -> None:
        # Imported with the first breaker, not with this module: with tornado installed,
        # pybreaker imports it and asyncio (~25 ms) that a run without breakers never needs.
        import pybreaker

        self.name = name
        self._storage = pybreaker.CircuitMemoryStorage(_CLOSED)
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=policy.failure_threshold,
            reset_timeout=policy.reset_timeout_seconds,
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self._lock = threading.Lock()
        self._trial_running = False
        self._replay_errors: tuple[type[Exception], ...] = (_ReplayedFailure, pybreaker.CircuitBreakerError)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return str(self._breaker.current_state)

    @property
    def failure_threshold(self) -> int:
        return int(self._breaker.fail_max)

    def configure(self, policy: BreakerPolicy) -> None:
        """Apply a new policy (another fan-out may set other limits for the same name)."""
        self._breaker.fail_max = policy.failure_threshold
        self._breaker.reset_timeout = policy.reset_timeout_seconds

    def available(self) -> bool:
        """Whether ``admit()`` would let an attempt through now (it changes nothing)."""
        with self._lock:
            state = self._breaker.current_state
            if state == _CLOSED:
                return True
            if self._trial_running:
                return False
            return state != _OPEN or self.seconds_to_trial() == 0.0

    def admit(self) -> Ticket | None:
        """Let an attempt through, or ``None`` when the circuit is open (or its one trial
        is already running). Every admitted attempt must be ``record``-ed."""
        with self._lock:
            state = self._breaker.current_state
            if state == _CLOSED:
                return "closed"
            if self._trial_running:
                return None
            if state == _OPEN:
                if self.seconds_to_trial() > 0.0:
                    return None
                self._breaker.half_open()
            self._trial_running = True
            return "trial"

    def record(self, ticket: Ticket, success: bool | None) -> None:
        """Count the outcome of an attempt admitted with ``ticket``: ``True`` or ``False``,
        or ``None`` when the attempt says nothing about the name (it was cancelled)."""
        with self._lock:
            trial = ticket == "trial"
            if trial:
                self._trial_running = False
            if success is None:
                return
            if self._breaker.current_state != _CLOSED and not trial:
                return  # an attempt admitted before the breaker opened: already counted
            with contextlib.suppress(*self._replay_errors):
                self._breaker.call(_replay, success)

    def seconds_to_trial(self) -> float:
        """Seconds until an open breaker lets its trial through (0 when it would now)."""
        opened_at = self._storage.opened_at or datetime.now(UTC)
        reopens = opened_at + timedelta(seconds=self._breaker.reset_timeout)
        return max(0.0, (reopens - datetime.now(UTC)).total_seconds())


class BreakerRegistry:
    """One ``Breaker`` per name, kept for the owner's life (one run). Thread-safe."""

    def __init__(self) -> None:
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str, policy: BreakerPolicy) -> Breaker:
        """The breaker of ``name``, made on first use; ``policy`` applies from now on."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = Breaker(name, policy)
            else:
                breaker.configure(policy)
            return breaker

    def states(self) -> dict[str, str]:
        """Every breaker's state by name (for events and ``tea inspect``)."""
        with self._lock:
            return {name: b.state for name, b in self._breakers.items()}
