"""tea.pycode: inline Python run: blocks, compiled once, located at their YAML lines."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea.errors import Location, NodeError, WorkflowSyntaxError
from tea.pycode import PythonCode
from tea.workflow import Workflow

HERE = Location("flow.yaml", 10)


def run(source: str, state: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any] | None:
    return PythonCode(source, HERE).run(state or {}, kwargs.pop("variables", {}), **kwargs)


def test_function_mode_dict_return_is_the_update() -> None:
    """A block with a top-level return is a function body; its dict is the update."""
    assert run('return {"b": state["a"] + 1}', {"a": 1}) == {"b": 2}


def test_function_mode_non_dict_return_becomes_result() -> None:
    """A non-dict return value v becomes {"result": v}."""
    assert run("return 41 + 1") == {"result": 42}


def test_function_mode_none_return_becomes_result_none() -> None:
    """return None gives {"result": None}, as the reference does."""
    assert run("x = 1\nreturn None") == {"result": None}


def test_function_mode_return_inside_a_branch() -> None:
    """A return inside an if at top level still makes a function body."""
    code = "if state['n'] > 1:\n    return {'big': True}\nreturn {'big': False}"
    assert run(code, {"n": 5}) == {"big": True}
    assert run(code, {"n": 0}) == {"big": False}


def test_function_mode_locals_are_not_the_update() -> None:
    """In a function body only the returned dict counts, not other locals."""
    assert run("tmp = 5\nreturn {'x': tmp}") == {"x": 5}


def test_locals_mode_non_underscore_locals_are_the_update() -> None:
    """Without a return, the block's non-underscore locals are the update."""
    assert run("x = 1\ny = x + 1\n_private = 3") == {"x": 1, "y": 2}


def test_locals_mode_skips_modules_functions_and_classes() -> None:
    """Imports, defs and classes are not part of the update."""
    code = "import math\ndef f():\n    return 2\nclass K:\n    pass\nv = f() + math.floor(1.5)"
    assert run(code) == {"v": 3}


def test_locals_mode_does_not_echo_injected_names() -> None:
    """state, variables, json and parallel_results are not returned as keys."""
    assert run("n = len(json.dumps(state))", {"a": 1}) == {"n": 8}


def test_return_only_inside_a_nested_function_keeps_locals_mode() -> None:
    """A return inside a def does not make the whole block a function body."""
    assert run("def f():\n    return 3\nv = f()") == {"v": 3}


def test_return_word_in_a_string_keeps_locals_mode() -> None:
    """A line of a string literal that starts with 'return' does not change the mode."""
    assert run('text = """\nreturn of the king\n"""\nn = 1') == {
        "text": "\nreturn of the king\n",
        "n": 1,
    }


def test_multiline_string_keeps_its_text_in_function_mode() -> None:
    """Wrapping a block in a function does not re-indent the lines of its strings."""
    assert run('text = """a\nb"""\nreturn {"t": text}') == {"t": "a\nb"}


def test_state_item_assignment_in_locals_mode_updates_the_key() -> None:
    """Assigning state["k"] makes k part of the update."""
    assert run('state["y"] = 5', {"x": 1}) == {"y": 5}


def test_state_item_assignment_in_function_mode_updates_the_key() -> None:
    """state["k"] = v in a function body is merged with the returned dict."""
    assert run('state["y"] = 5\nreturn {"z": 1}') == {"y": 5, "z": 1}


def test_returned_dict_wins_over_state_assignment() -> None:
    """When both set a key, the returned value is the one that counts."""
    assert run('state["k"] = 1\nreturn {"k": 2}') == {"k": 2}


def test_state_assignment_does_not_touch_the_callers_dict() -> None:
    """The code works on a view; the caller's state dict is not reassigned in place."""
    state = {"x": 1}
    run('state["x"] = 2', state)
    assert state == {"x": 1}


def test_code_sees_variables_and_secrets() -> None:
    """variables and secrets are in scope."""
    update = run("v = variables['a'] + secrets['s']", variables={"a": "x"}, secrets={"s": "y"})
    assert update == {"v": "xy"}


def test_code_sees_parallel_results() -> None:
    """parallel_results is in scope (None outside a fan-in)."""
    assert run("return sum(parallel_results)", parallel_results=[1, 2]) == {"result": 3}
    assert run("return parallel_results") == {"result": None}


