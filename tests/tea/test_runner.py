"""tea.runner: routing, events and stream modes, the recursion limit and node errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea.errors import LoadError, NodeError, RecursionLimitError, RunError
from tea.run import STREAM_MODES
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]

MARK = """
  - name: {name}
    run: |
      return {{"path": state.get("path", []) + ["{name}"]}}
"""


def marking(*names: str) -> str:
    """YAML node entries that append their own name to state['path']."""
    return "".join(MARK.format(name=n) for n in names)


def path_of(workflow: Workflow, **state: Any) -> list[str]:
    return workflow.invoke(state)["path"]


# --- routing -----------------------------------------------------------------------


def test_implicit_chaining_runs_nodes_in_list_order(load_yaml: LoadYaml) -> None:
    """Without goto or edges, nodes run in list order; the last ends the run."""
    workflow = load_yaml("nodes:" + marking("a", "b", "c"))
    assert path_of(workflow) == ["a", "b", "c"]


def test_goto_a_name_jumps(load_yaml: LoadYaml) -> None:
    """goto: <name> skips to that node."""
    workflow = load_yaml("nodes:" + marking("a") + "    goto: c\n" + marking("b", "c"))
    assert path_of(workflow) == ["a", "c"]


def test_goto_end_stops(load_yaml: LoadYaml) -> None:
    """goto: __end__ ends the run."""
    workflow = load_yaml("nodes:" + marking("a") + "    goto: __end__\n" + marking("b"))
    assert path_of(workflow) == ["a"]


def test_goto_rules_first_true_wins(load_yaml: LoadYaml) -> None:
    """goto rules are tried in order; the first true one wins."""
    workflow = load_yaml(
        "nodes:" + marking("a")
        + "    goto:\n"
        + "      - {if: 'state.n > 10', to: big}\n"
        + "      - {if: 'state.n > 0', to: small}\n"
        + "      - {to: zero}\n"
        + marking("big") + "    goto: __end__\n"
        + marking("small") + "    goto: __end__\n"
        + marking("zero")
    )
    assert path_of(workflow, n=50) == ["a", "big"]
    assert path_of(workflow, n=5) == ["a", "small"]


def test_goto_rule_without_if_is_the_fallback(load_yaml: LoadYaml) -> None:
    """A rule without if catches what no earlier rule matched."""
    workflow = load_yaml(
        "nodes:" + marking("a")
        + "    goto:\n      - {if: 'state.n > 0', to: pos}\n      - {to: other}\n"
        + marking("pos") + "    goto: __end__\n" + marking("other")
    )
    assert path_of(workflow, n=0) == ["a", "other"]


def test_goto_rules_without_a_match_end_the_run(load_yaml: LoadYaml) -> None:
    """Rules with no fallback and no match end the run (no implicit fall-through)."""
    workflow = load_yaml(
        "nodes:" + marking("a") + "    goto:\n      - {if: 'state.n > 0', to: b}\n" + marking("b")
    )
    assert path_of(workflow, n=0) == ["a"]


def test_goto_rule_with_braces(load_yaml: LoadYaml) -> None:
    """A goto condition may be written inside {{ }}."""
    workflow = load_yaml(
        "nodes:" + marking("a")
        + "    goto:\n      - {if: '{{ state.flag }}', to: c}\n      - {to: b}\n"
        + marking("b") + "    goto: __end__\n" + marking("c")
    )
    assert path_of(workflow, flag=True) == ["a", "c"]
    assert path_of(workflow, flag=False) == ["a", "b"]


EDGE_NODES = "nodes:" + marking("a", "b", "c") + "edges:\n"


def edge(source: str, target: str, extra: str = "") -> str:
    return f"  - from: {source}\n    to: {target}\n{extra}"


def test_plain_edges_route(load_yaml: LoadYaml) -> None:
    """A legacy edge without a condition always routes."""
    workflow = load_yaml(EDGE_NODES + edge("a", "c") + edge("c", "__end__"))
    assert path_of(workflow) == ["a", "c"]


def test_edges_from_start_choose_the_entry(load_yaml: LoadYaml) -> None:
    """An edge from __start__ makes its target the entry, not the first node."""
    workflow = load_yaml(EDGE_NODES + edge("__start__", "b") + edge("b", "__end__"))
    assert path_of(workflow) == ["b"]


def test_when_true_and_false_literals(load_yaml: LoadYaml) -> None:
    """when: "false" never holds, when: "true" always does (not state keys)."""
    workflow = load_yaml(
        EDGE_NODES
        + edge("a", "b", '    when: "false"\n')
        + edge("a", "c", '    when: "true"\n')
    )
    assert path_of(workflow, true=False, false=True) == ["a", "c"]


def test_when_bare_key(load_yaml: LoadYaml) -> None:
    """when: <key> holds when the state key is truthy."""
    workflow = load_yaml(
        EDGE_NODES + edge("a", "b", "    when: go\n") + edge("a", "c") + edge("b", "__end__")
    )
    assert path_of(workflow, go=True) == ["a", "b"]
    assert path_of(workflow, go=False) == ["a", "c"]


def test_when_negated_key(load_yaml: LoadYaml) -> None:
    """when: "!key" holds when the key is falsy."""
    workflow = load_yaml(
        EDGE_NODES + edge("a", "b", '    when: "!go"\n') + edge("a", "c") + edge("b", "__end__")
    )
    assert path_of(workflow, go=False) == ["a", "b"]
    assert path_of(workflow, go=True) == ["a", "c"]


def test_when_jinja_without_braces(load_yaml: LoadYaml) -> None:
    """when: <Jinja expression> is evaluated."""
    workflow = load_yaml(
        EDGE_NODES + edge("a", "b", '    when: "state.n > 2"\n') + edge("a", "c")
        + edge("b", "__end__")
    )
    assert path_of(workflow, n=3) == ["a", "b"]
    assert path_of(workflow, n=1) == ["a", "c"]


def test_when_jinja_with_braces(load_yaml: LoadYaml) -> None:
    """when: "{{ expr }}" is evaluated the same way."""
    workflow = load_yaml(
        EDGE_NODES + edge("a", "b", '    when: "{{ state.n > 2 }}"\n') + edge("a", "c")
        + edge("b", "__end__")
    )
    assert path_of(workflow, n=3) == ["a", "b"]
    assert path_of(workflow, n=1) == ["a", "c"]


def test_condition_expression_matched_against_when(load_yaml: LoadYaml) -> None:
    """condition: {type: expression, value} is compared with each edge's when."""
    cond = "    condition: {type: expression, value: \"{{ state.kind }}\"}\n"
    workflow = load_yaml(
        EDGE_NODES
        + edge("a", "b", cond + "    when: left\n")
        + edge("a", "c", cond + "    when: right\n")
        + edge("b", "__end__")
    )
    assert path_of(workflow, kind="left") == ["a", "b"]
    assert path_of(workflow, kind="right") == ["a", "c"]


