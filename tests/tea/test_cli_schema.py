"""``tea schema`` and ``tea validate --format``: the JSON Schema agrees with the loader.

Every example and every YAML snippet of the docs is valid against the schema; every
bad input of the loaders' own tests (workflows and missions) is invalid against it,
except the ones only the whole graph can tell (``SEMANTIC``, each with the reason).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tea.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]
TEA = ROOT / ".venv" / "bin" / "tea"
LOADER_TESTS = [ROOT / "tests" / "tea" / "test_loader.py", ROOT / "tests" / "tea" / "test_validation.py",
                ROOT / "tests" / "mission" / "test_mission_format.py"]
BAD_HELPERS = frozenset({"load_error", "problems", "only"})
LOADING = frozenset({"load_yaml", "write_yaml", "load_error", "loads", "problems", "only", "load", "write_mission"})

SEMANTIC = {
    # what needs the whole document, a registry or a compiler: the loader's alone
    "test_duplicate_node_names": "names unique across the list",
    "test_goto_to_a_missing_node": "a reference to another node",
    "test_goto_rule_to_a_missing_node": "a reference to another node",
    "test_edge_to_a_missing_node": "a reference to another node",
    "test_edge_from_a_missing_node": "a reference to another node",
    "test_fan_in_of_an_edge_names_a_missing_node": "a reference to another node",
    "test_fan_in_of_a_dynamic_node_names_a_missing_node": "a reference to another node",
    "test_a_conditional_route_back_to_the_source_counts_too": "a cycle through the graph",
    "test_a_branch_listed_twice_is_a_load_error": "the same target in two edges",
    "test_unknown_parallel_strategy": "strategies are a registry (plugins, register_executor)",
    "test_unknown_action_suggests_the_nearest": "actions are a registry (imports, plugins)",
    "test_python_syntax_error_names_the_yaml_line": "Python syntax",
    "test_python_syntax_error_in_inline_code_has_the_column": "Python syntax",
    "test_python_syntax_error_in_function_mode_names_the_yaml_line": "Python syntax",
    "test_jinja_syntax_error_in_with": "Jinja syntax",
    "test_jinja_syntax_error_in_a_condition": "Jinja syntax",
    "test_expression_syntax_error": "expression syntax",
    "test_yaml_syntax_error": "not YAML at all",
    "test_a_cycle_is_named_in_run_order_at_its_line": "a cycle through depends_on",
    "test_a_step_depending_on_itself_is_a_cycle": "a cycle through depends_on",
    "test_unknown_dependency_suggests_the_nearest_id": "a reference to another step",
    "test_duplicate_ids_point_at_both": "ids unique across the list",
    "test_templates_may_read_only_steps_they_depend_on": "what a template reads",
    "test_a_template_that_does_not_compile_is_reported_at_its_value": "a template compiled by Jinja",
    "test_jinja_syntax_errors_are_load_errors": "Jinja syntax",
    "test_command_needs_shell_enabled": "a step type and a setting elsewhere in the file",
    "test_remote_options_are_checked_by_the_backend": "a backend's own options",
}


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json_schema())


def _texts(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and re.search(r"\b(nodes|steps):", sub.value):
            yield textwrap.dedent(sub.value).lstrip("\n")


def bad_cases() -> Iterator[tuple[str, str]]:
    """(test name, YAML text) of every input a loader test expects to be refused."""
    for path in LOADER_TESTS:
        for fn in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
                continue
            raises = [w for w in ast.walk(fn) if isinstance(w, ast.With) and any(
                isinstance(i.context_expr, ast.Call) and getattr(i.context_expr.func, "attr", "") == "raises"
                for i in w.items)]
            calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)
                     and (getattr(c.func, "id", None) or getattr(c.func, "attr", None)) in LOADING]
            inside = {id(n) for w in raises for n in ast.walk(w)}
            bad_calls = [c for c in calls if id(c) in inside or getattr(c.func, "id", None) in BAD_HELPERS]
            for call in bad_calls:
                for text in (t for arg in call.args for t in _texts(arg)):
                    yield fn.name, text
            if bad_calls:  # texts given through parametrize
                for decorator in fn.decorator_list:
                    for text in _texts(decorator):
                        yield fn.name, text


BAD = list(bad_cases())


def test_the_loader_tests_have_bad_inputs_to_check() -> None:
    """The extraction finds the loaders' bad-input cases (and SEMANTIC names real tests)."""
    names = {name for name, _ in BAD}
    assert len(BAD) > 40
    assert set(SEMANTIC) <= names, sorted(set(SEMANTIC) - names)


