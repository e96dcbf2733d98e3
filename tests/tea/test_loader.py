"""tea.loader: the YAML dialect's keys and node forms, and a located error for each bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import tea
from tea.errors import (
    InputError,
    LoadError,
    LoadErrors,
    ReferenceError_,
    SchemaError,
    WorkflowSyntaxError,
)
from tea.workflow import Workflow

WriteYaml = Callable[..., Path]
LoadYaml = Callable[..., Workflow]


def load_error(write_yaml: WriteYaml, text: str) -> LoadError:
    """The LoadError that loading ``text`` raises (its location's file is checked too)."""
    path = write_yaml(text)
    with pytest.raises(LoadError) as info:
        tea.load(path)
    error = info.value
    assert error.location.file == str(path)
    return error


# --- top-level keys ---------------------------------------------------------------


def test_minimal_workflow_loads_and_runs(load_yaml: LoadYaml) -> None:
    """A workflow needs only nodes; the name comes from the file when absent."""
    workflow = load_yaml("nodes:\n  - name: only\n    run: 'x = 1'\n", name="tiny.yaml")
    assert workflow.name == "tiny"
    assert workflow.invoke({}) == {"x": 1}


def test_name_and_description_are_metadata(load_yaml: LoadYaml) -> None:
    """name names the workflow; description is accepted and does not run."""
    workflow = load_yaml(
        "name: hello\ndescription: says hello\nnodes:\n  - name: a\n    run: 'x = 1'\n"
    )
    assert workflow.name == "hello"


def test_variables_reach_code_and_templates(load_yaml: LoadYaml) -> None:
    """variables is visible to inline Python and to templates."""
    workflow = load_yaml(
        """
        variables: {base: 10}
        nodes:
          - name: code
            run: |
              return {"a": variables["base"] + 1}
          - name: tmpl
            uses: json.parse
            with: {text: "{{ variables.base * 2 }}"}
            output: b
        """
    )
    final = workflow.invoke({})
    assert final["a"] == 11
    assert final["b"]["data"] == 20


def test_initial_state_is_merged_under_the_input(load_yaml: LoadYaml) -> None:
    """initial_state gives defaults; keys of the input win."""
    workflow = load_yaml(
        """
        initial_state: {a: 1, b: 1}
        nodes:
          - name: n
            run: |
              return {"sum": state["a"] + state["b"]}
        """
    )
    assert workflow.invoke({"b": 5}) == {"a": 1, "b": 5, "sum": 6}


def test_state_schema_is_accepted(load_yaml: LoadYaml) -> None:
    """state_schema with plain types (no reducer) loads and does not change merging."""
    workflow = load_yaml(
        """
        state_schema: {count: int, name: {type: str}}
        nodes:
          - name: n
            run: "count = 2"
        """
    )
    assert workflow.invoke({"count": 1}) == {"count": 2}


def test_settings_and_config_are_accepted(load_yaml: LoadYaml) -> None:
    """settings (with parallel) and config load; settings reach templates."""
    workflow = load_yaml(
        """
        settings:
          parallel: {strategy: thread, max_workers: 2}
          mood: calm
        config:
          raise_exceptions: true
        nodes:
          - name: n
            uses: json.parse
            with: {text: "1"}
            output: {m: "{{ settings.mood }}"}
        """
    )
    assert workflow.graph.parallel.max_workers == 2
    assert workflow.invoke({}) == {"m": "calm"}


def test_imports_add_namespaced_actions(load_yaml: LoadYaml, tmp_path: Path) -> None:
    """imports loads a module's register_actions; its actions are namespace.name."""
    (tmp_path / "my_actions.py").write_text(
        "def shout(state, text):\n"
        "    return {'loud': text.upper()}\n"
        "def register_actions(registry, engine):\n"
        "    registry['shout'] = shout\n",
        encoding="utf-8",
    )
    workflow = load_yaml(
        """
        imports:
          - {path: my_actions.py, namespace: my}
        nodes:
          - name: n
            uses: my.shout
            with: {text: hi}
        """
    )
    assert workflow.invoke({}) == {"loud": "HI"}


def test_data_and_version_keys_are_accepted(load_yaml: LoadYaml) -> None:
    """data constants are visible to templates; version is metadata."""
    workflow = load_yaml(
        """
        version: "1"
        data: {prompt: hi}
        nodes:
          - name: n
            uses: json.parse
            with: {text: "1"}
            output: {p: "{{ data.prompt }}"}
        """
    )
    assert workflow.invoke({}) == {"p": "hi"}


def test_loads_compiles_text_without_a_file() -> None:
    """tea.loads compiles YAML text directly."""
    workflow = tea.loads("name: t\nnodes:\n  - name: a\n    run: 'x = 2'\n")
    assert workflow.invoke({}) == {"x": 2}


# --- node forms --------------------------------------------------------------------


def test_node_kinds_are_recorded(load_yaml: LoadYaml, tmp_path: Path) -> None:
    """Each body form compiles to its own kind (as tea inspect shows)."""
    (tmp_path / "sub.yaml").write_text("nodes:\n  - name: s\n    run: 'x = 1'\n", encoding="utf-8")
    workflow = load_yaml(
        """
        nodes:
          - name: py
            run: "x = 1"
          - name: expr
            run: {type: expression, value: "1 + 1"}
          - name: act
            uses: log
            with: {message: hi}
          - name: st
            steps:
              - run: "y = 1"
          - name: loop
            type: while_loop
            condition: "false"
            max_iterations: 1
            body:
              - run: "z = 1"
          - name: dyn
            type: dynamic_parallel
            items: "{{ [1] }}"
            subgraph: sub.yaml
            fan_in: join
          - name: join
            fan_in: true
        """
    )
    kinds = {name: node.kind for name, node in workflow.graph.nodes.items()}
    assert kinds == {
        "py": "python", "expr": "expression", "act": "action", "st": "steps",
        "loop": "while_loop", "dyn": "dynamic_parallel", "join": "noop",
    }
    assert workflow.graph.nodes["join"].fan_in is True


def test_script_is_an_alias_of_run(load_yaml: LoadYaml) -> None:
    """script: works like run:."""
    assert load_yaml("nodes:\n  - name: a\n    script: 'x = 3'\n").invoke({}) == {"x": 3}


def test_expression_node_default_output_key(load_yaml: LoadYaml) -> None:
    """run: {type: expression} without output_key writes 'result'."""
    workflow = load_yaml(
        """
        nodes:
          - name: e
            run: {type: expression, value: "state['a'] * 3"}
        """
    )
    assert workflow.invoke({"a": 2}) == {"a": 2, "result": 6}


def test_expression_node_output_key(load_yaml: LoadYaml) -> None:
    """output_key names the key the expression's value goes to."""
    workflow = load_yaml(
        """
        nodes:
          - name: e
            run: {type: expression, value: "[x * 2 for x in state['xs']]", output_key: doubled}
        """
    )
    assert workflow.invoke({"xs": [1, 2]})["doubled"] == [2, 4]


def test_uses_with_output_string(load_yaml: LoadYaml) -> None:
    """output: <key> stores the action's whole result under that key."""
    workflow = load_yaml(
        """
        nodes:
          - name: p
            uses: json.parse
            with: {text: '{"a": [1, 2]}'}
            output: parsed
        """
    )
    assert workflow.invoke({}) == {"parsed": {"data": {"a": [1, 2]}, "success": True}}


def test_uses_with_output_mapping(load_yaml: LoadYaml) -> None:
    """output: {k: template} renders each value with result in scope."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
            uses: json.stringify
            with: {data: "{{ state.obj }}"}
            output:
              text: "{{ result.text }}"
              ok: "{{ result.success }}"
        """
    )
    assert workflow.invoke({"obj": {"k": 1}}) == {"obj": {"k": 1}, "text": '{"k": 1}', "ok": True}


