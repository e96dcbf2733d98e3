"""Recoveries are reported: the retry core's ``on_retry`` hook, and the node policy's fallback line."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import tea
from executors.base import ErrorInfo, RetryPolicy
from executors.retry import EVENT_KEY, Retrier, RetryNotice
from tea.policy import ErrorPolicy

NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_ms=0, backoff_max_ms=0, jitter=False)


def test_on_retry_hears_each_retry_before_its_wait() -> None:
    """One notice per retry (not for the last failure), with the try, the error and the wait."""
    heard: list[RetryNotice] = []
    retrier = Retrier(NO_WAIT, on_retry=heard.append, node="fetch")
    with pytest.raises(ConnectionError):
        retrier.call(lambda n: (_ for _ in ()).throw(ConnectionError(f"refused {n}")))
    assert [n.attempt for n in heard] == [1, 2]
    assert heard[0].max_attempts == 3 and heard[0].error.type == "ConnectionError"
    assert heard[0].describe() == "node 'fetch': attempt 1/3 failed: ConnectionError: refused 1; retrying in 0 ms"


def test_a_failed_result_is_reported_with_its_branch() -> None:
    heard: list[RetryNotice] = []
    retrier = Retrier(NO_WAIT, on_retry=heard.append, branch="fan[a]")
    info = ErrorInfo("NodeError", "ValueError: boom", node="a", kinds=("NodeError", "ValueError"))
    assert retrier.call(lambda n: info, failure=lambda r: r) == info
    assert len(heard) == 2
    assert heard[0].describe() == "branch 'fan[a]' (node 'a'): attempt 1/3 failed: ValueError: boom; retrying in 0 ms"
    event = heard[1].event()
    assert event == {
        "type": "retry", "node": "a", "branch": "fan[a]", "attempt": 2, "max_attempts": 3,
        "error": {"type": "NodeError", "message": "ValueError: boom"}, "wait_seconds": 0.0,
    }


def test_waits_read_in_seconds_or_milliseconds() -> None:
    error = ErrorInfo("TimeoutError", "slow")
    assert RetryNotice(2, 4, error, 0.8).describe() == "attempt 2/4 failed: TimeoutError: slow; retrying in 0.8 s"
    assert RetryNotice(1, 4, error, 0.04).describe().endswith("retrying in 40 ms")


def test_the_default_report_is_an_info_line_carrying_the_event(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tea.retry"), pytest.raises(ValueError):
        Retrier(NO_WAIT, node="n").call(lambda n: (_ for _ in ()).throw(ValueError("v")))
    records = [r for r in caplog.records if r.name == "tea.retry"]
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert getattr(records[0], EVENT_KEY)["type"] == "retry"


def test_one_try_reports_nothing() -> None:
    heard: list[RetryNotice] = []
    with pytest.raises(ValueError):
        Retrier(RetryPolicy(max_attempts=1), on_retry=heard.append).call(
            lambda n: (_ for _ in ()).throw(ValueError()))
    assert heard == []


class _Scope:
    cancel = threading.Event()
    stop = None


def test_a_fallback_is_one_warning_with_its_event(caplog: pytest.LogCaptureFixture) -> None:
    policy = ErrorPolicy(retry=NO_WAIT, on_failure="fallback", fallback="cache")

    def attempt() -> None:
        raise ConnectionError("down")

    with caplog.at_level(logging.INFO, logger="tea"):
        result = policy.run(attempt, "fetch", _Scope())
    assert result.target == "cache"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "node 'fetch': failed after 3 attempts: ConnectionError: down; falling back to 'cache'"
    )
    event = getattr(warning, EVENT_KEY)
    assert event["type"] == "fallback" and event["target"] == "cache" and event["attempts"] == 3
    assert len([r for r in caplog.records if r.name == "tea.retry"]) == 2


def test_continue_says_where_the_error_went(caplog: pytest.LogCaptureFixture) -> None:
    policy = ErrorPolicy(retry=RetryPolicy(), on_failure="continue")
    with caplog.at_level(logging.WARNING, logger="tea.policy"):
        policy.run(lambda: 1 / 0, "divide", _Scope())
    assert caplog.records[0].getMessage().endswith(
        "failed on its only attempt: ZeroDivisionError: division by zero; "
        "continuing (the error is in state.__error__)")


def test_a_deprecated_key_is_reported_once_per_place(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A settings block every node inherits is read per node, but its warning says it once."""
    path = tmp_path / "old.yaml"
    path.write_text(
        "settings:\n  error_policy: {max_retries: 1}\nnodes:\n  - name: a\n  - name: b\n  - name: c\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="tea.retry"):
        tea.load(path)
    assert len([r for r in caplog.records if "deprecated" in r.getMessage()]) == 1
