"""``settings.parallel`` and its overrides parse into ``ParallelConfig`` or fail at file:line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from executors import BreakerPolicy, Locate, ParallelConfig, RetryPolicy, register_executor
from executors.testing import InlineExecutor
from executors.thread import ThreadExecutor
from tea.errors import SchemaError
from tea.parallel_settings import check_strategy, parse_parallel_config
from tea.yamlsrc import load_yaml


class Slotted(InlineExecutor):
    """A strategy with options of its own (``slotted: {...}``), read as a plain dict."""

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None, locate: Locate) -> dict[str, Any] | None:
        return None if raw is None else dict(raw)


register_executor("slotted", Slotted)


def parse(text: str, **kwargs: object) -> ParallelConfig:
    return parse_parallel_config(load_yaml(text, "flow.yaml"), **kwargs)  # type: ignore[arg-type]


def failure(text: str, **kwargs: object) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        parse(text, **kwargs)
    return caught.value


def test_nothing_gives_the_defaults_or_the_base():
    base = ParallelConfig(strategy="process")
    assert parse_parallel_config(None) == ParallelConfig()
    assert parse_parallel_config(None, base=base) == base
    assert parse_parallel_config({}) == ParallelConfig()


def test_every_setting():
    config = parse(
        """
strategy: process
max_workers: 4
timeout_seconds: 2.5
fail_fast: true
on_branch_failure: continue
retry: {max_attempts: 3, backoff_base_ms: 50, backoff_max_ms: 400, jitter: false,
        retry_on: [TimeoutError, WorkerDied]}
circuit_breaker: {failure_threshold: 2, reset_timeout_seconds: 10}
"""
    )
    assert config == ParallelConfig(
        strategy="process",
        max_workers=4,
        timeout_seconds=2.5,
        fail_fast=True,
        on_branch_failure="continue",
        retry=RetryPolicy(3, 50.0, 400.0, False, ("TimeoutError", "WorkerDied")),
        circuit_breaker=BreakerPolicy(2, 10.0),
    )


def test_an_override_changes_only_what_it_names():
    base = parse(
        "strategy: process\nretry: {max_attempts: 3}\ncircuit_breaker: {failure_threshold: 2}\n"
    )
    edge = parse("timeout_seconds: 1\nretry: {jitter: false}\n", base=base)
    assert edge.strategy == "process"
    assert edge.timeout_seconds == 1.0
    assert edge.retry == RetryPolicy(max_attempts=3, jitter=False)
    assert edge.circuit_breaker == BreakerPolicy(failure_threshold=2)
    assert parse("circuit_breaker: false\n", base=base).circuit_breaker is None
    assert parse("circuit_breaker: true\n").circuit_breaker == BreakerPolicy()
    assert parse("timeout_seconds: null\n", base=edge).timeout_seconds is None


def test_a_strategys_options_merge_under_the_override_and_are_parsed_by_it():
    settings = load_yaml("strategy: slotted\nslotted: {slots: 2, name: a}\n", "flow.yaml")
    base = parse_parallel_config(settings)  # type: ignore[arg-type]
    assert base.options == {"slots": 2, "name": "a"}
    edge = parse("slotted: {slots: 5}\n", base=base, inherited=settings)
    assert edge.options == {"slots": 5, "name": "a"}


def test_unknown_strategy_lists_the_known_ones():
    error = failure("max_workers: 2\nstrategy: proces\n")
    assert (error.location.file, error.location.line) == ("flow.yaml", 2)
    assert "process, remote" in error.message
    assert error.hint == "did you mean 'process'?"


def test_a_registered_strategy_is_accepted():
    register_executor("inline-test", ThreadExecutor)
    assert parse("strategy: inline-test\n").strategy == "inline-test"
    assert check_strategy("inline-test") == "inline-test"


@pytest.mark.parametrize("value", ["0", "-1", "-0.5"])
def test_timeout_must_be_positive(value):
    error = failure(f"fail_fast: false\ntimeout_seconds: {value}\n")
    assert error.location.line == 2
    assert "greater than 0" in error.message


def test_unknown_retry_key_suggests_the_nearest():
    error = failure("retry:\n  max_attempts: 2\n  backof_base_ms: 10\n")
    assert error.location.line == 3
    assert "unknown key 'backof_base_ms'" in error.message
    assert error.hint == "did you mean 'backoff_base_ms'?"
    assert error.path == "settings.parallel.retry.backof_base_ms"


def test_unknown_top_level_key():
    error = failure("strategy: thread\nworkers: 3\n", path="edges[1]")
    assert error.location.line == 2
    assert error.message.startswith("edges[1]: unknown key 'workers'")
    assert error.hint == "did you mean 'max_workers'?"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("max_workers: '2'\n", 1, "must be an integer, not a string"),
        ("max_workers: 0\n", 1, "at least 1"),
        ("fail_fast: yes_please\n", 1, "true or false"),
        ("timeout_seconds: soon\n", 1, "number of seconds"),
        ("on_branch_failure: ignore\n", 1, "fail or continue"),
        ("retry: 3\n", 1, "retry must be a mapping"),
        ("retry:\n  max_attempts: true\n", 2, "must be an integer, not a boolean"),
        ("retry:\n  retry_on: [1, 2]\n", 2, "list of error type names"),
        ("retry:\n  backoff_base_ms: 500\n  backoff_max_ms: 100\n", 3, "not be below"),
        ("circuit_breaker:\n  failure_threshold: 0\n", 2, "at least 1"),
        ("circuit_breaker:\n  reset_timeout_seconds: -3\n", 2, "greater than 0"),
        ("circuit_breaker: {threshold: 3}\n", 1, "unknown key 'threshold'"),
        ("strategy: slotted\nslotted: [a, b]\n", 2, "slotted must be a mapping"),
        ("strategy: thread\nthread: {x: 1}\n", 2, "thread strategy takes no options"),
    ],
)
def test_wrong_values_are_located(text, line, words):
    error = failure(text)
    assert error.location.file == "flow.yaml"
    assert error.location.line == line
    assert words in error.message


def test_a_block_that_is_not_a_mapping():
    with pytest.raises(SchemaError, match=r"settings\.parallel must be a mapping, not a list"):
        parse_parallel_config(load_yaml("[thread]\n", "flow.yaml"))