def test_condition_matched_against_a_boolean_when(load_yaml: LoadYaml) -> None:
    """A boolean condition result matches when: true / when: false."""
    cond = "    condition: {type: expression, value: \"state.n > 0\"}\n"
    workflow = load_yaml(
        EDGE_NODES
        + edge("a", "b", cond + "    when: true\n")
        + edge("a", "c", cond + "    when: false\n")
        + edge("b", "__end__")
    )
    assert path_of(workflow, n=1) == ["a", "b"]
    assert path_of(workflow, n=0) == ["a", "c"]


def test_no_true_edge_is_an_error_naming_the_node(load_yaml: LoadYaml) -> None:
    """When a node has edges and none holds, the run cannot route: an error, as the reference says."""
    workflow = load_yaml(EDGE_NODES + edge("a", "c", "    when: go\n"))
    with pytest.raises(RunError, match="node 'a': no edge out of this node holds"):
        path_of(workflow, go=False)


def test_first_declared_true_edge_wins(load_yaml: LoadYaml) -> None:
    """Among several true edges the first declared is taken."""
    workflow = load_yaml(
        EDGE_NODES + edge("a", "c", '    when: "true"\n') + edge("a", "b", '    when: "true"\n')
    )
    assert path_of(workflow) == ["a", "c"]


def test_goto_beats_edges(load_yaml: LoadYaml) -> None:
    """goto takes precedence over legacy edges from the same node."""
    workflow = load_yaml(
        "nodes:" + marking("a") + "    goto: c\n" + marking("b", "c") + "edges:\n" + edge("a", "b")
    )
    assert path_of(workflow) == ["a", "c"]


