"""Fan-out on the thread strategy: static edges and dynamic_parallel (action, steps, subgraph)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea.errors import BranchError, NodeError
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]


def without_results(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the last fan-in's ``parallel_results`` (which stays in it)."""
    return {k: v for k, v in state.items() if k != "parallel_results"}

# Branch code that marks its start, waits until ``state["expect"]`` branches have started
# (at most ``state["wait"]`` s, default 10) and records its start/end on one clock: proof of
# concurrency (or of its absence) that never depends on how fast the machine is.
RENDEZVOUS = """
      import os, time, uuid
      started = time.monotonic()
      open(os.path.join(state["dir"], uuid.uuid4().hex), "w").close()
      deadline = started + state.get("wait", 10)
      while len(os.listdir(state["dir"])) < state["expect"] and time.monotonic() < deadline:
          time.sleep(0.005)
      return {"seen": len(os.listdir(state["dir"])), "span": [started, time.monotonic()]}
"""


@pytest.fixture
def meet(tmp_path: Path) -> str:
    """An empty directory where rendezvous branches leave their marks."""
    path = tmp_path / "meet"
    path.mkdir()
    return str(path)


def max_overlap(spans: list[list[float]]) -> int:
    """The largest number of spans open at one instant."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    open_now = best = 0
    for _, step in points:
        open_now += step
        best = max(best, open_now)
    return best


# --- static fan-out ----------------------------------------------------------------

STATIC = """
settings:
  parallel: {{max_workers: {workers}}}
nodes:
  - name: start
    run: |
      return {{"base": [0], "shared": "main"}}
  - name: a
    run: |
      state["base"].append("a")
      return {{"who": "a", "score": 1, "only_in_branch": True}}
  - name: b
    run: |
      state["base"].append("b")
      return {{"who": "b", "score": 2}}
  - name: c
    run: |
      return {{"who": "c", "score": 3, "base_seen": list(state["base"])}}
  - name: merge
    fan_in: true
    run: |
      return {{
          "scores": [r["score"] for r in parallel_results],
          "whos": [r["who"] for r in parallel_results],
          "base_in_c": parallel_results[2]["base_seen"],
          "main_who": state.get("who"),
      }}
  - name: after
    run: |
      return {{"after_saw": sorted(state)}}
edges:
  - from: start
    to: [a, b, c]
    parallel: true
    fan_in: merge
    parallel_strategy: thread
"""


def test_list_fan_out_merges_in_declaration_order(load_yaml: LoadYaml) -> None:
    """to: [a, b, c] + parallel: true runs the branches; parallel_results follow declaration order."""
    final = load_yaml(STATIC.format(workers=3)).invoke({})
    assert final["scores"] == [1, 2, 3]
    assert final["whos"] == ["a", "b", "c"]


def test_branches_get_deep_copies_of_the_state(load_yaml: LoadYaml) -> None:
    """A branch mutating a nested list changes neither its siblings nor the main state."""
    final = load_yaml(STATIC.format(workers=3)).invoke({})
    assert final["base_in_c"] == [0]
    assert final["base"] == [0]


def test_main_state_sees_branch_values_only_through_the_fan_in(load_yaml: LoadYaml) -> None:
    """Keys set in branches reach the main state only if the fan-in returns them."""
    final = load_yaml(STATIC.format(workers=3)).invoke({})
    assert "only_in_branch" not in final and "who" not in final and "score" not in final
    assert final["main_who"] is None


def test_run_continues_after_the_fan_in(load_yaml: LoadYaml) -> None:
    """After the fan-in node, routing goes on (here: implicit chaining to 'after')."""
    final = load_yaml(STATIC.format(workers=3)).invoke({})
    assert "scores" in final["after_saw"]
    assert "parallel_results" in final["after_saw"]  # the last fan-in's results stay (the dialect's)


def test_fan_in_runs_once(load_yaml: LoadYaml) -> None:
    """The fan-in node runs once, on the main path, not inside the branches."""
    events = list(load_yaml(STATIC.format(workers=3)).stream({}))
    ran = [e["node"] for e in events if e["type"] == "node_end"]
    assert ran == ["start", "merge", "after"]


def test_typed_parallel_edges_group_by_fan_in(load_yaml: LoadYaml) -> None:
    """The reference's type: parallel edges sharing a fan_in form one fan-out, in edge order."""
    workflow = load_yaml(
        """
        nodes:
          - name: start
          - name: a
            run: "x = 'a'"
          - name: b
            run: "x = 'b'"
          - name: join
            run: |
              return {"xs": [r["x"] for r in parallel_results]}
        edges:
          - {from: __start__, to: start}
          - {from: start, to: b, type: parallel, fan_in: join}
          - {from: start, to: a, type: parallel, fan_in: join}
          - {from: join, to: __end__}
        """
    )
    assert without_results(workflow.invoke({})) == {"xs": ["b", "a"]}