def test_uses_without_output_merges_a_dict_result(load_yaml: LoadYaml) -> None:
    """Without output:, a dict result is the update."""
    workflow = load_yaml(
        """
        nodes:
          - name: p
            uses: json.parse
            with: {text: "[1]"}
        """
    )
    assert workflow.invoke({}) == {"data": [1], "success": True}


def test_log_action_logs_a_rendered_message(
    load_yaml: LoadYaml, caplog: pytest.LogCaptureFixture
) -> None:
    """uses: log writes the rendered message to the log and changes no state."""
    workflow = load_yaml(
        """
        nodes:
          - name: say
            uses: log
            with: {message: "count is {{ state.n }}"}
        """
    )
    with caplog.at_level("INFO"):
        assert workflow.invoke({"n": 3}) == {"n": 3}
    assert any("count is 3" in r.getMessage() for r in caplog.records)


def test_steps_run_in_order_on_one_state(load_yaml: LoadYaml) -> None:
    """steps: each step sees the previous steps' updates; the node update is all of them."""
    workflow = load_yaml(
        """
        nodes:
          - name: s
            steps:
              - name: one
                run: |
                  return {"a": 1}
              - name: two
                run: |
                  return {"b": state["a"] + 1}
              - name: three
                run: {type: expression, value: "state['b'] * 10", output_key: c}
        """
    )
    assert workflow.invoke({}) == {"a": 1, "b": 2, "c": 20}


