"""The one pybreaker adapter: admit, run unlocked, record; one trial at a time when half-open."""

from __future__ import annotations

import time

import pytest

from executors import BreakerPolicy
from executors.breakers import Breaker, BreakerRegistry

pytestmark = pytest.mark.timeout(30)


def trip(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        ticket = breaker.admit()
        assert ticket == "closed"
        breaker.record(ticket, False)


def test_trips_at_the_threshold_then_allows_one_trial():
    breaker = Breaker("api", BreakerPolicy(failure_threshold=2, reset_timeout_seconds=0.2))
    trip(breaker, 2)
    assert breaker.state == "open"
    assert not breaker.available()
    assert breaker.admit() is None
    assert 0 < breaker.seconds_to_trial() <= 0.2
    time.sleep(0.25)
    assert breaker.available()
    trial = breaker.admit()
    assert trial == "trial"
    assert not breaker.available()
    assert breaker.admit() is None  # one trial at a time
    breaker.record(trial, False)
    assert breaker.state == "open"
    time.sleep(0.25)
    trial = breaker.admit()
    assert trial == "trial"
    breaker.record(trial, True)
    assert breaker.state == "closed"


def test_an_outcome_that_says_nothing_is_not_counted():
    breaker = Breaker("api", BreakerPolicy(failure_threshold=1))
    ticket = breaker.admit()
    assert ticket is not None
    breaker.record(ticket, None)
    assert breaker.state == "closed"


def test_a_success_resets_the_count():
    breaker = Breaker("api", BreakerPolicy(failure_threshold=2))
    trip(breaker, 1)
    ticket = breaker.admit()
    assert ticket is not None
    breaker.record(ticket, True)
    trip(breaker, 1)
    assert breaker.state == "closed"


def test_the_registry_keeps_one_breaker_per_name_with_the_latest_policy():
    registry = BreakerRegistry()
    first = registry.get("host-a", BreakerPolicy(failure_threshold=5))
    again = registry.get("host-a", BreakerPolicy(failure_threshold=1))
    assert again is first and first.failure_threshold == 1
    trip(first, 1)
    registry.get("host-b", BreakerPolicy())
    assert registry.states() == {"host-a": "open", "host-b": "closed"}