def test_fan_out_from_start(load_yaml: LoadYaml) -> None:
    """The seeds' form: from: __start__, to: [a, b, c], parallel: true, fan_in: merge."""
    workflow = load_yaml(
        """
        nodes:
          - name: a
            run: "x = 'a'"
          - name: b
            run: "x = 'b'"
          - name: c
            run: "x = 'c'"
          - name: merge
            run: |
              return {"xs": [r["x"] for r in parallel_results]}
          - name: after
            run: "done = True"
        edges:
          - from: __start__
            to: [a, b, c]
            parallel: true
            fan_in: merge
            parallel_strategy: thread
          - {from: merge, to: after}
        """
    )
    events = list(workflow.stream({}))
    assert [e["node"] for e in events if e["type"] == "node_end"] == ["merge", "after"]
    assert without_results(events[-1]["state"]) == {"xs": ["a", "b", "c"], "done": True}


def test_nested_fan_out_inside_a_branch(load_yaml: LoadYaml) -> None:
    """A branch may fan out itself; its inner fan-in then leads on to the outer one."""
    workflow = load_yaml(
        """
        nodes:
          - name: top
          - name: a
          - name: inner_a
            run: "y = 'ia'"
          - name: inner_b
            run: "y = 'ib'"
          - name: inner_join
            run: |
              return {"x": ",".join(r["y"] for r in parallel_results)}
          - name: b
            run: "x = 'b'"
          - name: join
            run: |
              return {"xs": [r["x"] for r in parallel_results]}
        edges:
          - {from: top, to: [a, b], parallel: true, fan_in: join}
          - {from: a, to: [inner_a, inner_b], parallel: true, fan_in: inner_join}
          - {from: inner_join, to: join}
        """
    )
    assert without_results(workflow.invoke({})) == {"xs": ["ia,ib", "b"]}


def test_two_fan_outs_in_sequence(load_yaml: LoadYaml) -> None:
    """A second fan-out after the first fan-in gets its own results."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: "x = 1"
          - name: b
            run: "x = 2"
          - name: j1
            run: |
              return {"first": [r["x"] for r in parallel_results]}
          - name: c
            run: |
              return {"x": sum(state["first"])}
          - name: j2
            run: |
              return {"second": [r["x"] for r in parallel_results]}
        edges:
          - {from: s, to: [a, b], parallel: true, fan_in: j1}
          - {from: j1, to: [c], parallel: true, fan_in: j2}
        """
    )
    assert without_results(workflow.invoke({})) == {"first": [1, 2], "second": [3]}


def test_a_branch_can_have_several_nodes(load_yaml: LoadYaml) -> None:
    """A branch walks its own edges until it reaches the fan-in (exclusive)."""
    workflow = load_yaml(
        """
        nodes:
          - name: start
          - name: a1
            run: "x = 1"
          - name: a2
            run: |
              return {"x": state["x"] + 10}
          - name: b
            run: "x = 2"
          - name: join
            run: |
              return {"xs": [r["x"] for r in parallel_results]}
        edges:
          - {from: start, to: [a1, b], parallel: true, fan_in: join}
          - {from: a1, to: a2}
        """
    )
    assert without_results(workflow.invoke({})) == {"xs": [11, 2]}