def test_while_loop_stops_at_max_iterations(load_yaml: LoadYaml) -> None:
    """A while_loop whose condition stays true runs max_iterations passes."""
    workflow = load_yaml(
        """
        nodes:
          - name: spin
            type: while_loop
            condition: "true"
            max_iterations: 7
            body:
              - run: |
                  return {"n": state["n"] + 1}
        """
    )
    assert workflow.invoke({"n": 0}) == {"n": 7}


def test_while_loop_body_sees_its_own_updates(load_yaml: LoadYaml) -> None:
    """Each pass of the body sees the state left by the previous pass."""
    workflow = load_yaml(
        """
        nodes:
          - name: grow
            type: while_loop
            condition: "state.xs | length < 3"
            max_iterations: 10
            body:
              - run: |
                  return {"xs": state["xs"] + [len(state["xs"])]}
        """
    )
    assert workflow.invoke({"xs": []}) == {"xs": [0, 1, 2]}


# --- bad input ---------------------------------------------------------------------


def test_yaml_syntax_error(write_yaml: WriteYaml) -> None:
    """Broken YAML is a WorkflowSyntaxError at its line."""
    error = load_error(write_yaml, "nodes:\n  - name: a\n    run: [x\n  - name: b\n")
    assert isinstance(error, WorkflowSyntaxError)
    assert error.location.line is not None
    assert "YAML syntax error" in error.message


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """Loading a file that does not exist is an InputError naming it."""
    with pytest.raises(InputError, match="not found"):
        tea.load(tmp_path / "nope.yaml")


def test_document_that_is_not_a_mapping(write_yaml: WriteYaml) -> None:
    """A list at the top is refused."""
    error = load_error(write_yaml, "- a\n- b\n")
    assert isinstance(error, SchemaError)


def test_missing_nodes(write_yaml: WriteYaml) -> None:
    """A workflow without nodes is refused with a hint."""
    error = load_error(write_yaml, "name: empty\n")
    assert "'nodes' must be a non-empty list" in error.message
    assert error.hint


def test_unknown_top_level_key_suggests_the_nearest(write_yaml: WriteYaml) -> None:
    """A misspelt top-level key is refused at its line with a suggestion."""
    error = load_error(write_yaml, "name: x\nvariabels: {}\nnodes:\n  - name: a\n")
    assert isinstance(error, SchemaError)
    assert (error.location.line, error.location.column) == (2, 1)
    assert "unknown top-level key 'variabels'" in error.message
    assert error.hint == "did you mean 'variables'?"


def test_unknown_node_key_suggests_the_nearest(write_yaml: WriteYaml) -> None:
    """A misspelt node key is refused at its line with a suggestion."""
    error = load_error(write_yaml, "nodes:\n  - name: a\n    rnu: 'x = 1'\n")
    assert isinstance(error, SchemaError)
    assert (error.location.line, error.location.column) == (3, 5)
    assert "unknown key 'rnu'" in error.message
    assert error.hint == "did you mean 'run'?"


def test_unknown_step_key_suggests_the_nearest(write_yaml: WriteYaml) -> None:
    """A misspelt key inside steps: is refused too."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n    steps:\n      - name: s\n        uses_: log\n"
    )
    assert error.location.line == 5
    assert error.hint == "did you mean 'uses'?"


def test_duplicate_node_names(write_yaml: WriteYaml) -> None:
    """A second node with a taken name is refused at its name, pointing at the first."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n    run: 'x = 1'\n  - name: a\n    run: 'x = 2'\n"
    )
    assert isinstance(error, SchemaError)
    assert error.location.line == 4
    assert "duplicate node name 'a'" in error.message
    assert "line 2" in (error.hint or "")


def test_goto_to_a_missing_node(write_yaml: WriteYaml) -> None:
    """goto naming a node that does not exist is a ReferenceError_ at the goto."""
    error = load_error(
        write_yaml, "nodes:\n  - name: start\n    run: 'x = 1'\n    goto: finsh\n  - name: finish\n"
    )
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 4
    assert "finsh" in error.message
    assert error.hint == "did you mean 'finish'?"


