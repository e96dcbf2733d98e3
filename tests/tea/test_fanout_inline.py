"""tea.fanout on the public in-process executor: what the engine hands a backend and
what it makes of the results, with no thread timing involved."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from executors import register_executor
from executors.testing import InlineExecutor
from tea.errors import BranchError, LoadError, NodeError, WorkerDied
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]

DYNAMIC = """
settings:
  parallel: {{strategy: inline{extra}}}
nodes:
  - name: fan
    type: dynamic_parallel
    items: "{{{{ state['items'] }}}}"
    fan_in: total
    steps:
      - run: |
          return {{"doubled": state["item"] * 2}}
  - name: total
    run: |
      return {{"sum": sum(r["doubled"] for r in parallel_results if r["success"]),
               "failed": [r["branch_id"] for r in parallel_results if not r["success"]]}}
"""


@pytest.fixture
def inline() -> Iterator[InlineExecutor]:
    """The ``inline`` strategy, backed by one InlineExecutor the test can inspect and script."""
    executor = InlineExecutor()
    register_executor("inline", lambda: executor)
    yield executor


def test_every_task_shares_one_input_and_carries_only_its_item(load_yaml: LoadYaml, inline: InlineExecutor) -> None:
    final = load_yaml(DYNAMIC.format(extra="")).invoke({"items": [1, 2, 3], "big": list(range(10_000))})
    assert final["sum"] == 12
    tasks = inline.tasks
    assert [t.branch_id for t in tasks] == ["fan[0]", "fan[1]", "fan[2]"]
    assert all(t.state is tasks[0].state for t in tasks)  # one shared input, not one copy each
    assert [dict(t.overrides) for t in tasks] == [{"item": i, "index": n} for n, i in enumerate([1, 2, 3])]
    assert "parallel_results" not in tasks[0].state


def test_a_retried_branch_reaches_the_fan_in_once(load_yaml: LoadYaml, inline: InlineExecutor) -> None:
    inline.failures = {"fan[1]": [WorkerDied("lost the worker")]}
    workflow = load_yaml(DYNAMIC.format(extra=", retry: {max_attempts: 2, backoff_base_ms: 0}"))
    final = workflow.invoke({"items": [1, 2, 3]})
    assert final["sum"] == 12 and final["failed"] == []
    second = final["parallel_results"][1]
    assert second["attempts"] == 2 and second["retry_count"] == 1


def test_failures_go_to_the_fan_in_with_continue(load_yaml: LoadYaml, inline: InlineExecutor) -> None:
    inline.failures = {"fan[0]": WorkerDied("gone")}
    final = load_yaml(DYNAMIC.format(extra=", on_branch_failure: continue")).invoke({"items": [1, 2]})
    assert final["failed"] == ["fan[0]"] and final["sum"] == 4
    record = final["parallel_results"][0].to_dict()
    assert record["error_type"] == "WorkerDied" and record["success"] is False
    assert record["state"] == {"item": 1, "index": 0}  # a failed branch carries its own keys only


def test_a_failure_fails_the_run_by_default_naming_the_branch(load_yaml: LoadYaml, inline: InlineExecutor) -> None:
    inline.failures = {"fan[1]": WorkerDied("gone")}
    with pytest.raises(BranchError, match=r"1 of 2 branches failed; first: fan\[1\]: WorkerDied: gone"):
        load_yaml(DYNAMIC.format(extra="")).invoke({"items": [1, 2]})


def test_more_items_than_the_default_max_branches_fail_before_any_branch(
    load_yaml: LoadYaml, inline: InlineExecutor
) -> None:
    workflow = load_yaml(DYNAMIC.format(extra=""))
    with pytest.raises(NodeError, match=r"1,000,001 entries, more than settings\.parallel\.max_branches \(1,000,000\)"):
        workflow.invoke({"items": list(range(1_000_001))})
    assert inline.tasks == []


def test_max_branches_is_a_setting(load_yaml: LoadYaml, inline: InlineExecutor) -> None:
    workflow = load_yaml(DYNAMIC.format(extra=", max_branches: 2"))
    with pytest.raises(NodeError, match=r"node 'fan'.*3 entries"):
        workflow.invoke({"items": [1, 2, 3]})
    assert inline.tasks == []
    with pytest.raises(LoadError, match="max_branches"):
        load_yaml(DYNAMIC.format(extra=", max_branches: 0"))


@pytest.mark.parametrize("items", ["text", 7, None])
def test_items_that_are_not_a_list_fail_before_any_branch(
    load_yaml: LoadYaml, inline: InlineExecutor, items: object
) -> None:
    with pytest.raises(NodeError, match=r"node 'fan'.*items must be a list"):
        load_yaml(DYNAMIC.format(extra="")).invoke({"items": items})
    assert inline.tasks == []