def test_results_keep_declaration_order_when_finishing_out_of_order(
    load_yaml: LoadYaml, tmp_path: Path
) -> None:
    """Branch a finishes after branch c, yet parallel_results stays a, b, c."""
    workflow = load_yaml(
        """
        nodes:
          - name: start
          - name: a
            run: |
              import os, time
              deadline = time.monotonic() + 10
              while not os.path.exists(os.path.join(state["dir"], "c-done")):
                  if time.monotonic() > deadline:
                      raise TimeoutError("c never finished")
                  time.sleep(0.005)
              return {"who": "a"}
          - name: b
            run: "who = 'b'"
          - name: c
            run: |
              import os
              open(os.path.join(state["dir"], "c-done"), "w").close()
              return {"who": "c"}
          - name: join
            run: |
              return {"whos": [r["who"] for r in parallel_results],
                      "ids": [r.branch_id for r in parallel_results]}
        edges:
          - {from: start, to: [a, b, c], parallel: true, fan_in: join}
        """
    )
    # Branch a cannot finish its node before branch c has run its own (it waits for
    # c's file), so c's work is done first; the results still come in declaration order.
    events = list(workflow.stream({"dir": str(tmp_path)}))
    assert (tmp_path / "c-done").exists()
    final = events[-1]["state"]
    assert final["whos"] == ["a", "b", "c"]
    assert final["ids"] == ["start[a]", "start[b]", "start[c]"]


def test_branch_result_fields_and_state(load_yaml: LoadYaml) -> None:
    """A result has success, branch_id and state; r["key"] and r.get read the branch state."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: "score = 7"
          - name: join
            run: |
              r = parallel_results[0]
              return {"ok": r.success, "id": r.branch_id, "score": r["score"],
                      "missing": r.get("nope", "dflt"), "in_state": r.state["score"]}
        edges:
          - {from: s, to: [a], parallel: true, fan_in: join}
        """
    )
    assert without_results(workflow.invoke({})) == {
        "ok": True, "id": "s[a]", "score": 7, "missing": "dflt", "in_state": 7,
    }


def test_max_workers_bounds_concurrency(load_yaml: LoadYaml, meet: str) -> None:
    """settings.parallel.max_workers: 1 runs the branches one at a time."""
    body = RENDEZVOUS.replace("\n      ", "\n              ")
    workflow = load_yaml(
        """
        settings:
          parallel: {max_workers: 1}
        nodes:
          - name: s
          - name: a
            run: |
        """ + body + """
          - name: b
            run: |
        """ + body + """
          - name: join
            run: |
              return {"seen": [r["seen"] for r in parallel_results],
                      "spans": [r["span"] for r in parallel_results]}
        edges:
          - {from: s, to: [a, b], parallel: true, fan_in: join}
        """
    )
    final = workflow.invoke({"dir": meet, "expect": 2, "wait": 0.3})
    assert final["seen"] == [1, 2]
    assert max_overlap(final["spans"]) == 1


