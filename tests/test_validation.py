"""tea.validation: whole-graph checks, above all fan-outs that would nest without end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import tea
from tea.errors import LoadError, RunError
from tea.fanout import MAX_DEPTH
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]


@pytest.mark.parametrize(
    ("edges", "path"),
    [
        ("- {from: s, to: [s, a], parallel: true, fan_in: f}", "s -> s"),
        ("- {from: s, to: [a, b], parallel: true, fan_in: f}\n      - {from: a, to: s}", "s -> a -> s"),
    ],
)
def test_a_fan_out_that_reaches_its_own_source_is_a_load_error(
    load_yaml: LoadYaml, edges: str, path: str
) -> None:
    text = f"""
    nodes:
      - name: s
      - name: a
      - name: b
      - name: f
    edges:
      {edges}
      - {{from: b, to: f}}
    """
    with pytest.raises(LoadError) as caught:
        load_yaml(text)
    message = str(caught.value)
    assert "can reach 's' again from inside its branches" in message and path in message
    assert "flow.yaml" in message  # located at the edge


def test_a_conditional_route_back_to_the_source_counts_too(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError, match=r"s -> a -> s"):
        load_yaml(
            """
            nodes:
              - name: s
              - name: a
                goto:
                  - {if: "state.again", to: s}
                  - {to: f}
              - name: f
            edges:
              - {from: s, to: [a], parallel: true, fan_in: f}
            """
        )


def test_looping_back_from_the_fan_in_is_fine(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        nodes:
          - name: s
            run: |
              return {"rounds": state.get("rounds", 0) + 1}
          - name: a
            run: |
              return {"v": 1}
          - name: f
            goto:
              - {if: "state.rounds < 3", to: s}
              - {to: __end__}
        edges:
          - {from: s, to: [a], parallel: true, fan_in: f}
        """
    )
    assert workflow.invoke({})["rounds"] == 3


def test_a_branch_listed_twice_is_a_load_error(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError, match="branch 'a' is listed twice"):
        load_yaml(
            """
            nodes:
              - name: s
              - name: a
              - name: f
            edges:
              - {from: s, to: [a, a], parallel: true, fan_in: f}
            """
        )


def test_a_missing_nodes_list_does_not_hide_the_typo_beside_it(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml("name: typo\nnode:\n  - name: a\n")
    message = str(caught.value)
    assert "unknown top-level key 'node'" in message and "did you mean 'nodes'" in message
    assert "'nodes' must be a non-empty list" in message


def test_fan_outs_that_only_nest_at_run_time_stop_at_the_depth_limit() -> None:
    """A routing function (known only at run time) sending a branch back to its fan-out."""
    graph = tea.StateGraph()
    graph.add_node("s", lambda st: {"n": st.get("n", 0) + 1})
    graph.add_node("a", lambda st: {})
    graph.add_node("f", lambda st: {})
    graph.add_parallel_edges("s", ["a"], fan_in="f")
    graph.add_conditional_edges("a", lambda st: "s")
    with pytest.raises(RunError) as caught:
        graph.compile().invoke({})
    message = str(caught.value)
    assert f"fan-outs nested {MAX_DEPTH + 1} deep (the limit is {MAX_DEPTH})" in message
    assert message.count("branches failed") == 0  # said once, not wrapped by every level
