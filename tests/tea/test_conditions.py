"""tea.conditions: the condition forms of edges, goto rules and while loops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tea
from tea.conditions import compile_condition, truthy
from tea.errors import Location, SchemaError, WorkflowSyntaxError
from tea.scope import Scope
from tea.workflow import Workflow

HERE = Location("flow.yaml", 3, 5)


@pytest.fixture(scope="module")
def scope() -> Scope:
    return tea.loads("nodes: [{name: only}]\nvariables: {limit: 2}\n").branch_program().scope()


def check(raw: Any, scope: Scope, **state: Any) -> bool:
    return compile_condition(raw, HERE).test(state, scope)


def test_yaml_booleans_are_constants(scope: Scope) -> None:
    """YAML true/false are constant conditions."""
    assert check(True, scope) is True
    assert check(False, scope, x=1) is False


def test_true_and_false_strings_are_constants(scope: Scope) -> None:
    """The strings "true"/"false" are literals, not state keys."""
    assert check("true", scope, true=False) is True
    assert check("False", scope, false=True) is False


def test_bare_key_reads_the_state(scope: Scope) -> None:
    """A bare identifier is true when that state key is truthy."""
    assert check("done", scope, done=True) is True
    assert check("done", scope, done=0) is False
    assert check("done", scope) is False


def test_negated_key(scope: Scope) -> None:
    """!key is true when the key is falsy or missing."""
    assert check("!done", scope, done=False) is True
    assert check("!done", scope) is True
    assert check("!done", scope, done="yes") is False


def test_jinja_expression_without_braces(scope: Scope) -> None:
    """A Jinja expression without braces is evaluated."""
    assert check("state.count > 3", scope, count=4) is True
    assert check("state.count > 3", scope, count=3) is False


def test_jinja_expression_with_braces(scope: Scope) -> None:
    """The same expression inside {{ }} gives the same answer."""
    assert check("{{ state.count > 3 }}", scope, count=4) is True
    assert check("{{ state.count > 3 }}", scope, count=1) is False


def test_expression_sees_variables(scope: Scope) -> None:
    """Conditions see the workflow's variables."""
    assert check("state.n >= variables.limit", scope, n=2) is True


def test_missing_key_in_an_expression_is_false(scope: Scope) -> None:
    """A missing key in an expression is falsy, not an error."""
    assert check("state.nothing", scope) is False


@pytest.mark.parametrize("text", ["", "false", "False", "0", "no", "none", "None", "null"])
def test_falsy_words(text: str) -> None:
    """The dialect's falsy words are false whatever their case."""
    assert truthy(text) is False


@pytest.mark.parametrize("value", ["yes", "1", "anything", 1, [0], True])
def test_truthy_values(value: Any) -> None:
    """Other text and truthy objects are true."""
    assert truthy(value) is True


def test_evaluate_returns_the_raw_value(scope: Scope) -> None:
    """evaluate gives the condition's value, for matching against when:."""
    assert compile_condition("{{ state.kind }}", HERE).evaluate({"kind": "go"}, scope) == "go"
    assert compile_condition("state.n * 2", HERE).evaluate({"n": 4}, scope) == 8


def test_jinja_syntax_error_is_a_load_error() -> None:
    """A condition that does not parse is a WorkflowSyntaxError at its location."""
    with pytest.raises(WorkflowSyntaxError) as info:
        compile_condition("state.x >", HERE)
    assert info.value.location.file == "flow.yaml"
    assert info.value.location.line == 3


def test_wrong_type_is_a_schema_error() -> None:
    """A number is not a condition."""
    with pytest.raises(SchemaError, match="condition must be"):
        compile_condition(3, HERE)


def test_while_loop_condition_in_a_workflow(load_yaml: Callable[..., Workflow]) -> None:
    """A while_loop condition is checked before each pass."""
    workflow = load_yaml(
        """
        name: loop
        nodes:
          - name: count
            type: while_loop
            condition: "state.n < 5"
            max_iterations: 100
            body:
              - run: |
                  return {"n": state["n"] + 1}
        """
    )
    assert workflow.invoke({"n": 0})["n"] == 5
    assert workflow.invoke({"n": 9})["n"] == 9