def test_branches_really_run_at_once(load_yaml: LoadYaml, meet: str) -> None:
    """With enough workers all three branches are running at the same time."""
    body = RENDEZVOUS.replace("\n      ", "\n              ")
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: |
        """ + body + """
          - name: b
            run: |
        """ + body + """
          - name: c
            run: |
        """ + body + """
          - name: join
            run: |
              return {"seen": [r["seen"] for r in parallel_results],
                      "spans": [r["span"] for r in parallel_results]}
        edges:
          - {from: s, to: [a, b, c], parallel: true, fan_in: join, max_workers: 3}
        """
    )
    final = workflow.invoke({"dir": meet, "expect": 3})
    assert final["seen"] == [3, 3, 3]
    assert max_overlap(final["spans"]) == 3


def test_branches_see_the_runs_secrets(load_yaml: LoadYaml) -> None:
    """Secrets given to the run reach code and templates inside static and dynamic branches."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: a
            run: "k = secrets['token']"
          - name: j
            run: |
              return {"static": parallel_results[0]["k"]}
          - name: d
            type: dynamic_parallel
            items: "{{ [1] }}"
            steps:
              - uses: json.parse
                with: {text: "1"}
                output: {k: "{{ secrets.token }}"}
            fan_in: j2
          - name: j2
            run: |
              return {"dynamic": parallel_results[0]["k"]}
        edges:
          - {from: s, to: [a], parallel: true, fan_in: j}
        """
    )
    assert without_results(workflow.invoke({}, secrets={"token": "t0k"})) == {"static": "t0k", "dynamic": "t0k"}


def test_failed_branch_fails_the_run_with_its_branch_events(load_yaml: LoadYaml) -> None:
    """A failing branch raises BranchError; its branch_end (success false) is streamed first."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
          - name: good
            run: "x = 1"
          - name: bad
            run: "x = 1 / 0"
          - name: join
            fan_in: true
        edges:
          - {from: s, to: [good, bad], parallel: true, fan_in: join}
        """
    )
    events: list[dict[str, Any]] = []
    with pytest.raises(BranchError):
        for event in workflow.stream({}):
            events.append(event)
    ends = {e["branch"]: e["success"] for e in events if e["type"] == "branch_end"}
    assert ends == {"s[good]": True, "s[bad]": False}
    assert events[-1]["type"] == "error"


def test_on_branch_failure_continue_lets_the_fan_in_see_failures(load_yaml: LoadYaml) -> None:
    """With on_branch_failure: continue, the fan-in gets the failed result and decides."""
    workflow = load_yaml(
        """
        settings:
          parallel: {on_branch_failure: continue}
        nodes:
          - name: s
          - name: good
            run: "x = 1"
          - name: bad
            run: "x = 1 / 0"
          - name: join
            run: |
              return {"ok": [r.success for r in parallel_results],
                      "why": parallel_results[1].error.message}
        edges:
          - {from: s, to: [good, bad], parallel: true, fan_in: join}
        """
    )
    final = workflow.invoke({})
    assert final["ok"] == [True, False]
    assert "ZeroDivisionError" in final["why"]


# --- dynamic_parallel --------------------------------------------------------------


def test_dynamic_steps_mode(load_yaml: LoadYaml) -> None:
    """steps mode: each branch is a copy of the state plus item/index and its steps' outputs."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ state.numbers }}"
            item_var: n
            index_var: i
            steps:
              - run: |
                  return {"sq": state["n"] ** 2 + state["offset"]}
              - run: |
                  return {"label": f"{state['i']}:{state['sq']}"}
            fan_in: collect
          - name: collect
            run: |
              return {"labels": [r["label"] for r in parallel_results],
                      "offsets": [r["offset"] for r in parallel_results]}
        """
    )
    final = workflow.invoke({"numbers": [3, 1, 2], "offset": 100})
    assert final["labels"] == ["0:109", "1:101", "2:104"]
    assert final["offsets"] == [100, 100, 100]
    assert "n" not in final and "sq" not in final


def test_dynamic_default_item_and_index_vars(load_yaml: LoadYaml) -> None:
    """Without item_var/index_var the branch sees 'item' and 'index'."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ ['x', 'y'] }}"
            steps:
              - run: |
                  return {"tag": state["item"] * (state["index"] + 1)}
            fan_in: collect
          - name: collect
            run: |
              return {"tags": [r["tag"] for r in parallel_results]}
        """
    )
    assert without_results(workflow.invoke({})) == {"tags": ["x", "yy"]}


def test_dynamic_action_mode(load_yaml: LoadYaml) -> None:
    """action mode: the branch state is the action's update plus item and index only."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ state.objs }}"
            action:
              uses: json.stringify
              with: {data: "{{ state.item }}"}
              output: text
            fan_in: collect
          - name: collect
            run: |
              return {"texts": [r["text"]["text"] for r in parallel_results],
                      "keys": sorted(parallel_results[0].state)}
        """
    )
    final = workflow.invoke({"objs": [{"a": 1}, [2]], "unrelated": 1})
    assert final["texts"] == ['{"a": 1}', "[2]"]
    assert final["keys"] == ["index", "item", "text"]


def test_dynamic_subgraph_mode(load_yaml: LoadYaml, write_yaml: Callable[..., Path]) -> None:
    """subgraph mode: each item runs a sub-workflow from its input mapping."""
    write_yaml(
        """
        name: double
        initial_state: {factor: 2}
        nodes:
          - name: times
            run: |
              return {"out": state["value"] * state["factor"]}
        """,
        name="double.yaml",
    )
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [5, 6, 7] }}"
            subgraph: double.yaml
            input:
              value: "{{ state.item }}"
            fan_in: collect
          - name: collect
            run: |
              return {"outs": [r["out"] for r in parallel_results],
                      "keys": sorted(parallel_results[0].state)}
        """
    )
    final = workflow.invoke({"big": "not copied"})
    assert final["outs"] == [10, 12, 14]
    assert final["keys"] == ["factor", "index", "item", "out", "value"]


