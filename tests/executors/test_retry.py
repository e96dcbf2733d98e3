"""The one retry core: backoff, what is retried, the loop, and the YAML keys it reads."""

from __future__ import annotations

import logging

import pytest
import tenacity

from executors import ErrorInfo, RetryPolicy
from executors.retry import Retrier, backoff, parse_retry, retryable
from tea.errors import BranchTimeout, Cancelled, CircuitOpen, NodeError, SchemaError
from tea.yamlsrc import load_yaml, location_of

NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_ms=0, backoff_max_ms=0, jitter=False)


def wait_for(policy: RetryPolicy, attempt: int) -> float:
    state = tenacity.RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    return float(backoff(policy)(state))


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_is_exponential_and_capped():
    plain = RetryPolicy(backoff_base_ms=100, backoff_max_ms=350, jitter=False)
    assert [wait_for(plain, n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.35, 0.35]
    tripled = RetryPolicy(backoff_base_ms=100, backoff_max_ms=10_000, jitter=False,
                          backoff_multiplier=3)
    assert [round(wait_for(tripled, n), 6) for n in (1, 2, 3)] == [0.1, 0.3, 0.9]


def test_jitter_draws_between_zero_and_the_backoff():
    jittered = RetryPolicy(backoff_base_ms=100, backoff_max_ms=350, jitter=True)
    for n, ceiling in ((1, 0.1), (2, 0.2), (5, 0.35)):
        assert all(0 <= wait_for(jittered, n) <= ceiling for _ in range(50))


# -- what is retried -------------------------------------------------------------------------


def caused(exc: Exception, cause: Exception) -> Exception:
    try:
        raise exc from cause
    except Exception as raised:
        return raised


def test_retry_on_matches_the_error_its_bases_and_its_causes_at_both_levels():
    policy = RetryPolicy(retry_on=("ConnectionError",))
    exc = caused(NodeError("call failed", node="n"), ConnectionResetError("reset"))
    info = ErrorInfo.from_exception(exc)
    assert retryable(policy, exc) and retryable(policy, info)
    assert not retryable(policy, KeyError("k"))
    assert not retryable(policy, ErrorInfo.from_exception(KeyError("k")))
    assert retryable(RetryPolicy(retry_on=("TimeoutError",)), BranchTimeout("slow"))


def test_without_retry_on_every_error_but_the_hopeless_ones():
    policy = RetryPolicy()
    assert retryable(policy, ValueError("x"))
    for hopeless in (Cancelled("stop"), CircuitOpen("open"), KeyboardInterrupt()):
        assert not retryable(policy, hopeless)
    refused = NodeError("HTTP 404")
    refused.retryable = False  # type: ignore[attr-defined]
    assert not retryable(policy, refused)
    assert retryable(RetryPolicy(retry_on=("NodeError",)), refused)


# -- the loop --------------------------------------------------------------------------------


def test_exceptions_are_retried_then_the_last_is_raised():
    tries: list[int] = []

    def attempt(n: int) -> str:
        tries.append(n)
        raise ValueError(f"try {n}")

    retrier = Retrier(NO_WAIT)
    with pytest.raises(ValueError, match="try 3"):
        retrier.call(attempt)
    assert tries == [1, 2, 3]
    assert retrier.attempts == 3


def test_a_result_that_is_a_failure_is_retried_then_returned():
    def attempt(n: int) -> ErrorInfo | None:
        return None if n == 2 else ErrorInfo("ValueError", "no")

    retrier = Retrier(NO_WAIT)
    assert retrier.call(attempt, failure=lambda result: result) is None
    assert retrier.attempts == 2
    always = Retrier(NO_WAIT)
    assert always.call(lambda n: ErrorInfo("ValueError", str(n)), lambda r: r) == ErrorInfo(
        "ValueError", "3"
    )


def test_stop_ends_the_retries_and_sleep_sees_each_wait():
    waits: list[float] = []
    stopped = False

    def sleep(seconds: float) -> None:
        nonlocal stopped
        waits.append(seconds)
        stopped = True

    policy = RetryPolicy(max_attempts=5, backoff_base_ms=10, backoff_max_ms=10, jitter=False)
    retrier = Retrier(policy, sleep=sleep, stop=lambda: stopped)
    with pytest.raises(ValueError):
        retrier.call(lambda n: (_ for _ in ()).throw(ValueError(n)))
    assert waits == [0.01]
    assert retrier.attempts == 2


def test_one_attempt_calls_once_without_tenacity():
    retrier = Retrier(RetryPolicy(max_attempts=1))
    assert retrier.call(lambda n: n * 10) == 10
    assert retrier.attempts == 1


# -- the YAML keys ---------------------------------------------------------------------------


def parse(text: str, base: RetryPolicy | None = None) -> RetryPolicy:
    block = load_yaml(text, "flow.yaml")
    return parse_retry(block, base or RetryPolicy(), "settings.parallel.retry", location_of)


def test_every_key():
    policy = parse(
        "max_attempts: 4\nbackoff_base_ms: 5\nbackoff_max_ms: 50\njitter: false\n"
        "retry_on: TimeoutError\nother: left to the caller\n"
    )
    assert policy == RetryPolicy(4, 5.0, 50.0, False, ("TimeoutError",))


def test_the_old_max_retries_counts_retries_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="tea.retry"):
        policy = parse("max_retries: 2\n", base=RetryPolicy(backoff_base_ms=7))
    assert policy == RetryPolicy(max_attempts=3, backoff_base_ms=7)
    (record,) = caplog.records
    assert "flow.yaml:1" in record.getMessage()
    assert "deprecated; write max_attempts: 3" in record.getMessage()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("max_attempts: true\n", 1, "max_attempts must be an integer, not a boolean"),
        ("max_attempts: 0\n", 1, "must be at least 1"),
        ("max_retries: -1\n", 1, "must be at least 0"),
        ("jitter: 1\n", 1, "true or false"),
        ("retry_on: [1, 2]\n", 1, "list of error type names"),
        ("backoff_base_ms: -5\n", 1, "must not be negative"),
        ("backoff_base_ms: 500\nbackoff_max_ms: 100\n", 2, "not be below"),
        ("max_attempts: 2\nmax_retries: 1\n", 2, "keep max_attempts"),
    ],
)
def test_wrong_values_are_located(text, line, words):
    with pytest.raises(SchemaError) as caught:
        parse(text)
    assert (caught.value.location.file, caught.value.location.line) == ("flow.yaml", line)
    assert words in caught.value.message
    assert caught.value.path is not None and caught.value.path.startswith("settings.parallel.retry.")