def test_goto_rule_to_a_missing_node(write_yaml: WriteYaml) -> None:
    """A goto rule's 'to' naming a missing node is refused at that rule."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: a\n    goto:\n      - if: state.x\n        to: nowhere\n"
        "      - to: __end__\n",
    )
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 5


def test_edge_to_a_missing_node(write_yaml: WriteYaml) -> None:
    """An edge whose 'to' is missing is refused at the edge."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\nedges:\n  - from: a\n    to: ghost\n"
    )
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 5
    assert "ghost" in error.message


def test_edge_from_a_missing_node(write_yaml: WriteYaml) -> None:
    """An edge whose 'from' is missing is refused at its 'from'."""
    error = load_error(write_yaml, "nodes:\n  - name: a\nedges:\n  - from: ghost\n    to: a\n")
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 4


def test_fan_in_of_an_edge_names_a_missing_node(write_yaml: WriteYaml) -> None:
    """A parallel edge's fan_in naming a missing node is refused at the fan_in."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: a\n  - name: b\nedges:\n  - from: a\n    to: [b]\n"
        "    parallel: true\n    fan_in: join\n",
    )
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 8
    assert "join" in error.message


def test_fan_in_of_a_dynamic_node_names_a_missing_node(write_yaml: WriteYaml) -> None:
    """A dynamic_parallel fan_in naming a missing node is refused at the fan_in."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n"
        "    steps:\n      - run: 'x = 1'\n    fan_in: collect\n",
    )
    assert isinstance(error, ReferenceError_)
    assert error.location.line == 7


def test_fan_out_without_fan_in(write_yaml: WriteYaml) -> None:
    """A parallel edge without fan_in is refused with a hint."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n  - name: b\nedges:\n  - from: a\n    to: [b]\n    parallel: true\n"
    )
    assert isinstance(error, SchemaError)
    assert error.location.line == 5
    assert "no fan_in" in error.message
    assert "fan_in" in (error.hint or "")


def test_typed_parallel_edge_without_fan_in(write_yaml: WriteYaml) -> None:
    """The reference's type: parallel edge needs fan_in too."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n  - name: b\nedges:\n  - from: a\n    to: b\n    type: parallel\n"
    )
    assert "no fan_in" in error.message


def test_list_of_targets_without_fan_in(write_yaml: WriteYaml) -> None:
    """to: [a, b] is a fan-out, so it needs fan_in even without parallel: true."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n  - name: b\n  - name: c\nedges:\n  - from: a\n    to: [b, c]\n"
    )
    assert "no fan_in" in error.message


def test_dynamic_parallel_without_a_body(write_yaml: WriteYaml) -> None:
    """dynamic_parallel with none of action/steps/subgraph is refused."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n    fan_in: j\n"
        "  - name: j\n",
    )
    assert isinstance(error, SchemaError)
    assert error.location.line == 2
    assert "exactly one of action, steps, subgraph" in error.message


def test_dynamic_parallel_with_two_bodies(write_yaml: WriteYaml) -> None:
    """dynamic_parallel with both steps and action is refused at the second one."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n"
        "    steps:\n      - run: 'x = 1'\n    action:\n      uses: log\n    fan_in: j\n"
        "  - name: j\n",
    )
    assert error.location.line in (5, 7)
    assert "found action, steps" in error.message or "found steps, action" in error.message


def test_dynamic_parallel_without_fan_in(write_yaml: WriteYaml) -> None:
    """dynamic_parallel needs a fan_in."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n"
        "    steps:\n      - run: 'x = 1'\n",
    )
    assert "fan_in" in error.message


def test_dynamic_parallel_without_items(write_yaml: WriteYaml) -> None:
    """dynamic_parallel needs items."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    steps:\n      - run: 'x = 1'\n"
        "    fan_in: j\n  - name: j\n",
    )
    assert "items" in error.message


def test_python_syntax_error_names_the_yaml_line(write_yaml: WriteYaml) -> None:
    """A syntax error in run: is reported at the YAML line of the bad statement."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: a\n    run: |\n      x = 1\n      y = (\n      z = 2\n",
    )
    assert isinstance(error, WorkflowSyntaxError)
    assert (error.location.line, error.location.column) == (5, 11)
    assert "Python syntax error" in error.message


