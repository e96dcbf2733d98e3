"""A node's error policy: the one retry vocabulary, the reference dialect, and what happens after."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from executors import RetryPolicy
from tea.errors import Interrupted, NodeError, SchemaError
from tea.policy import NODE_RETRY, ErrorPolicy, Fallback, parse_node_policy
from tea.yamlsrc import load_yaml

NO_WAIT = {"backoff_base_ms": 0, "backoff_max_ms": 0}


def policy_of(node_text: str, settings_text: str = "") -> ErrorPolicy | None:
    settings = load_yaml(settings_text, "flow.yaml") if settings_text else {}
    return parse_node_policy(load_yaml(node_text, "flow.yaml"), settings, "fetch")  # type: ignore[arg-type]


@dataclass
class Stop:
    requested: int | None = None


@dataclass
class Waits:
    """What the wait between tries watches (a walk's scope, as far as the policy cares)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    stop: Stop | None = None


def failing(times: int, exc: Callable[[int], Exception]) -> Callable[[], Any]:
    tries = 0

    def attempt() -> Any:
        nonlocal tries
        tries += 1
        if tries <= times:
            raise exc(tries)
        return {"ok": tries}

    return attempt


def node_error(tries: int) -> Exception:
    try:
        raise ConnectionResetError(f"reset {tries}")
    except ConnectionResetError as cause:
        error = NodeError(f"call failed {tries}", node="fetch")
        error.__cause__ = cause
        return error


# -- reading the keys ------------------------------------------------------------------------


def test_error_policy_reads_the_retry_keys_of_every_level():
    policy = policy_of(
        "error_policy: {max_attempts: 4, backoff_base_ms: 200, backoff_max_ms: 5000,\n"
        "               jitter: false, retry_on: [TimeoutError], on_failure: continue}\n"
    )
    assert policy == ErrorPolicy(
        retry=RetryPolicy(4, 200.0, 5000.0, False, ("TimeoutError",)), on_failure="continue"
    )
    assert policy_of("name: fetch\n") is None
    assert ErrorPolicy().retry == NODE_RETRY


def test_the_old_max_retries_still_works_with_a_warning_naming_the_new_key(caplog):
    with caplog.at_level(logging.WARNING):
        policy = policy_of("error_policy: {max_retries: 2}\n")
    assert policy is not None and policy.retry.max_attempts == 3
    (record,) = caplog.records
    assert "nodes.fetch.error_policy.max_retries is deprecated" in record.getMessage()
    assert "max_attempts: 3" in record.getMessage()


def test_the_reference_on_error_block_is_read_unchanged_and_silently(caplog):
    with caplog.at_level(logging.WARNING):
        policy = policy_of(
            "on_error: {mode: retry, max_retries: 2, retry_delay: 0.5, backoff_multiplier: 3,\n"
            "           retryable_errors: [ValueError]}\n"
        )
    assert policy == ErrorPolicy(
        retry=RetryPolicy(
            max_attempts=3, backoff_base_ms=500.0, backoff_max_ms=30_000.0, jitter=False,
            retry_on=("ValueError",), backoff_multiplier=3.0,
        ),
        on_failure="continue",
    )
    assert caplog.records == []


def test_a_node_block_changes_only_what_it_names_of_the_global_one():
    policy = policy_of(
        "retry: {max_attempts: 5}\nfallback: cached\n",
        "error_policy: {backoff_base_ms: 20, retry_on: [OSError]}\n",
    )
    assert policy == ErrorPolicy(
        retry=RetryPolicy(5, 20.0, 30_000.0, True, ("OSError",)),
        on_failure="fallback",
        fallback="cached",
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("error_policy: {max_atempts: 2}\n", "did you mean 'max_attempts'?"),
        ("error_policy: {max_attempts: 0}\n", "max_attempts must be at least 1"),
        ("error_policy: {on_failure: explode}\n", "on_failure must be one of"),
        ("error_policy: {on_failure: fallback}\n", "needs 'fallback: <node>'"),
        ("on_error: {mode: sometimes}\n", "mode must be raise, graceful or retry"),
    ],
)
def test_bad_blocks_are_schema_errors_in_the_file(text, words):
    with pytest.raises(SchemaError) as caught:
        policy_of(text)
    assert caught.value.location.file == "flow.yaml"
    assert words in str(caught.value)


# -- running under it ------------------------------------------------------------------------


def test_retries_until_it_succeeds():
    policy = ErrorPolicy(retry=RetryPolicy(max_attempts=3, **NO_WAIT))
    assert policy.run(failing(2, node_error), "fetch", Waits()) == {"ok": 3}


def test_once_the_tries_run_out_continue_records_the_error_and_its_tries():
    policy = ErrorPolicy(retry=RetryPolicy(max_attempts=3, **NO_WAIT), on_failure="continue")
    outcome = policy.run(failing(9, node_error), "fetch", Waits())
    assert isinstance(outcome, Fallback) and outcome.target is None
    error = outcome.update["__error__"]
    assert (error["type"], error["message"]) == ("ConnectionResetError", "reset 3")
    assert (error["node"], error["attempts"]) == ("fetch", 3)


def test_fallback_routes_and_checkpoint_and_exit_raises():
    retry = RetryPolicy(max_attempts=2, **NO_WAIT)
    outcome = ErrorPolicy(retry, "fallback", "cached").run(failing(9, node_error), "f", Waits())
    assert isinstance(outcome, Fallback) and outcome.target == "cached"
    with pytest.raises(NodeError, match="call failed 2"):
        ErrorPolicy(retry).run(failing(9, node_error), "f", Waits())


def test_retry_on_and_errors_that_say_they_cannot_succeed():
    def refused(tries: int) -> Exception:
        error = NodeError(f"HTTP 404 ({tries})", node="fetch")
        error.retryable = False  # type: ignore[attr-defined]
        return error

    every = ErrorPolicy(retry=RetryPolicy(max_attempts=3, **NO_WAIT))
    with pytest.raises(NodeError, match=r"\(1\)"):
        every.run(failing(9, refused), "fetch", Waits())
    named = ErrorPolicy(retry=RetryPolicy(max_attempts=3, retry_on=("ConnectionError",), **NO_WAIT))
    assert named.run(failing(2, node_error), "fetch", Waits()) == {"ok": 3}
    with pytest.raises(NodeError, match=r"\(1\)"):
        named.run(failing(9, refused), "fetch", Waits())


def test_a_stop_during_the_wait_between_tries_is_an_interrupt():
    policy = ErrorPolicy(retry=RetryPolicy(max_attempts=5, backoff_base_ms=60_000,
                                           backoff_max_ms=60_000, jitter=False),
                         on_failure="continue")
    with pytest.raises(Interrupted):
        policy.run(failing(9, node_error), "fetch", Waits(stop=Stop(requested=15)))