def test_edges_beat_implicit_chaining(load_yaml: LoadYaml) -> None:
    """An edge overrides the next-node-in-the-list default."""
    workflow = load_yaml(EDGE_NODES + edge("a", "c"))
    assert path_of(workflow) == ["a", "c"]


def test_goto_condition_that_cannot_be_evaluated_names_the_node(load_yaml: LoadYaml) -> None:
    """A condition comparing a missing key fails as a NodeError of the routing node."""
    workflow = load_yaml(
        "nodes:" + marking("a") + "    goto:\n      - {if: 'state.n > 3', to: b}\n" + marking("b")
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({})
    assert info.value.node == "a"
    assert "state.n > 3" in str(info.value)


def test_goto_condition_raising_on_its_data_names_the_node(load_yaml: LoadYaml) -> None:
    """A condition that raises (list + int) is a NodeError of the routing node, not a crash."""
    workflow = load_yaml(
        "nodes:" + marking("a") + "    goto:\n      - {if: 'state.n + 1 > 3', to: b}\n" + marking("b")
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({"n": [1]})
    assert info.value.node == "a"
    assert "TypeError" in str(info.value)


def test_goto_condition_with_a_default_for_a_missing_key(load_yaml: LoadYaml) -> None:
    """| default(...) makes a condition on a missing key well defined."""
    workflow = load_yaml(
        "nodes:" + marking("a")
        + "    goto:\n      - {if: '(state.n | default(0)) > 3', to: b}\n      - {to: __end__}\n"
        + marking("b")
    )
    assert path_of(workflow) == ["a"]


def test_loop_with_goto_until_done(load_yaml: LoadYaml) -> None:
    """A goto back to an earlier node loops until a rule exits."""
    workflow = load_yaml(
        """
        nodes:
          - name: inc
            run: |
              return {"n": state["n"] + 1}
            goto:
              - {if: "state.n < 5", to: inc}
              - {to: __end__}
        """
    )
    assert workflow.invoke({"n": 0}) == {"n": 5}


# --- events and stream modes -------------------------------------------------------

CHAIN = """
nodes:
  - name: a
    run: |
      return {"x": 1}
  - name: b
    run: |
      return {"y": state["x"] + 1}
"""


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_updates_mode_events(load_yaml: LoadYaml) -> None:
    """updates mode yields start, a node_end per node with its update, and end."""
    events = list(load_yaml(CHAIN).stream({}))
    assert types_of(events) == ["start", "node_end", "node_end", "end"]
    assert [(e["node"], e["update"]) for e in events[1:3]] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert events[-1]["state"] == {"x": 1, "y": 2}


def test_values_mode_events(load_yaml: LoadYaml) -> None:
    """values mode yields the whole state after each node."""
    events = list(load_yaml(CHAIN).stream({}, stream_mode="values"))
    assert types_of(events) == ["start", "state", "state", "end"]
    assert [e["state"] for e in events[1:3]] == [{"x": 1}, {"x": 1, "y": 2}]


def test_debug_mode_events(load_yaml: LoadYaml) -> None:
    """debug mode yields node_start, node_end and state for every node."""
    events = list(load_yaml(CHAIN).stream({}, stream_mode="debug"))
    assert types_of(events) == [
        "start", "node_start", "node_end", "state", "node_start", "node_end", "state", "end",
    ]


def test_stream_modes_are_the_documented_three() -> None:
    """STREAM_MODES lists updates, values and debug."""
    assert set(STREAM_MODES) == {"updates", "values", "debug"}


def test_unknown_stream_mode_is_refused(load_yaml: LoadYaml) -> None:
    """A stream mode that does not exist is a ValueError."""
    with pytest.raises(ValueError, match="stream mode"):
        load_yaml(CHAIN).run({}, stream_mode="everything")


def test_invoke_equals_the_drained_stream(load_yaml: LoadYaml) -> None:
    """invoke returns the state of stream's end event."""
    workflow = load_yaml(CHAIN)
    assert workflow.invoke({"z": 0}) == list(workflow.stream({"z": 0}))[-1]["state"]


def test_stream_events_of_a_fan_out(load_yaml: LoadYaml) -> None:
    """A fan-out adds branch_start and branch_end events, one per branch."""
    workflow = load_yaml(
        """
        nodes:
          - name: go
          - name: a
            run: "x = 1"
          - name: b
            run: "x = 2"
          - name: join
            run: |
              return {"xs": [r["x"] for r in parallel_results]}
        edges:
          - {from: go, to: [a, b], parallel: true, fan_in: join}
        """
    )
    events = list(workflow.stream({}, stream_mode="debug"))
    starts = [e["branch"] for e in events if e["type"] == "branch_start"]
    ends = {e["branch"]: e["success"] for e in events if e["type"] == "branch_end"}
    assert starts == ["go[a]", "go[b]"]
    assert ends == {"go[a]": True, "go[b]": True}


def test_error_event_then_the_exception(load_yaml: LoadYaml) -> None:
    """A failing node yields an error event naming it, then raises NodeError."""
    workflow = load_yaml("nodes:\n  - name: bad\n    run: 'x = 1 / 0'\n")
    events: list[dict[str, Any]] = []
    with pytest.raises(NodeError):
        for event in workflow.stream({}):
            events.append(event)
    assert events[-1]["type"] == "error"
    assert events[-1]["node"] == "bad"
    assert "ZeroDivisionError" in events[-1]["error"]["message"]


def test_workflow_can_be_invoked_many_times(load_yaml: LoadYaml) -> None:
    """A loaded workflow is reusable; runs do not share state."""
    workflow = load_yaml(CHAIN)
    first = workflow.invoke({})
    first["x"] = 99
    assert workflow.invoke({}) == {"x": 1, "y": 2}


def test_one_workflow_runs_in_many_threads_at_once(load_yaml: LoadYaml) -> None:
    """A loaded workflow may be invoked from several threads; each run keeps its own state."""
    from concurrent.futures import ThreadPoolExecutor

    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: |
              return {"v": state["n"] * 2}
          - name: b
            run: |
              return {"v": state["n"] * 3}
          - name: j
            run: |
              return {"total": sum(r["v"] for r in parallel_results) + state["n"]}
        edges:
          - {from: s, to: [a, b], parallel: true, fan_in: j}
        """
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(pool.map(lambda n: workflow.invoke({"n": n})["total"], range(40)))
    assert totals == [6 * n for n in range(40)]


def test_invoke_does_not_modify_the_input(load_yaml: LoadYaml) -> None:
    """The caller's input dict is left as it was."""
    given = {"z": 1}
    load_yaml(CHAIN).invoke(given)
    assert given == {"z": 1}


def test_initial_state_is_not_shared_between_runs(load_yaml: LoadYaml) -> None:
    """A node mutating an initial_state list in place does not change the next run's defaults."""
    workflow = load_yaml(
        """
        initial_state: {log: []}
        nodes:
          - name: a
            run: |
              state["log"].append("x")
              return {"n": len(state["log"])}
        """
    )
    first = workflow.invoke({})
    second = workflow.invoke({})
    assert first == second == {"log": ["x"], "n": 1}


# --- recursion limit and node errors -----------------------------------------------


def test_recursion_limit_names_the_cycle(load_yaml: LoadYaml) -> None:
    """An endless loop stops at the recursion limit with an error naming the cycle's nodes."""
    workflow = load_yaml(
        """
        settings: {recursion_limit: 25}
        nodes:
          - name: ping
            run: "x = 1"
          - name: pong
            run: "y = 1"
            goto: ping
        """
    )
    with pytest.raises(RecursionLimitError) as info:
        workflow.invoke({})
    message = str(info.value)
    assert "25" in message
    assert "ping -> pong" in message or "pong -> ping" in message
    assert info.value.hint


def test_node_error_names_the_node_and_the_yaml_line(write_yaml: Callable[..., Path]) -> None:
    """An exception in a node is a NodeError with the node and the failing statement's line."""
    path = write_yaml(
        """
        name: fails
        nodes:
          - name: fine
            run: "x = 1"
          - name: broken
            run: |
              a = 1
              b = {}["missing"]
              c = 3
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    error = info.value
    assert error.node == "broken"
    assert error.location is not None
    assert error.location.file == str(path)
    assert error.location.line == 8
    assert "KeyError" in str(error)
    assert isinstance(error.__cause__, KeyError)


def test_node_error_line_in_function_mode(write_yaml: Callable[..., Path]) -> None:
    """A function-mode block reports the failing statement's line too."""
    path = write_yaml(
        """
        nodes:
          - name: broken
            run: |
              total = 0
              for i in range(3):
                  total += i
              return {"r": total / 0}
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    assert info.value.location is not None
    assert info.value.location.line == 7


def test_node_error_inside_steps_names_the_node(write_yaml: Callable[..., Path]) -> None:
    """A failing step is reported with its node and the step's own YAML line."""
    path = write_yaml(
        """
        nodes:
          - name: multi
            steps:
              - name: ok
                run: "x = 1"
              - name: bad
                run: |
                  y = [][3]
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    assert info.value.node is not None and info.value.node.startswith("multi")
    assert info.value.location is not None
    assert info.value.location.line == 8


def test_while_loop_body_error_aborts_the_node(write_yaml: Callable[..., Path]) -> None:
    """An exception in a while_loop body fails the loop node, at the body's YAML line."""
    path = write_yaml(
        """
        nodes:
          - name: loop
            type: while_loop
            condition: "true"
            max_iterations: 5
            body:
              - run: |
                  n = state.get("n", 0) + 1
                  if n == 3:
                      raise RuntimeError("third pass")
                  return {"n": n}
          - name: never
            run: "reached = True"
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    assert info.value.node is not None and info.value.node.startswith("loop")
    assert "third pass" in str(info.value)
    assert info.value.location is not None and info.value.location.line == 10


def test_node_error_in_an_action_names_the_node(load_yaml: LoadYaml) -> None:
    """A failing action is a NodeError naming its node."""
    workflow = load_yaml(
        "nodes:\n  - name: say\n    uses: log\n    with: {message: hi, level: '{{ state.level }}'}\n"
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({"level": "loud"})
    assert info.value.node == "say"


def test_node_error_in_a_branch_names_the_branch(load_yaml: LoadYaml) -> None:
    """A failing branch raises an error naming the branch and the node."""
    from tea.errors import BranchError

    workflow = load_yaml(
        """
        nodes:
          - name: go
          - name: ok
            run: "x = 1"
          - name: bad
            run: "x = 1 / 0"
          - name: join
            fan_in: true
        edges:
          - {from: go, to: [ok, bad], parallel: true, fan_in: join}
        """
    )
    with pytest.raises(BranchError) as info:
        workflow.invoke({})
    assert info.value.branch == "go[bad]"
    assert info.value.node == "bad"
    assert "ZeroDivisionError" in str(info.value)


# --- subgraph nodes ----------------------------------------------------------------

SUB = """
name: sub
initial_state: {greeting: hello}
state_schema:
  log: {reducer: append}
nodes:
  - name: greet
    run: |
      return {"text": state["greeting"] + " " + state.get("who", "nobody"), "log": "sub"}
"""


def test_a_subgraph_node_without_input_works_on_this_state(
    write_yaml: Callable[..., Path], load_yaml: LoadYaml
) -> None:
    """It reads this state's keys, and what it changes comes back; a key this graph reduces
    gets the subgraph's writes once, not its whole value again."""
    write_yaml(SUB, "sub.yaml")
    workflow = load_yaml(
        """
        state_schema:
          log: {reducer: append}
        nodes:
          - name: start
            run: |
              return {"who": "ann", "log": "start"}
          - name: inner
            subgraph: sub.yaml
        """
    )
    final = workflow.invoke({})
    assert final["text"] == "hello ann"
    assert final["log"] == ["start", "sub"]


def test_a_subgraph_node_with_input_and_output_mappings(
    write_yaml: Callable[..., Path], load_yaml: LoadYaml
) -> None:
    write_yaml(SUB, "sub.yaml")
    workflow = load_yaml(
        """
        nodes:
          - name: mapped
            subgraph: sub.yaml
            input: {who: "{{ state.name }}!"}
            output: {said: "{{ result.text }}"}
          - name: whole
            subgraph: sub.yaml
            input: {who: bob}
            output: sub_state
          - name: plain
            subgraph: sub.yaml
            input: {who: cy}
        """
    )
    final = workflow.invoke({"name": "ann"})
    assert final["said"] == "hello ann!"
    assert final["sub_state"] == {"greeting": "hello", "who": "bob", "text": "hello bob", "log": ["sub"]}
    assert final["text"] == "hello cy"  # without output:, the final state is the update
    assert final["name"] == "ann"


def test_a_subgraph_as_a_step(write_yaml: Callable[..., Path], load_yaml: LoadYaml) -> None:
    write_yaml(SUB, "sub.yaml")
    workflow = load_yaml(
        """
        nodes:
          - name: both
            steps:
              - run: |
                  return {"who": "dee"}
              - subgraph: sub.yaml
                output: {said: "{{ result.text }}"}
        """
    )
    assert workflow.invoke({})["said"] == "hello dee"


def test_a_subgraph_with_interrupts_is_a_load_error(write_yaml: Callable[..., Path], load_yaml: LoadYaml) -> None:
    write_yaml("nodes:\n  - name: wait\n    interrupt: before\n", "sub.yaml")
    with pytest.raises(LoadError) as caught:
        load_yaml("nodes:\n  - name: inner\n    subgraph: sub.yaml\n")
    assert "the subgraph sub.yaml has interrupts (wait)" in str(caught.value)
    assert caught.value.location.line == 3


def test_input_without_a_subgraph_is_a_load_error(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError, match="'input' belongs to a subgraph: node"):
        load_yaml("nodes:\n  - name: a\n    run: 'x = 1'\n    input: {x: 1}\n")


# --- timeout_seconds on a node -------------------------------------------------------


def test_a_python_node_past_its_timeout_fails_with_a_timeout(load_yaml: LoadYaml) -> None:
    """The node fails at its limit (its thread is abandoned); the error is a TimeoutError."""
    workflow = load_yaml(
        """
        nodes:
          - name: stuck
            timeout_seconds: 0.1
            run: |
              import threading
              threading.Event().wait(30)
              return {"never": True}
        """
    )
    with pytest.raises(NodeError) as caught:
        workflow.invoke({})
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.category == "timeout" and caught.value.node == "stuck"
    assert "timed out after 0.1 s (timeout_seconds); its thread is abandoned" in str(caught.value)


def test_a_node_within_its_timeout_runs_as_usual(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        nodes:
          - name: quick
            timeout_seconds: 30
            run: |
              return {"x": state["x"] + 1}
          - name: fails
            timeout_seconds: 30
            run: |
              return {"y": 1 / state["zero"]}
        """
    )
    with pytest.raises(NodeError) as caught:
        workflow.invoke({"x": 1, "zero": 0})
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert workflow.invoke({"x": 1, "zero": 1}) == {"x": 2, "zero": 1, "y": 1.0}


@pytest.mark.parametrize(
    "node",
    [
        "steps:\n      - run: 'x = 1'",
        "type: while_loop\n    condition: 'false'\n    max_iterations: 1\n    body:\n      - run: 'x = 1'",
    ],
)
def test_timeout_seconds_where_it_cannot_apply_is_a_load_error(load_yaml: LoadYaml, node: str) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(f"nodes:\n  - name: n\n    timeout_seconds: 5\n    {node}\n")
    assert "timeout_seconds" in str(caught.value) and caught.value.location.line == 3


# --- when: on a parallel edge ------------------------------------------------------

GATED = """
nodes:
  - name: s
  - name: a
    run: "v = 'a'"
  - name: b
    run: "v = 'b'"
  - name: other
    run: "went = 'other'"
  - name: f
    run: |
      return {"ran": [r["v"] for r in parallel_results]}
edges:
  - {from: s, to: a, type: parallel, fan_in: f, when: "state.go_a"}
  - {from: s, to: b, type: parallel, fan_in: f}
  - {from: s, to: other, when: "state.detour"}
  - {from: other, to: f}
"""


def test_a_parallel_edges_when_decides_whether_its_branch_runs(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(GATED)
    assert workflow.invoke({"go_a": True})["ran"] == ["a", "b"]
    assert workflow.invoke({"go_a": False})["ran"] == ["b"]


def test_after_a_fan_out_a_node_whose_edges_do_not_hold_goes_to_the_fan_in(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(GATED)
    assert "went" not in workflow.invoke({"detour": False})
    detoured = workflow.invoke({"detour": True, "go_a": True})
    assert detoured["went"] == "other" and detoured["ran"] == ["a", "b"]


def test_a_fan_out_whose_branches_all_stay_off_hands_the_fan_in_no_results(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: "v = 1"
          - name: f
            run: |
              return {"count": len(parallel_results)}
        edges:
          - {from: s, to: [a], parallel: true, fan_in: f, when: "state.go"}
        """
    )
    assert workflow.invoke({"go": False})["count"] == 0
    assert workflow.invoke({"go": True})["count"] == 1
