"""Parallel writes through reducers: what the branches write to a reducer key meets at the fan-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea.errors import BranchError
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]

STATIC = """
state_schema:
  log: {{type: list, reducer: append}}
settings:
  parallel: {{strategy: {strategy}}}
nodes:
  - name: start
    run: |
      return {{"log": ["start"], "plain": "main"}}
  - name: slow
    run: |
      import time
      time.sleep(0.2 if state.get("slow_first") else 0)
      return {{"log": ["slow"], "plain": "slow"}}
  - name: slow_more
    steps:
      - run: |
          return {{"log": ["slow again"]}}
  - name: quick
    run: |
      return {{"log": ["quick"], "plain": "quick"}}
  - name: join
    run: |
      return {{"seen": list(state["log"]), "plain_seen": state["plain"],
               "quick_saw": parallel_results[1]["log"]}}
edges:
  - {{from: start, to: [slow, quick], parallel: true, fan_in: join}}
  - {{from: slow, to: slow_more}}
  - {{from: slow_more, to: join}}
  - {{from: quick, to: join}}
"""


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_branch_writes_meet_at_the_fan_in_in_declaration_order(load_yaml: LoadYaml, strategy: str) -> None:
    """Each write of each branch, in declaration order (the slow branch first, though it ends
    last), reduced once onto the parent's value: from threads and from worker processes."""
    final = load_yaml(STATIC.format(strategy=strategy)).invoke({"slow_first": True})
    assert final["log"] == ["start", "slow", "slow again", "quick"]
    assert final["seen"] == final["log"]  # merged before the fan-in ran
    assert final["quick_saw"] == ["start", "quick"]  # a record reads what its branch saw


def test_a_key_without_a_reducer_still_reaches_the_main_state_only_through_the_fan_in(
    load_yaml: LoadYaml,
) -> None:
    final = load_yaml(STATIC.format(strategy="thread")).invoke({})
    assert final["plain"] == "main" and final["plain_seen"] == "main"


def test_results_and_printed_records_carry_no_writes(load_yaml: LoadYaml) -> None:
    """The writes travel inside a branch's update but never reach the fan-in's records."""
    final = load_yaml(STATIC.format(strategy="thread")).invoke({})
    records = [r.to_dict() for r in final["parallel_results"]]
    assert all(set(r["state"]) <= {"log", "plain"} for r in records)


def test_dynamic_items_append_in_item_order(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        state_schema:
          found: {reducer: append}
          total: {type: int, reducer: add}
        nodes:
          - name: each
            type: dynamic_parallel
            items: "{{ state.words }}"
            fan_in: done
            steps:
              - run: |
                  return {"found": state["item"].upper(), "total": len(state["item"])}
              - run: |
                  return {"found": state["item"] + "!"}
          - name: done
        """
    )
    final = workflow.invoke({"words": ["tea", "earl"], "found": ["seed"]})
    assert final["found"] == ["seed", "TEA", "tea!", "EARL", "earl!"]
    assert final["total"] == 7


def test_nested_fan_outs_merge_once_at_each_fan_in(load_yaml: LoadYaml) -> None:
    """Inner branches' writes join their branch at the inner fan-in, and go on from there to
    the outer fan-in with that branch's own: nothing twice."""
    workflow = load_yaml(
        """
        state_schema:
          log: {reducer: append}
        nodes:
          - name: outer
          - name: left
            run: |
              return {"log": "left"}
          - name: inner_a
            run: |
              return {"log": "inner_a"}
          - name: inner_b
            run: |
              return {"log": "inner_b"}
          - name: inner_join
          - name: right
            run: |
              return {"log": "right"}
          - name: outer_join
        edges:
          - {from: outer, to: [left, right], parallel: true, fan_in: outer_join}
          - {from: left, to: [inner_a, inner_b], parallel: true, fan_in: inner_join}
          - {from: inner_a, to: inner_join}
          - {from: inner_b, to: inner_join}
          - {from: inner_join, to: outer_join}
          - {from: right, to: outer_join}
        """
    )
    assert workflow.invoke({})["log"] == ["left", "inner_a", "inner_b", "right"]


def test_a_custom_reducer_never_sees_a_placeholder(load_yaml: LoadYaml) -> None:
    """A reducer registered without a start keeps the first write as it is (LangGraph's rule)."""
    calls: list[tuple[Any, Any]] = []

    def joined(old: Any, new: Any) -> Any:
        calls.append((old, new))
        return f"{old}|{new}"

    tea.register_reducer("test_joined", joined)
    workflow = load_yaml(
        """
        state_schema:
          trail: {reducer: test_joined}
        nodes:
          - name: s
          - name: a
            run: |
              return {"trail": "a"}
          - name: b
            run: |
              return {"trail": "b"}
          - name: f
        edges:
          - {from: s, to: [a, b], parallel: true, fan_in: f}
        """
    )
    assert workflow.invoke({})["trail"] == "a|b"
    assert calls == [("a", "b")]


def test_a_failed_branchs_writes_are_not_merged(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        state_schema:
          log: {reducer: append}
        settings:
          parallel: {on_branch_failure: continue}
        nodes:
          - name: s
          - name: ok
            run: |
              return {"log": "ok"}
          - name: bad
            steps:
              - run: |
                  return {"log": "half"}
              - run: |
                  raise ValueError("no")
          - name: f
            run: |
              return {"failed": [r.branch_id for r in parallel_results if not r.success]}
        edges:
          - {from: s, to: [ok, bad], parallel: true, fan_in: f}
        """
    )
    final = workflow.invoke({})
    assert final["log"] == ["ok"] and final["failed"] == ["s[bad]"]


def test_a_failed_branch_that_fails_the_run_merges_nothing(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        state_schema:
          log: {reducer: append}
        nodes:
          - name: s
          - name: ok
            run: |
              return {"log": "ok"}
          - name: bad
            run: |
              raise ValueError("no")
          - name: f
        edges:
          - {from: s, to: [ok, bad], parallel: true, fan_in: f}
        """
    )
    run = workflow.run({})
    with pytest.raises(BranchError):
        run.invoke()
    assert "log" not in run.state


def test_a_resume_before_the_fan_in_does_not_merge_again(load_yaml: LoadYaml, tmp_path: Path) -> None:
    """The writes are merged when the fan-out ends: a checkpoint taken before the fan-in holds
    them, and resuming it merges nothing a second time."""
    workflow = load_yaml(
        """
        state_schema:
          log: {reducer: append}
        config:
          interrupt_before: [f]
        nodes:
          - name: s
          - name: a
            run: |
              return {"log": "a"}
          - name: b
            run: |
              return {"log": "b"}
          - name: f
            run: |
              return {"count": len(state["log"])}
        edges:
          - {from: s, to: [a, b], parallel: true, fan_in: f}
        """
    )
    first = workflow.run({}, checkpoint_dir=tmp_path / "ck")
    assert first.invoke()["log"] == ["a", "b"]
    assert first.checkpoint_path is not None
    final = workflow.invoke(None, checkpoint=first.checkpoint_path)
    assert final["log"] == ["a", "b"] and final["count"] == 2