def test_dynamic_subgraph_items_do_not_share_its_initial_state(
    load_yaml: LoadYaml, write_yaml: Callable[..., Path]
) -> None:
    """Each item starts from its own copy of the sub-workflow's initial_state."""
    write_yaml(
        """
        initial_state: {seen: []}
        nodes:
          - name: add
            run: |
              state["seen"].append(state["value"])
              return {"count": len(state["seen"])}
        """,
        name="collect.yaml",
    )
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [1, 2, 3] }}"
            max_concurrency: 1
            subgraph: collect.yaml
            input: {value: "{{ state.item }}"}
            fan_in: j
          - name: j
            run: |
              return {"counts": [r["count"] for r in parallel_results]}
        """
    )
    assert without_results(workflow.invoke({})) == {"counts": [1, 1, 1]}


def test_dynamic_subgraph_missing_file_is_a_load_error(load_yaml: LoadYaml) -> None:
    """A subgraph path that does not exist is refused at load time."""
    from tea.errors import SchemaError

    with pytest.raises(SchemaError, match="subgraph file not found"):
        load_yaml(
            """
            nodes:
              - name: fan
                type: dynamic_parallel
                items: "{{ [1] }}"
                subgraph: nowhere.yaml
                fan_in: collect
              - name: collect
            """
        )


def test_dynamic_empty_items(load_yaml: LoadYaml) -> None:
    """No items: the fan-in runs with an empty parallel_results."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [] }}"
            steps:
              - run: "x = 1"
            fan_in: collect
          - name: collect
            run: |
              return {"n": len(parallel_results)}
        """
    )
    assert without_results(workflow.invoke({})) == {"n": 0}


def test_dynamic_items_that_are_not_a_list(load_yaml: LoadYaml) -> None:
    """items that render to a string is a NodeError naming the node."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ state.text }}"
            steps:
              - run: "x = 1"
            fan_in: collect
          - name: collect
        """
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({"text": "abc"})
    assert info.value.node == "fan"
    assert "items must be a list" in str(info.value)


def test_dynamic_items_template_failure_names_the_node(load_yaml: LoadYaml) -> None:
    """items whose template fails on the data is a NodeError of the dynamic node."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ state.n + 1 }}"
            steps:
              - run: "x = 1"
            fan_in: collect
          - name: collect
        """
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({"n": [1]})
    assert info.value.node == "fan"
    assert "TypeError" in str(info.value)


def test_dynamic_bad_max_concurrency_names_the_node(load_yaml: LoadYaml) -> None:
    """A max_concurrency that renders to a non-number is a NodeError of the dynamic node."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [1] }}"
            max_concurrency: "{{ state.width }}"
            steps:
              - run: "x = 1"
            fan_in: collect
          - name: collect
        """
    )
    with pytest.raises(NodeError, match="max_concurrency") as info:
        workflow.invoke({"width": "wide"})
    assert info.value.node == "fan"


def test_dynamic_max_concurrency(load_yaml: LoadYaml, meet: str) -> None:
    """max_concurrency bounds how many items run at once."""
    body = RENDEZVOUS.replace("\n      ", "\n                  ")
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2, 3] }}"
            max_concurrency: 2
            steps:
              - run: |
        """ + body + """
            fan_in: collect
          - name: collect
            run: |
              return {"spans": [r["span"] for r in parallel_results]}
        """
    )
    final = workflow.invoke({"dir": meet, "expect": 2})
    assert max_overlap(final["spans"]) == 2


