"""Lua's ``print`` in a node: on stderr, each line led by the node, as inline Python's print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import tea

from tea.lua import LuaRuntime

PRINTING = """\
name: lua_printing
nodes:
  - name: main
    language: lua
    run: |
      print("on the main path", 1, nil)
      return {{x = 1}}
  - name: fan
    type: dynamic_parallel
    items: "{{{{ [1, 2] }}}}"
    fan_in: done
    parallel_strategy: {strategy}
    steps:
      - language: lua
        run: |
          print("in branch " .. state.item)
          return {{y = state.item}}
  - name: done
    language: lua
    run: |
      return {{n = #parallel_results}}
"""


@pytest.fixture
def lua() -> LuaRuntime:
    return LuaRuntime()


def test_print_lines_are_led_by_the_node(lua: LuaRuntime, capfd: pytest.CaptureFixture[str]) -> None:
    lua.run_node("print('hello', 1, nil)\nprint('two\\nlines')", {}, {}, node="fetch")
    out, err = capfd.readouterr()
    assert out == ""
    assert err == "[fetch] hello\t1\tnil\n[fetch] two\n[fetch] lines\n"


def test_a_condition_prints_as_its_node(lua: LuaRuntime, capfd: pytest.CaptureFixture[str]) -> None:
    assert lua.eval_condition("print('checked') == nil", {}, {}, node="route")
    assert capfd.readouterr().err == "[route] checked\n"


def test_text_that_is_not_utf8_is_printed_not_an_error(lua: LuaRuntime, capfd: pytest.CaptureFixture[str]) -> None:
    assert lua.run_node("print('\\255ok') return {done = true}", {}, {}, node="raw") == {"done": True}
    assert capfd.readouterr().err == "[raw] ?ok\n"


def test_print_goes_through_sys_stderr(lua: LuaRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    """Through Python's sys.stderr (not the C stream): a progress display that replaced it
    prints the line above itself instead of being overwritten."""
    lua.run_node("print('seen by python')", {}, {}, node="n")
    assert capsys.readouterr().err == "[n] seen by python\n"


def test_a_printing_sandbox_is_still_a_sandbox(lua: LuaRuntime, capfd: pytest.CaptureFixture[str]) -> None:
    """The function print calls is not reachable from workflow code, and after a run print
    still works (outside any node: straight to stderr)."""
    found = lua.run_node("return {python = python == nil, debug = debug == nil}", {}, {}, node="probe")
    assert found == {"python": True, "debug": True}
    lua.run_node("print('again')", {}, {}, node="other")
    assert capfd.readouterr().err == "[other] again\n"


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_lua_prints_never_reach_stdout(tmp_path: Path, strategy: str) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(PRINTING.format(strategy=strategy), encoding="utf-8")
    proc = tea("run", path, "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 2
    assert "[main] on the main path\t1\tnil" in proc.stderr
    assert "[fan] in branch 1" in proc.stderr and "[fan] in branch 2" in proc.stderr
