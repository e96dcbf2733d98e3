"""``input_schema`` and ``output_schema`` (issue 17): the input is checked before the first node
(exit 2, naming each field), the final state after the last (a run failure, exit 1)."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tea.errors import InputError, LoadError, RunError
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]
WriteYaml = Callable[..., Path]
RunTea = Callable[..., subprocess.CompletedProcess[str]]

FLOW = """
name: io
input_schema:
  query: {type: str, required: true, min_length: 2, pattern: "^[a-z]"}
  limit: {type: int, default: 10, min: 1, max: 100}
  mode: {type: str, choices: [fast, slow], default: fast}
  options:
    type: dict
    properties:
      temperature: {type: float, default: 0.5, max: 2}
  tags: {type: list, items: {type: str}}
output_schema:
  answer: {type: str, required: true}
  count: {type: int}
nodes:
  - name: answer
    run: |
      return {"answer": state.get("forced", state["query"].upper()), "count": state["limit"]}
"""


def test_a_good_input_gets_its_defaults_and_the_references_coercions(load_yaml: LoadYaml) -> None:
    final = load_yaml(FLOW).invoke({"query": "hi", "limit": "5", "options": {}, "tags": [1, "b"], "extra": 1})
    assert final["limit"] == 5 and final["count"] == 5
    assert final["mode"] == "fast" and final["options"] == {"temperature": 0.5}
    assert final["tags"] == ["1", "b"] and final["extra"] == 1  # keys the schema does not name pass


def test_a_bad_input_names_every_field_at_fault_before_any_node_runs(load_yaml: LoadYaml) -> None:
    workflow = load_yaml(FLOW)
    with pytest.raises(InputError) as caught:
        workflow.invoke({"query": "H", "limit": "many", "mode": "medium",
                         "options": {"temperature": 3}, "forced": 1})
    message = caught.value.message
    for part in ("'query' must have at least 2 character(s)", "'query' must match the pattern '^[a-z]'",
                 "'limit' must be int, got str 'many'", "'mode' must be one of ['fast', 'slow'], got 'medium'",
                 "'options.temperature' must be at most 2, got 3"):
        assert part in message, message
    assert caught.value.location.line == 3  # the first field at fault: query
    assert caught.value.exit_code == 2


def test_a_missing_required_field_is_named(load_yaml: LoadYaml) -> None:
    with pytest.raises(InputError, match="'query' is required and missing"):
        load_yaml(FLOW).invoke({})


def test_a_final_state_that_does_not_match_fails_the_run(load_yaml: LoadYaml) -> None:
    with pytest.raises(RunError, match="final state does not match output_schema: 'answer' must be str, got int 5"):
        load_yaml(FLOW).invoke({"query": "hey", "forced": 5})


def test_the_json_schema_spelling_of_the_subset(load_yaml: LoadYaml) -> None:
    workflow = load_yaml("""
    input_schema:
      type: object
      required: [n]
      properties:
        n: {type: integer, minimum: 0}
        name: {type: string, enum: [a, b], maxLength: 1}
    nodes:
      - name: a
    """)
    assert workflow.invoke({"n": "3"})["n"] == 3
    with pytest.raises(InputError, match="'n' is required and missing"):
        workflow.invoke({"name": "a"})
    with pytest.raises(InputError, match="'n' must be at least 0, got -1"):
        workflow.invoke({"n": -1})


def test_the_references_output_shaping_is_warned_and_ignored(
    load_yaml: LoadYaml, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tea"):
        workflow = load_yaml("""
        output_schema:
          success: true
          answer: {value: "{{ state.answer }}", default: none}
        nodes:
          - name: a
            run: |
              return {"answer": 1}
        """)
    assert workflow.invoke() == {"answer": 1}
    assert any("flow.yaml:1:1: output_schema is ignored" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("{q: {type: text}}", "input_schema.q: unknown type 'text'"),
        ("{q: {type: str, requird: true}}", "input_schema.q: unknown key 'requird'"),
        ("{q: {type: str, pattern: '('}}", "input_schema.q.pattern is not a valid regular expression"),
        ("{q: {type: int, min: low}}", "input_schema.q.min must be a number"),
        ("{q: str}", "input_schema.q must be a mapping"),
        ("[q]", "input_schema must be a mapping"),
    ],
)
def test_a_malformed_schema_is_a_load_error(load_yaml: LoadYaml, schema: str, message: str) -> None:
    with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_yaml(f"input_schema: {schema}\nnodes: [{{name: a}}]\n")


def test_exit_codes_from_the_cli(write_yaml: WriteYaml, run_tea: RunTea, tmp_path: Path) -> None:
    path = write_yaml(FLOW)
    good = run_tea("run", path, "-q", "-i", '{"query": "hi"}', "-o", tmp_path / "out.json")
    assert good.returncode == 0, good.stderr
    assert json.loads((tmp_path / "out.json").read_text())["answer"] == "HI"
    bad_input = run_tea("run", path, "-q", "-i", '{"limit": 0}')
    assert bad_input.returncode == 2
    assert "'query' is required and missing" in bad_input.stderr
    assert "'limit' must be at least 1, got 0" in bad_input.stderr
    bad_output = run_tea("run", path, "-q", "-i", '{"query": "hi", "forced": [1]}')
    assert bad_output.returncode == 1
    assert "'answer' must be str, got list [1]" in bad_output.stderr
