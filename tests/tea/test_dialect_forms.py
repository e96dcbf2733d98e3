"""The reference's ignored keys and the seeds' spellings (issue 17): they load, warned or read as tea's."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tea.errors import LoadError
from tea.workflow import Workflow

LoadYaml = Callable[..., Workflow]
WriteYaml = Callable[..., Path]
RunTea = Callable[..., subprocess.CompletedProcess[str]]

IGNORED = """
name: ignored
interrupt_before: [b]
checkpoint: {enabled: true, directory: ./ck}
settings:
  parallel:
    streams: {enabled: true, buffer_size: 65536}
nodes:
  - name: a
    condition: "{{ state.never }}"
    _render_items: [x, y]
    run: |
      return {"a": 1}
  - name: b
    streams: {stdin: pipe}
    strategy: thread
    max_workers: 3
    run: |
      return {"b": 2}
"""


def test_keys_the_reference_ignores_load_run_and_are_warned_with_their_line(
    load_yaml: LoadYaml, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tea"):
        workflow = load_yaml(IGNORED)
    warned = [r.getMessage() for r in caplog.records if r.name == "tea"]
    expected = [
        ("flow.yaml:2:1:", "top-level 'interrupt_before' is ignored"),
        ("flow.yaml:3:1:", "top-level 'checkpoint' is ignored"),
        ("flow.yaml:6:5:", "settings.parallel.streams is ignored"),
        ("flow.yaml:9:5:", "node 'a': 'condition' is ignored"),
        ("flow.yaml:10:5:", "node 'a': '_render_items' is ignored"),
        ("flow.yaml:14:5:", "node 'b': 'streams' is ignored"),
        ("flow.yaml:15:5:", "node 'b': 'strategy' is ignored"),
        ("flow.yaml:16:5:", "node 'b': 'max_workers' is ignored"),
    ]
    assert len(warned) == len(expected), warned
    for (where, what), message in zip(expected, warned, strict=True):
        assert where in message and what in message, message
    # The reference runs every node, a condition: notwithstanding, and never stops at b.
    assert workflow.invoke() == {"a": 1, "b": 2}


def test_a_condition_on_a_while_loop_is_still_its_condition(load_yaml: LoadYaml) -> None:
    workflow = load_yaml("""
    nodes:
      - name: loop
        type: while_loop
        condition: "{{ state.n < 3 }}"
        max_iterations: 10
        body:
          - run: |
              return {"n": state["n"] + 1}
    """)
    assert workflow.invoke({"n": 0}) == {"n": 3}


SEED = """
name: seed
error_policy:
  max_attempts: 2
  backoff_base_ms: 1
  on_failure: continue
nodes:
  fetch:
    action: json.parse
    config:
      text: "{{ state.raw }}"
    output: parsed
  broken:
    run: |
      raise ValueError("boom")
  after:
    run: |
      return {"done": True}
