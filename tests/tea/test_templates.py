"""tea.templates: sandboxed Jinja2, compiled once, native values for a lone {{ expr }}."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest

from tea.errors import WorkflowSyntaxError
from tea.templates import (
    EnvironProxy,
    Template,
    TemplateError,
    compile_template,
    compile_value,
    render_value,
)
from tea.workflow import Workflow


def render(source: str, **state: Any) -> Any:
    return compile_template(source).render({"state": state})


def test_single_expression_yields_a_native_list() -> None:
    """A string that is exactly one {{ expr }} gives the native value (a list stays a list)."""
    assert render("{{ state.xs }}", xs=[1, 2, 3]) == [1, 2, 3]


def test_single_expression_yields_native_numbers_and_dicts() -> None:
    """Numbers and dicts come back as themselves, not as text."""
    assert render("{{ state.n + 1 }}", n=41) == 42
    assert render("{{ {'a': state.n} }}", n=1) == {"a": 1}


def test_surrounding_whitespace_keeps_native_mode() -> None:
    """Spaces around a lone {{ expr }} do not turn it into text."""
    assert render("  {{ state.n }}\n", n=7) == 7


def test_text_with_a_template_renders_to_a_string() -> None:
    """Text around an expression renders to a string."""
    assert render("n={{ state.n }}!", n=3) == "n=3!"


def test_two_expressions_render_to_a_string() -> None:
    """Two expressions in one string render to text."""
    assert render("{{ state.a }}{{ state.b }}", a=1, b=2) == "12"


def test_plain_string_is_left_as_it_is() -> None:
    """compile_value leaves a string without template syntax untouched (no Template object)."""
    assert compile_value("just text") == "just text"


def test_compile_value_compiles_nested_values() -> None:
    """compile_value walks dicts and lists; render_value renders every template inside."""
    compiled = compile_value({"a": ["{{ state.x }}", "raw"], "b": {"c": "x={{ state.x }}"}, "n": 5})
    assert isinstance(compiled["a"][0], Template)
    assert render_value(compiled, {"state": {"x": 2}}) == {"a": [2, "raw"], "b": {"c": "x=2"}, "n": 5}


def test_tojson_of_a_missing_key_is_null() -> None:
    """As the reference, whose missing key is None: JSON of what is not there is null."""
    assert render("{{ state.missing | tojson }}") == "null"
    assert render("x={{ state.missing | tojson }}, y={{ state.a.b | tojson }}") == "x=null, y=null"
    assert render("{{ [state.v, state.nope] | tojson }}", v=1) == "[1, null]"


def test_tojson_filter() -> None:
    """tojson writes JSON text (key order kept, no HTML escaping)."""
    assert render("{{ state.v | tojson }}", v={"b": 1, "a": "<x>"}) == '{"b": 1, "a": "<x>"}'


def test_fromjson_filter() -> None:
    """fromjson parses JSON text into a value."""
    assert render("{{ state.t | fromjson }}", t='{"k": [1, 2]}') == {"k": [1, 2]}


def test_fromjson_is_lenient_with_non_json() -> None:
    """fromjson returns text that is not JSON unchanged."""
    assert render("{{ state.t | fromjson }}", t="not json") == "not json"


def test_sha256_filter() -> None:
    """sha256 gives the hex digest of the text."""
    assert render("{{ 'abc' | sha256 }}") == hashlib.sha256(b"abc").hexdigest()


def test_missing_key_is_none_in_native_mode() -> None:
    """A missing key in a lone expression is None."""
    assert render("{{ state.missing }}") is None


def test_missing_key_renders_empty_in_text() -> None:
    """A missing key renders as the empty string inside text."""
    assert render("a{{ state.missing }}b") == "ab"


def test_default_filter_fires_for_a_missing_key() -> None:
    """| default(...) replaces a missing key."""
    assert render("{{ state.missing | default(5) }}") == 5


def test_default_filter_fires_for_a_missing_nested_key() -> None:
    """A chain through missing keys is still missing, so | default(...) works on it."""
    assert render("{{ state.a.b.c | default('none') }}") == "none"


def test_attribute_access_prefers_keys() -> None:
    """state.items reads the key 'items', not the dict method."""
    assert render("{{ state.items }}", items=[1, 2]) == [1, 2]
    assert render("{{ state.keys }}", keys="k") == "k"


def test_dunder_access_is_refused() -> None:
    """{{ ''.__class__ }} is refused by the sandbox."""
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ ''.__class__ }}")


def test_dunder_access_is_refused_inside_text() -> None:
    """An unsafe attribute inside text is refused too."""
    with pytest.raises(TemplateError, match="unsafe"):
        render("x {{ ''.__class__.__mro__ }}")


def test_dunder_item_access_is_refused() -> None:
    """state['__class__'] does not fall through to the attribute."""
    with pytest.raises(TemplateError, match="unsafe"):
        render("{{ state['__class__'] }}")


def test_mutating_state_from_a_template_is_refused() -> None:
    """The sandbox is immutable: a template cannot append to a state list."""
    with pytest.raises(TemplateError):
        render("{{ state.xs.append(4) }}", xs=[1])


def test_expression_failing_on_the_data_is_a_template_error() -> None:
    """An expression that raises on its data (list + int) is a TemplateError naming the template."""
    with pytest.raises(TemplateError, match=r"state.xs \+ 1.*TypeError"):
        render("{{ state.xs + 1 }}", xs=[1])


def test_templates_are_compiled_at_load(load_yaml: Callable[..., Workflow]) -> None:
    """with: values holding templates are compiled once, when the workflow loads."""
    workflow = load_yaml(
        """
        nodes:
          - name: say
            uses: log
            with: {message: "n={{ state.n }}", level: info}
        """
    )
    params = workflow.graph.nodes["say"].body.params  # type: ignore[union-attr]
    assert isinstance(params["message"], Template)
    assert params["level"] == "info"


def test_jinja_syntax_error_is_a_load_error_with_the_line() -> None:
    """A Jinja syntax error is a WorkflowSyntaxError at the template's line."""
    from tea.errors import Location

    with pytest.raises(WorkflowSyntaxError) as info:
        compile_template("{{ state.x + }}", Location("flow.yaml", 12, 7))
    assert info.value.location.file == "flow.yaml"
    assert info.value.location.line == 12
    assert "Jinja syntax error" in info.value.message


