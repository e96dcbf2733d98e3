"""Lua through the whole engine: load-time syntax errors, conditions, and one runtime per branch."""

from __future__ import annotations

import textwrap

import pytest

import tea
from tea.errors import NodeError, WorkflowSyntaxError

ISOLATION = """
name: lua_isolation
nodes:
  - name: start
    language: lua
    run: |
      main_only = "main"
      return {started = true}
  - name: a
    language: lua
    run: |
      branch_global = "a"
      function helper() return "a" end
      local t = os.clock() while os.clock() - t < 0.05 do end
      return {saw_main = main_only ~= nil, saw_b = b_global ~= nil}
  - name: b
    language: lua
    run: |
      b_global = "b"
      local t = os.clock() while os.clock() - t < 0.05 do end
      return {saw_main = main_only ~= nil, saw_a = branch_global ~= nil or helper ~= nil}
  - name: join
    language: lua
    run: |
      local seen = {}
      for i, r in ipairs(parallel_results) do
        seen[i] = r.saw_main or r.saw_a == true or r.saw_b == true
      end
      return {seen = seen, main_kept = main_only, leaked = branch_global ~= nil or b_global ~= nil}
edges:
  - from: start
    to: [a, b]
    parallel: true
    parallel_strategy: STRATEGY
    fan_in: join
"""


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_each_branch_has_its_own_runtime(strategy: str) -> None:
    """Branches see neither the main path's globals nor each other's; the main path keeps its own."""
    flow = tea.loads(ISOLATION.replace("STRATEGY", strategy))
    final = flow.invoke({})
    assert final["seen"] == [False, False]
    assert final["main_kept"] == "main"
    assert final["leaked"] is False


def test_lua_syntax_error_is_a_load_error_with_the_yaml_line() -> None:
    """A Lua syntax error fails loading, at the YAML line of the offending Lua line."""
    text = textwrap.dedent(
        """\
        name: bad
        nodes:
          - name: calc
            language: lua
            run: |
              local a = 1
              local = 2
        """
    )
    with pytest.raises(WorkflowSyntaxError) as caught:
        tea.loads(text, "bad.yaml")
    assert caught.value.location.line == 7
    assert "<name> expected near '='" in caught.value.message


def test_lua_condition_syntax_error_is_a_load_error() -> None:
    """A {lua: ...} condition that does not parse fails loading."""
    text = textwrap.dedent(
        """\
        name: bad_condition
        nodes:
          - name: a
            run: "return {}"
            goto:
              - if: {lua: "state.x >"}
                to: __end__
        """
    )
    with pytest.raises(WorkflowSyntaxError, match="Lua syntax error"):
        tea.loads(text, "bad.yaml")


def test_lua_condition_routes_inside_a_fan_out() -> None:
    """A Lua goto condition inside a branch picks the branch's next node."""
    text = textwrap.dedent(
        """\
        name: routed
        nodes:
          - name: start
            run: "return {'n': 7}"
          - name: check
            language: lua
            run: "return {big = state.n > 5}"
            goto:
              - if: {lua: "state.big and state.n % 2 == 1"}
                to: odd
              - to: join
          - name: odd
            language: lua
            run: "return {kind = 'big odd'}"
          - name: other
            language: lua
            run: "return {other = true}"
          - name: join
            language: lua
            run: |
              local kinds = {}
              for i, r in ipairs(parallel_results) do kinds[i] = r.kind or "none" end
              return {kinds = kinds}
        edges:
          - from: start
            to: [check, other]
            parallel: true
            fan_in: join
        """
    )
    assert tea.loads(text).invoke({})["kinds"] == ["big odd", "none"]


def test_lua_runtime_error_names_node_and_line() -> None:
    """A failing Lua node stops the run with a NodeError naming the node and the Lua line."""
    text = textwrap.dedent(
        """\
        name: failing
        nodes:
          - name: divide
            language: lua
            run: |
              local x = 1
              return {y = x + state.missing}
        """
    )
    with pytest.raises(NodeError, match="line 2: attempt to perform arithmetic") as caught:
        tea.loads(text).invoke({})
    assert caught.value.node == "divide"