"""


def test_the_seed_forms_load_as_written(load_yaml: LoadYaml) -> None:
    """Top-level error_policy is settings.error_policy, nodes: as a mapping keeps its order,
    action: + config: is uses: + with:."""
    workflow = load_yaml(SEED)
    assert list(workflow.graph.nodes) == ["fetch", "broken", "after"]
    final = workflow.invoke({"raw": '{"x": 1}'})
    assert final["parsed"]["data"] == {"x": 1}
    assert final["done"] is True  # on_failure: continue from the top-level error_policy
    assert final["__error__"]["node"] == "broken" and final["__error__"]["message"].endswith("boom")


def test_the_seed_forms_run_from_the_cli(write_yaml: WriteYaml, run_tea: RunTea, tmp_path: Path) -> None:
    path = write_yaml(SEED)
    done = run_tea("run", path, "-q", "-i", '{"raw": "[1, 2]"}', "-o", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.json").read_text())["parsed"]["data"] == [1, 2]


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        ("error_policy: {max_attempts: 2}\nsettings: {error_policy: {max_attempts: 3}}\n"
         "nodes: [{name: a}]\n", 1, "error_policy is written twice", "keep settings.error_policy"),
        ("nodes:\n  a: {uses: json.parse, with: {text: '1'}, config: {text: '2'}}\n", 2,
         "both 'config' and 'with'", "keep with:"),
        ("nodes:\n  a: {run: 'return {}', config: {x: 1}}\n", 2,
         "'config' holds the parameters of an action", "uses: <action>"),
        ("nodes:\n  a: {name: b, run: 'return {}'}\n", 2, "node 'a' is also named 'b'", "drop name:"),
    ],
)
def test_two_spellings_of_one_thing_fail_with_a_hint_naming_the_one_to_keep(
    load_yaml: LoadYaml, text: str, line: int, message: str, hint: str
) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml(text)
    error = caught.value
    assert message in error.message and hint in (error.hint or "")
    assert error.location.line == line


def test_a_node_of_the_mapping_form_may_be_empty(load_yaml: LoadYaml) -> None:
    workflow = load_yaml("""
    nodes:
      start:
      finish:
        run: |
          return {"ok": True}
    """)
    assert workflow.invoke() == {"ok": True}


def test_errors_in_the_mapping_form_name_the_line_of_the_node(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml("""
        nodes:
          first:
            run: |
              return {}
          second:
            uses: no.such_action
        """)
    assert caught.value.location.line == 6 and "node 'second'" in caught.value.message


def test_tea_schema_accepts_the_forms_and_refuses_two_spellings_at_once() -> None:
    import jsonschema
    import yaml

    from tea.schema import json_schema

    check = jsonschema.Draft7Validator(json_schema())
    for text in (IGNORED, SEED):
        assert not list(check.iter_errors(yaml.safe_load(text)))
    for bad in ("error_policy: {max_attempts: 2}\nsettings: {error_policy: {max_attempts: 3}}\nnodes: [{name: a}]",
                "nodes:\n  a: {uses: json.parse, with: {text: '1'}, config: {text: '2'}}",
                "nodes: [{name: a, strategy: {matrix: {n: [1]}}, run: 'return {}'}]",
                "nodes: [{name: a, strategy: {matrix: {n: []}}, fan_in: b, run: 'return {}'}, {name: b}]"):
        assert list(check.iter_errors(yaml.safe_load(bad))), bad


def test_more_keys_the_reference_never_reads_are_warned_not_refused(
    load_yaml: LoadYaml, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tea"):
        workflow = load_yaml("""
        config:
          max_execution_time: 60
        nodes:
          - name: a
            next: c
            interrupt_after: true
            run: |
              return {"a": 1}
          - name: b
            uses: json.parse
            with: {text: "[1]"}
            params: {text: "[2]"}
            output: parsed
          - name: c
        edges:
          - {from: c, to: __end__, stream_mode: broadcast}
        """)
    warned = " | ".join(r.getMessage() for r in caplog.records if r.name == "tea")
    for part in ("flow.yaml:2:3: config.max_execution_time is ignored",
                 "flow.yaml:5:5: node 'a': 'next' is ignored",
                 "flow.yaml:6:5: node 'a': 'interrupt_after' is ignored",
                 "flow.yaml:12:5: node 'b': 'params' is ignored",
                 "flow.yaml:16:28: edge: 'stream_mode' is ignored"):
        assert part in warned, warned
    # As in the reference: a then b (next: is not a route), b with its with:, no stop after a.
    assert workflow.invoke()["parsed"]["data"] == [1]


def test_a_near_miss_of_a_config_key_is_still_an_error(load_yaml: LoadYaml) -> None:
    with pytest.raises(LoadError) as caught:
        load_yaml("config: {interupt_before: [a]}\nnodes: [{name: a}]\n")
    assert "unknown key 'interupt_before' in config" in caught.value.message
    assert "interrupt_before" in (caught.value.hint or "")