def test_dynamic_max_concurrency_from_a_template(load_yaml: LoadYaml, meet: str) -> None:
    """max_concurrency may be a template; here it lets all items run together."""
    body = RENDEZVOUS.replace("\n      ", "\n                  ")
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2] }}"
            max_concurrency: "{{ state.width }}"
            steps:
              - run: |
        """ + body + """
            fan_in: collect
          - name: collect
            run: |
              return {"seen": [r["seen"] for r in parallel_results]}
        """
    )
    final = workflow.invoke({"dir": meet, "expect": 3, "width": 3})
    assert final["seen"] == [3, 3, 3]


def test_dynamic_failure_fails_the_run(load_yaml: LoadYaml) -> None:
    """A failing item raises BranchError naming the item's branch."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2] }}"
            steps:
              - run: |
                  if state["item"] == 1:
                      raise ValueError("item one is bad")
                  return {"ok": True}
            fan_in: collect
          - name: collect
        """
    )
    with pytest.raises(BranchError) as info:
        workflow.invoke({})
    assert info.value.branch == "fan[1]"
    assert "item one is bad" in str(info.value)


def test_dynamic_fail_fast_skips_the_remaining_items(load_yaml: LoadYaml) -> None:
    """fail_fast: true stops items that had not started when one failed."""
    workflow = load_yaml(
        """
        settings:
          parallel: {on_branch_failure: continue}
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2, 3, 4, 5] }}"
            max_concurrency: 1
            fail_fast: true
            steps:
              - run: |
                  if state["item"] == 1:
                      raise ValueError("stop here")
                  return {"ran": True}
            fan_in: collect
          - name: collect
            run: |
              return {"ran": [r.get("ran", False) for r in parallel_results]}
        """
    )
    assert workflow.invoke({})["ran"] == [True, False, False, False, False, False]


def test_dynamic_without_fail_fast_runs_every_item(load_yaml: LoadYaml) -> None:
    """fail_fast: false lets every other item finish."""
    workflow = load_yaml(
        """
        settings:
          parallel: {on_branch_failure: continue}
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2, 3] }}"
            max_concurrency: 1
            fail_fast: false
            steps:
              - run: |
                  if state["item"] == 1:
                      raise ValueError("only this one")
                  return {"ran": True}
            fan_in: collect
          - name: collect
            run: |
              return {"ran": [r.get("ran", False) for r in parallel_results]}
        """
    )
    assert workflow.invoke({})["ran"] == [True, False, True, True]


def test_dynamic_branch_state_is_a_deep_copy(load_yaml: LoadYaml) -> None:
    """Items mutating a shared nested list do not see each other's changes."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ [0, 1, 2] }}"
            max_concurrency: 1
            steps:
              - run: |
                  state["bag"].append(state["item"])
                  return {"bag_len": len(state["bag"])}
            fan_in: collect
          - name: collect
            run: |
              return {"lens": [r["bag_len"] for r in parallel_results]}
        """
    )
    final = workflow.invoke({"bag": []})
    assert final["lens"] == [1, 1, 1]
    assert final["bag"] == []


def test_dynamic_parallel_strategy_thread_is_accepted(load_yaml: LoadYaml) -> None:
    """parallel_strategy: thread on a dynamic node runs on the thread backend."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            parallel_strategy: thread
            items: "{{ [1, 2] }}"
            steps:
              - run: "y = state['item'] * 2"
            fan_in: collect
          - name: collect
            run: |
              return {"ys": [r["y"] for r in parallel_results]}
        """
    )
    events = list(workflow.stream({}, stream_mode="debug"))
    assert {e["strategy"] for e in events if e["type"] == "branch_start"} == {"thread"}
    assert events[-1]["state"]["ys"] == [2, 4]


WIDE = """
nodes:
  - name: fan
    type: dynamic_parallel
    items: "{{ state['items'] }}"
    fan_in: total
    steps:
      - run: |
          return {"doubled": state["item"] * 2}
  - name: total
    interrupt: after
    run: |
      return {"sum": sum(r["doubled"] for r in parallel_results)}
"""


def test_results_carry_their_update_and_read_through_to_the_shared_input(load_yaml: LoadYaml) -> None:
    """A branch result holds what the branch wrote, never a copy of the parent state."""
    big = ["x" * 100] * 2000
    final = load_yaml(WIDE.replace("    interrupt: after\n", "")).invoke({"items": [1, 2, 3], "big": big})
    records = final["parallel_results"]
    assert [r.update for r in records] == [
        {"item": i, "index": n, "doubled": 2 * i} for n, i in enumerate([1, 2, 3])
    ]
    assert records[0]["big"] is big and records[2].state["doubled"] == 6  # read through
    assert final["sum"] == 12


def test_a_checkpoint_after_a_wide_fan_out_holds_the_state_once(write_yaml: Callable[..., Path]) -> None:
    """Checkpoints do not grow with the fan-out's width (beyond what branches wrote)."""
    path = write_yaml(WIDE)
    big = "y" * 200_000
    run = tea.load(path).run({"items": list(range(300)), "big": big}, checkpoint_dir=path.parent / "ck")
    run.invoke()
    assert run.stopped is not None and run.checkpoint_path is not None
    size = run.checkpoint_path.stat().st_size
    assert len(big) < size < 2 * len(big)
