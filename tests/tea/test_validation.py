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


FAN = """
nodes:
  - name: s
  - name: a
    {a_extra}
  - name: a2
  - name: b
  - name: f
{config}
edges:
  - {{from: s, to: [a, b], parallel: true, fan_in: f}}
  - {{from: a, to: a2}}
  - {{from: a2, to: f}}
  - {{from: b, to: f}}
"""


@pytest.mark.parametrize(
    ("a_extra", "config", "line", "said"),
    [
        ("interrupt: before", "", 3, "its interrupt: before"),
        ("run: 'x = 1'", "config:\n  interrupt_after: [a2]", 9, "its config.interrupt_after"),
    ],
)
def test_an_interrupt_inside_a_fan_outs_branches_is_a_load_error(
    load_yaml: LoadYaml, a_extra: str, config: str, line: int, said: str
) -> None:
    """A branch runs apart from the run: an interrupt there could never stop it."""
    with pytest.raises(LoadError) as caught:
        load_yaml(FAN.format(a_extra=a_extra, config=config))
    message = str(caught.value)
    assert "runs in a branch of the fan-out from 's'" in message and said in message
    assert caught.value.location.line == line


def test_an_interrupt_given_to_run_inside_a_branch_is_refused(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(FAN.format(a_extra="run: 'x = 1'", config=""))
    with pytest.raises(LoadError, match="node 'a2' could not stop the run"):
        workflow.run({}, interrupt_before=["a2"])
    run = workflow.run({}, interrupt_before=["f"])
    run.invoke()
    assert run.stopped is not None and run.stopped.node == "f"


def test_interrupts_outside_the_branches_load(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(FAN.format(a_extra="run: 'x = 1'", config="config:\n  interrupt_before: [f, s]"))
    assert workflow.graph.interrupt_before == {"f", "s"}


SPLIT = """
nodes:
  - name: s
  - name: a
  - name: b
  - name: f
edges:
  - {{from: s, to: a, type: parallel, fan_in: f{first}}}
  - {{from: s, to: b, type: parallel, fan_in: f{second}}}
"""


def test_edges_of_one_fan_out_with_different_settings_are_a_load_error(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(SPLIT.format(first=", max_workers: 2", second=", parallel_strategy: process"))
    message = str(caught.value)
    assert "the parallel edges from 's' to fan-in 'f' run as one fan-out" in message
    assert "disagree on strategy, max_workers: the edge at line 7 and the edge at line 8" in message
    assert caught.value.location.line == 8


@pytest.mark.parametrize(("first", "second"), [("", ""), (", max_workers: 2", ", max_workers: 2"),
                                               (", parallel_strategy: thread", "")])
def test_edges_of_one_fan_out_that_agree_load(load_yaml: LoadYaml, first: str, second: str) -> None:
    """The same settings, written twice or once implied by the defaults, are one fan-out."""
    workflow = load_yaml(SPLIT.format(first=first, second=second))
    assert [fan.targets for fan in workflow.graph.fanouts()] == [("a", "b")]
