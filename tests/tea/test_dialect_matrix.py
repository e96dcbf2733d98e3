"""``strategy: {matrix}`` and ``parallel_each`` nodes (issue 17): one branch per combination or
item, on tea's dynamic fan-out, so on every strategy, with the reference's records."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tea.errors import LoadError
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]

MATRIX = """
settings: {{parallel: {{strategy: {strategy}}}}}
nodes:
  - name: grid
    strategy:
      matrix:
        model: [a, b]
        size: [1, 2, 3]
      max_parallel: 2
      fail_fast: true
    fan_in: collect
    run: |
      m = state["matrix"]
      return {{"label": m["model"] * m["size"], "seen": state["base"]}}
  - name: collect
    run: |
      return {{"labels": [r["result"]["label"] for r in parallel_results]}}
"""


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_a_matrix_runs_one_branch_per_combination_in_order(load_yaml: LoadYaml, strategy: str) -> None:
    workflow = load_yaml(MATRIX.format(strategy=strategy))
    final = workflow.invoke({"base": "B"})
    assert final["labels"] == ["a", "aa", "aaa", "b", "bb", "bbb"]
    records = final["parallel_results"]
    assert [r["index"] for r in records] == list(range(6))
    assert records[4]["matrix"] == {"model": "b", "size": 2}
    assert records[4]["result"] == {"label": "bb", "seen": "B"}
    # The reference's record: the combination, and what the body returned under result.
    assert set(records[0].state) == {"matrix", "index", "result"}


def test_a_matrix_node_takes_its_limits_from_strategy(load_yaml: LoadYaml) -> None:
    fan = load_yaml(MATRIX.format(strategy="thread")).graph.nodes["grid"].fanout
    assert fan is not None and fan.each is not None
    assert fan.fan_in == "collect" and len(fan.each.items) == 6
    assert fan.each.max_concurrency == 2 and fan.each.fail_fast is True


def test_a_matrix_node_with_steps_and_an_action(load_yaml: LoadYaml) -> None:
    workflow = load_yaml("""
    nodes:
      - name: grid
        strategy: {matrix: {n: [1, 2]}}
        fan_in: done
        steps:
          - run: |
              return {"twice": state["matrix"]["n"] * 2}
          - uses: json.stringify
            with: {data: "{{ state.twice }}"}
            output: text
      - name: done
    """)
    records = workflow.invoke()["parallel_results"]
    assert [r["result"]["text"]["text"] for r in records] == ["2", "4"]
    assert records[1]["result"]["twice"] == 4


PARALLEL_EACH = """
settings: {{parallel: {{strategy: {strategy}}}}}
nodes:
  - name: fan
    parallel_each: "{{{{ state.words }}}}"
    max_workers: 2
    fan_in: join
    run: |
      return {{"word": state["item"] * (state["item_index"] + 1)}}
  - name: join
    run: |
      return {{"words": [r["result"]["word"] for r in parallel_results]}}
"""


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_parallel_each_runs_one_branch_per_item(load_yaml: LoadYaml, strategy: str) -> None:
    workflow = load_yaml(PARALLEL_EACH.format(strategy=strategy))
    final = workflow.invoke({"words": ["x", "y", "z"]})
    assert final["words"] == ["x", "yy", "zzz"]
    record = final["parallel_results"][1]
    assert (record["item"], record["index"], record["result"]) == ("y", 1, {"word": "yy"})
    assert set(record.state) == {"item", "index", "result"}
    fan = workflow.graph.nodes["fan"].fanout
    assert fan is not None and fan.config.max_workers == 2


def test_parallel_each_over_nothing_runs_no_branch(load_yaml: LoadYaml) -> None:
    """As the reference: items that render to nothing are no items (dynamic_parallel says
    it is a mistake); the fan-in still runs."""
    workflow = load_yaml(PARALLEL_EACH.format(strategy="thread"))
    assert workflow.invoke({})["words"] == []
    assert workflow.invoke({"words": None})["words"] == []


def test_a_failed_branch_is_reported_with_its_combination(load_yaml: LoadYaml) -> None:
    workflow = load_yaml("""
    settings: {parallel: {on_branch_failure: continue}}
    nodes:
      - name: grid
        strategy: {matrix: {n: [1, 0, 2]}}
        fan_in: collect
        run: |
          return {"inverse": 1 / state["matrix"]["n"]}
      - name: collect
        run: |
          return {"ok": [r["success"] for r in parallel_results]}
    """)
    final = workflow.invoke()
    assert final["ok"] == [True, False, True]
    failed = final["parallel_results"][1]
    assert failed["matrix"] == {"n": 0} and "ZeroDivisionError" in failed.error.type + failed.error.message


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("strategy: {matrix: {n: [1]}}\n    run: 'return {}'", "needs 'fan_in'"),
        ("strategy: {matrix: {n: []}}\n    fan_in: f\n    run: 'return {}'", "matrix.n must be a non-empty list"),
        ("strategy: {matrix: {n: 3}}\n    fan_in: f\n    run: 'return {}'", "matrix.n must be a non-empty list"),
        ("strategy: {matrix: {n: [1]}, max_parallel: 0}\n    fan_in: f\n    run: 'return {}'",
         "max_parallel must be a positive integer"),
        ("strategy: {matrix: {n: [1]}, workers: 2}\n    fan_in: f\n    run: 'return {}'",
         "unknown key 'workers'"),
        ("strategy: {matrix: {n: [1]}}\n    fan_in: f", "needs a body"),
        ("parallel_each: '{{ state.x }}'\n    fan_in: f\n    max_workers: -1\n    run: 'return {}'",
         "max_workers must be a positive integer"),
        ("strategy: {matrix: {n: [1]}}\n    fan_in: nowhere\n    run: 'return {}'", "unknown node 'nowhere'"),
    ],
)
def test_a_malformed_fan_out_node_is_a_load_error_at_its_line(load_yaml: LoadYaml, node: str, message: str) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(f"nodes:\n  - name: m\n    {node}\n  - name: f\n")
    assert message in str(caught.value)
    assert caught.value.location.line is not None and caught.value.location.line >= 2