def test_python_syntax_error_in_function_mode_names_the_yaml_line(write_yaml: WriteYaml) -> None:
    """The same holds for a block with a top-level return."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: a\n    run: |\n      x = 1\n      return (x, ]\n",
    )
    assert (error.location.line, error.location.column) == (5, 18)


def test_python_syntax_error_in_inline_code_has_the_column(write_yaml: WriteYaml) -> None:
    """In run: "<code>" the column counts from the code's first character."""
    error = load_error(write_yaml, 'nodes:\n  - name: a\n    run: "x = = 1"\n')
    assert (error.location.line, error.location.column) == (3, 15)


def test_expression_syntax_error(write_yaml: WriteYaml) -> None:
    """A run: {type: expression} that does not parse is a load error."""
    error = load_error(write_yaml, "nodes:\n  - name: a\n    run: {type: expression, value: '1 +'}\n")
    assert isinstance(error, WorkflowSyntaxError)
    assert error.location.line == 3


def test_jinja_syntax_error_in_with(write_yaml: WriteYaml) -> None:
    """A Jinja syntax error in with: is a load error at its line."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n    uses: log\n    with:\n      message: '{{ state.x + }}'\n"
    )
    assert isinstance(error, WorkflowSyntaxError)
    assert (error.location.line, error.location.column) == (5, 16)
    assert "Jinja syntax error" in error.message


def test_jinja_syntax_error_in_a_condition(write_yaml: WriteYaml) -> None:
    """A Jinja syntax error in a goto condition is a load error at its line."""
    error = load_error(
        write_yaml, "nodes:\n  - name: a\n    goto:\n      - if: 'state.x >'\n        to: __end__\n"
    )
    assert isinstance(error, WorkflowSyntaxError)
    assert error.location.line == 4


def test_while_loop_needs_max_iterations(write_yaml: WriteYaml) -> None:
    """A while_loop without max_iterations is refused with a hint."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: w\n    type: while_loop\n    condition: 'true'\n"
        "    body:\n      - run: 'x = 1'\n",
    )
    assert "max_iterations" in error.message
    assert error.hint


def test_unknown_node_type_suggests_the_nearest(write_yaml: WriteYaml) -> None:
    """An unknown type: is refused with the nearest known type."""
    error = load_error(write_yaml, "nodes:\n  - name: w\n    type: while_lop\n")
    assert error.location.line == 3
    assert error.hint == "did you mean 'while_loop'?"


def test_two_bodies_in_one_node(write_yaml: WriteYaml) -> None:
    """A node with both run: and uses: is refused."""
    error = load_error(write_yaml, "nodes:\n  - name: a\n    run: 'x = 1'\n    uses: log\n")
    assert error.location.line == 4
    assert "both" in error.message


def test_unknown_action_suggests_the_nearest(write_yaml: WriteYaml) -> None:
    """An unknown action name is refused with a suggestion."""
    error = load_error(write_yaml, "nodes:\n  - name: a\n    uses: json.prase\n")
    assert error.location.line == 3
    assert "json.parse" in (error.hint or "")


def test_unknown_parallel_strategy(write_yaml: WriteYaml) -> None:
    """An unknown parallel_strategy is a load error naming the known ones."""
    error = load_error(
        write_yaml,
        "nodes:\n  - name: a\n  - name: b\n  - name: j\nedges:\n  - from: a\n    to: [b]\n"
        "    parallel: true\n    fan_in: j\n    parallel_strategy: thred\n",
    )
    assert error.location.line == 10
    assert "thread" in error.message


def test_several_problems_are_reported_together(write_yaml: WriteYaml) -> None:
    """Independent problems in one file all come back in one LoadErrors."""
    error = load_error(
        write_yaml,
        "nme: x\nnodes:\n  - name: a\n    rnu: 'x = 1'\n  - name: a\n  - name: b\n    goto: ghost\n",
    )
    assert isinstance(error, LoadErrors)
    lines = sorted(e.location.line for e in error.errors if e.location.line)
    assert lines == [1, 4, 5, 7]
    assert len(str(error).splitlines()) >= 4


def test_error_text_is_file_line_column_message(write_yaml: WriteYaml) -> None:
    """A load error prints as file:line:col: message."""
    path = write_yaml("nodes:\n  - name: a\n    rnu: 'x = 1'\n")
    with pytest.raises(LoadError) as info:
        tea.load(path)
    assert str(info.value).splitlines()[0] == f"{path}:3:5: unknown key 'rnu' in node 'a'"