def test_jinja_syntax_error_on_a_later_line_of_a_block() -> None:
    """In a multi-line template the error line is the template's start plus its own line."""
    from tea.errors import Location

    with pytest.raises(WorkflowSyntaxError) as info:
        compile_template("line one\n{% if %}\n", Location("flow.yaml", 10, 3))
    assert info.value.location.line == 11


def test_environ_proxy_is_a_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """env reads os.environ when a template asks, so later changes are seen."""
    proxy = EnvironProxy()
    monkeypatch.setenv("TEA_TEMPLATE_TEST", "one")
    assert proxy["TEA_TEMPLATE_TEST"] == "one"
    monkeypatch.setenv("TEA_TEMPLATE_TEST", "two")
    assert compile_template("{{ env.TEA_TEMPLATE_TEST }}").render({"env": proxy}) == "two"
    assert len(proxy) == len(os.environ)


def test_workflow_templates_see_state_variables_secrets_settings_env(
    load_yaml: Callable[..., Workflow], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates in a workflow see state, variables, secrets, settings and env."""
    monkeypatch.setenv("TEA_TEMPLATE_ENV", "from-env")
    workflow = load_yaml(
        """
        name: ctx
        variables: {greeting: hello}
        settings: {flavour: mint}
        nodes:
          - name: show
            uses: json.parse
            with: {text: "1"}
            output:
              s: "{{ state.who }}"
              v: "{{ variables.greeting }}"
              k: "{{ secrets.token }}"
              f: "{{ settings.flavour }}"
              e: "{{ env.TEA_TEMPLATE_ENV }}"
              r: "{{ result.data }}"
        """
    )
    final = workflow.invoke({"who": "ann"}, secrets={"token": "t0k"})
    assert {k: final[k] for k in "svkfer"} == {
        "s": "ann", "v": "hello", "k": "t0k", "f": "mint", "e": "from-env", "r": 1,
    }


def test_unsafe_template_in_a_workflow_fails_the_node(load_yaml: Callable[..., Workflow]) -> None:
    """A refused template inside a node is a NodeError naming the node."""
    from tea.errors import NodeError

    workflow = load_yaml(
        """
        name: unsafe
        nodes:
          - name: peek
            uses: json.parse
            with: {text: "{{ ''.__class__ }}"}
        """
    )
    with pytest.raises(NodeError) as info:
        workflow.invoke({})
    assert info.value.node == "peek"
    assert "unsafe" in str(info.value)