@pytest.mark.parametrize(("name", "text"), BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_the_schema_refuses_what_the_loader_refuses(name: str, text: str) -> None:
    """A bad input of a loader test is invalid against the schema too, unless only the whole
    graph can tell (SEMANTIC)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        assert name in SEMANTIC
        return
    errors = list(validator().iter_errors(doc))
    if name in SEMANTIC:
        return
    assert errors, f"{name}: the schema accepts what the loader refuses:\n{text}"


def documents() -> Iterator[tuple[str, Any]]:
    """Every example file and every docs snippet that is a workflow or a mission."""
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        yield str(path.relative_to(ROOT)), yaml.safe_load(path.read_text(encoding="utf-8"))
    for doc_path in sorted((ROOT / "docs").glob("*.md")):
        blocks = re.findall(r"```yaml\n(.*?)```", doc_path.read_text(encoding="utf-8"), re.S)
        for index, block in enumerate(blocks):
            doc = yaml.safe_load(block)
            if isinstance(doc, dict) and ({"nodes", "steps"} & set(doc)):
                yield f"{doc_path.name}#{index}", doc


DOCUMENTS = list(documents())


@pytest.mark.parametrize(("name", "doc"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_example_and_docs_snippet_is_valid(name: str, doc: Any) -> None:
    """What the docs and examples show passes the schema (no false alarm in an editor)."""
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(doc)]
    assert not problems, problems


def test_examples_hold_workflows_and_missions() -> None:
    kinds = {"steps" in doc and "nodes" not in doc for _, doc in DOCUMENTS}
    assert kinds == {True, False}


def tea(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TEA), *args], cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})


def test_tea_schema_prints_a_draft_7_schema(tmp_path: Path) -> None:
    """tea schema writes the schema on stdout, nothing on stderr; --kind picks one half."""
    proc = tea("schema", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    schema = json.loads(proc.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["definitions"].keys() == json_schema()["definitions"].keys()
    workflow = json.loads(tea("schema", "--kind", "workflow", cwd=tmp_path).stdout)
    mission_doc = {"steps": [{"id": "a", "step_type": "noop"}]}
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(mission_doc))
    assert list(jsonschema.Draft7Validator(workflow).iter_errors(mission_doc))


def test_tea_schema_refuses_an_unknown_kind(tmp_path: Path) -> None:
    proc = tea("schema", "--kind", "pipeline", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "pipeline" in proc.stderr and "workflow" in proc.stderr


def test_the_schema_names_the_key_an_editor_flags() -> None:
    """A typo in a node key is an error at that node, with the key named."""
    doc = {"nodes": [{"name": "a", "runn": "x = 1"}]}
    (error,) = validator().iter_errors(doc)
    assert "runn" in error.message


BAD_FLOW = "nodes:\n  - name: a\n    gotoo: b\n  - name: a\n"


def test_validate_format_json_lists_file_line_column_message_hint(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_FLOW, encoding="utf-8")
    (tmp_path / "good.yaml").write_text("nodes:\n  - name: a\n", encoding="utf-8")
    proc = tea("validate", "--format", "json", "bad.yaml", "good.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["valid"] is False
    bad, good = report["files"]
    assert good == {"file": "good.yaml", "valid": True, "problems": [], "nodes": 1, "routes": 1}
    first = bad["problems"][0]
    assert set(first) >= {"file", "line", "column", "message", "hint"}
    assert first["file"] == "bad.yaml" and first["line"] == 3 and "gotoo" in first["message"]
    assert first["hint"] and "goto" in first["hint"]


def test_validate_format_github_prints_annotations(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_FLOW, encoding="utf-8")
    proc = tea("validate", "-f", "github", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith("::error file=bad.yaml,line=") for line in lines)
    assert "title=tea validate::" in lines[0] and "%0Ahint: " in lines[0]


def test_validate_reads_stdin_and_refuses_a_bad_format(tmp_path: Path) -> None:
    ok = tea("validate", "-", cwd=tmp_path, stdin="nodes:\n  - name: a\n")
    assert ok.returncode == 0 and ok.stdout.startswith("OK: -")
    bad = tea("validate", "-f", "xml", "-", cwd=tmp_path, stdin="nodes: []\n")
    assert bad.returncode == 2 and "xml" in bad.stderr