def test_syntax_error_in_locals_mode_names_the_yaml_line() -> None:
    """A syntax error is a WorkflowSyntaxError at the YAML line of the bad statement."""
    with pytest.raises(WorkflowSyntaxError) as info:
        PythonCode("x = 1\ny = (\n", HERE)
    assert info.value.location == Location("flow.yaml", 11)


def test_syntax_error_in_function_mode_names_the_yaml_line() -> None:
    """A syntax error in a function body is at its YAML line too."""
    with pytest.raises(WorkflowSyntaxError) as info:
        PythonCode("x = 1\nreturn {x: }\n", HERE)
    assert info.value.location.line == 11


def test_runtime_traceback_points_at_the_yaml_file_and_line() -> None:
    """A runtime error's traceback names the workflow file and the statement's YAML line."""
    code = PythonCode("a = 1\nb = {}['missing']\n", HERE)
    with pytest.raises(KeyError) as info:
        code.run({}, {})
    frames = [f for f in traceback.extract_tb(info.value.__traceback__) if f.filename == "flow.yaml"]
    assert [f.lineno for f in frames] == [11]


def test_runtime_traceback_line_in_function_mode() -> None:
    """In a function body the traceback line is the YAML line as well."""
    code = PythonCode("a = 1\nb = 2\nreturn {'c': 1 / 0}\n", HERE)
    with pytest.raises(ZeroDivisionError) as info:
        code.run({}, {})
    frames = [f for f in traceback.extract_tb(info.value.__traceback__) if f.filename == "flow.yaml"]
    assert [f.lineno for f in frames] == [12]


def test_pickles_and_runs_after_unpickling() -> None:
    """Compiled code survives pickling (rebuilt from source) for process workers."""
    code = pickle.loads(pickle.dumps(PythonCode("return {'x': state['a'] * 2}", HERE)))
    assert code.run({"a": 4}, {}) == {"x": 8}
    assert code.location == HERE


def test_code_is_compiled_once_at_load(load_yaml: Callable[..., Workflow]) -> None:
    """The code object is built at load time and reused by every run."""
    workflow = load_yaml(
        """
        name: once
        nodes:
          - name: add
            run: |
              return {"n": state["n"] + 1}
        """
    )
    code = workflow.graph.nodes["add"].body.code  # type: ignore[union-attr]
    compiled = code._code
    assert workflow.invoke({"n": 1}) == {"n": 2}
    assert workflow.invoke({"n": 5}) == {"n": 6}
    assert code._code is compiled


def test_block_scalar_code_starts_on_the_line_after_the_bar(write_yaml: Callable[..., Path]) -> None:
    """For run: | the first code line is the line after the '|'."""
    import tea

    path = write_yaml(
        """
        name: lines
        nodes:
          - name: first
            run: |
              ok = 1
              bad = undefined_name
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    assert info.value.location is not None
    assert info.value.location.line == 6


def test_inline_code_is_located_on_its_own_line(write_yaml: Callable[..., Path]) -> None:
    """For run: "<code>" on one line, the code's line is that line."""
    import tea

    path = write_yaml(
        """
        name: inline
        nodes:
          - name: first
            run: "x = 1 / 0"
        """
    )
    with pytest.raises(NodeError) as info:
        tea.load(path).invoke({})
    assert info.value.location is not None
    assert info.value.location.line == 4


def test_run_blocks_with_templates_are_rendered_per_call_as_the_reference_does(
    write_yaml: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = write_yaml(
        """
        nodes:
          - name: a
            run: |
              x = {{ state.count }} + 1
              return {"y": x, "who": "{{ state.who }}"}
        """
    )
    with caplog.at_level("WARNING", logger="tea.loader"):
        workflow = tea.load(path)
    assert "rendered and compiled per call" in caplog.text and "node 'a'" in caplog.text
    assert workflow.invoke({"count": 4, "who": "bob"})["y"] == 5
    second = workflow.invoke({"count": 9, "who": "ann"})
    assert (second["y"], second["who"]) == (10, "ann")


def test_a_templated_block_that_renders_to_bad_python_names_the_node(write_yaml: Callable[..., Path]) -> None:
    workflow = tea.load(write_yaml('nodes:\n  - name: a\n    run: "x = {{ state.code }}"\n'))
    with pytest.raises(tea.RunError, match=r"node 'a'.*syntax error.*after rendering"):
        workflow.invoke({"code": "1 +"})
