"""The reference's ``tea run -f/--overlay FILE`` and ``--dump-merged``: YAML overlays merged
onto the workflow by its rules (nodes by name, edges by from/to, goto by to, ``__delete__``),
through ``tea.overrides`` and through ``python -m tea``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import tea
from tea import overrides
from tests.tea.cli_helpers import tea_module as tea_cmd
from tests.tea.cli_helpers import write

BASE = """
name: base
settings:
  parallel: {strategy: thread, max_workers: 2}
variables: {greeting: hi, tags: [a, b]}
nodes:
  - name: first
    run: |
      return {"n": 1}
  - name: second
    run: |
      return {"n": state["n"] + 1}
    goto:
      - {if: "state.n > 5", to: big}
      - to: small
  - name: big
    run: |
      return {"size": "big"}
    goto: __end__
  - name: small
    run: |
      return {"size": "small"}
"""




def merged(tmp_path: Path, *overlays: str) -> Any:
    """The base workflow with ``overlays`` (YAML texts) merged on, as plain data."""
    given = [overrides.overlay(str(write(tmp_path / f"o{i}.yaml", text))) for i, text in enumerate(overlays)]
    return json.loads(json.dumps(overrides.apply(yaml.safe_load(BASE), given)))


def names(doc: Any) -> list[str]:
    return [node["name"] for node in doc["nodes"]]


def test_nodes_merge_by_name_and_new_ones_are_appended(tmp_path: Path) -> None:
    doc = merged(tmp_path, """
        nodes:
          - name: second
            description: changed
          - name: third
            run: |
              return {}
    """)
    assert names(doc) == ["first", "second", "big", "small", "third"]
    second = doc["nodes"][1]
    assert second["description"] == "changed" and "state[\"n\"] + 1" in second["run"]


def test_delete_removes_the_matching_item(tmp_path: Path) -> None:
    doc = merged(tmp_path, """
        nodes:
          - {name: big, __delete__: true}
          - {name: nowhere, __delete__: true}
    """)
    assert names(doc) == ["first", "second", "small"]


def test_goto_rules_merge_by_target(tmp_path: Path) -> None:
    doc = merged(tmp_path, """
        nodes:
          - name: second
            goto:
              - {if: "state.n > 0", to: big}
              - {to: small, __delete__: true}
              - {to: __end__}
    """)
    assert doc["nodes"][1]["goto"] == [{"if": "state.n > 0", "to": "big"}, {"to": "__end__"}]


def test_edges_merge_by_from_and_to(tmp_path: Path) -> None:
    base = {"nodes": [], "edges": [{"from": "a", "to": "b", "when": "x"}, {"from": "b", "to": "c"}]}
    over = {"edges": [{"from": "a", "to": "b", "when": "y"}, {"from": "b", "to": "c", "__delete__": True},
                      {"from": "c", "to": "__end__"}]}
    doc = overrides.apply(base, [overrides.Override("-f", (), over, kind="overlay")])
    assert doc["edges"] == [{"from": "a", "to": "b", "when": "y"}, {"from": "c", "to": "__end__"}]


def test_other_lists_are_replaced_mappings_merged_and_null_replaces(tmp_path: Path) -> None:
    doc = merged(tmp_path, """
        settings:
          parallel: {max_workers: 8}
        variables: {tags: [z], greeting: null}
    """)
    assert doc["settings"]["parallel"] == {"strategy": "thread", "max_workers": 8}
    assert doc["variables"] == {"greeting": None, "tags": ["z"]}


def test_overlays_apply_in_order_and_before_config(tmp_path: Path) -> None:
    given = [
        overrides.config('{"settings": {"parallel": {"max_workers": 5}}}'),
        overrides.overlay(str(write(tmp_path / "a.yaml", "settings: {parallel: {max_workers: 3}}\n"))),
        overrides.overlay(str(write(tmp_path / "b.yaml", "settings: {parallel: {max_workers: 4}}\nname: b\n"))),
    ]
    doc = overrides.apply(yaml.safe_load(BASE), given)
    assert doc["settings"]["parallel"]["max_workers"] == 5  # -C is stronger than every overlay
    assert doc["name"] == "b"


def test_a_problem_an_overlay_brings_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "flow.yaml", BASE)
    over = write(tmp_path / "over.yaml", "nodes:\n  - name: first\n    rnu: x\n")
    with pytest.raises(tea.LoadError) as caught:
        tea.load(path, overrides=[overrides.overlay(str(over))])
    assert str(caught.value).startswith(f"{over}:3:5: unknown key 'rnu'")


def test_run_with_overlays_changes_the_run(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    write(tmp_path / "big.yaml", """
        nodes:
          - name: first
            run: |
              return {"n": 10}
    """)
    write(tmp_path / "label.yaml", """
        nodes:
          - name: big
            run: |
              return {"size": "huge"}
    """)
    assert json.loads(tea_cmd("run", flow, cwd=tmp_path).stdout)["size"] == "small"
    proc = tea_cmd("run", flow, "-f", "big.yaml", "--overlay", "label.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["size"] == "huge"


def test_dump_merged_prints_the_merged_yaml_and_runs_nothing(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    write(tmp_path / "over.yaml", """
        nodes:
          - {name: small, __delete__: true}
          - name: second
            goto: __end__
    """)
    proc = tea_cmd("run", flow, "-f", "over.yaml", "--dump-merged", "--set", "name=dumped", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert list(doc) == ["name", "settings", "variables", "nodes"]  # the workflow's own key order
    assert doc["name"] == "dumped" and names(doc) == ["first", "second", "big"]
    assert 'run: |\n    return {"n": 1}' in proc.stdout  # code stays readable
    assert not (tmp_path / ".tea-checkpoints").exists()
    again = write(tmp_path / "merged.yaml", proc.stdout)
    assert tea_cmd("validate", again, cwd=tmp_path).returncode == 0


def test_dump_merged_of_a_workflow_on_stdin(tmp_path: Path) -> None:
    write(tmp_path / "over.yaml", "name: from-stdin\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tea", "run", "-", "-f", "over.yaml", "--dump-merged"], cwd=tmp_path,
        input=textwrap.dedent(BASE), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["name"] == "from-stdin"


@pytest.mark.parametrize(("content", "message"), [
    (None, "overlay file not found"),
    ("- a\n- b\n", "an overlay must be a mapping (like the workflow), not a list"),
    ("nodes: [\n", "YAML syntax error"),
])
def test_a_bad_overlay_is_exit_2_naming_it(tmp_path: Path, content: str | None, message: str) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    if content is not None:
        write(tmp_path / "over.yaml", content)
    proc = tea_cmd("run", flow, "-f", "over.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert "over.yaml" in proc.stderr and message in proc.stderr


def test_an_empty_overlay_changes_nothing(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    write(tmp_path / "empty.yaml", "")
    proc = tea_cmd("run", flow, "-f", "empty.yaml", "--dump-merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout) == yaml.safe_load(BASE)


def test_validate_takes_overlays_as_long_option_only(tmp_path: Path) -> None:
    """On validate (and inspect) -f stays --format, as on the reference's inspect."""
    flow = write(tmp_path / "flow.yaml", BASE)
    write(tmp_path / "broken.yaml", "nodes:\n  - name: first\n    goto: nowhere\n")
    assert tea_cmd("validate", flow, "-f", "json", cwd=tmp_path).returncode == 0
    proc = tea_cmd("validate", flow, "--overlay", "broken.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "broken.yaml:3:5:" in proc.stderr and "nowhere" in proc.stderr


def test_resume_takes_overlays(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    write(tmp_path / "big.yaml", """
        nodes:
          - name: small
            run: |
              return {"size": "tiny"}
    """)
    stopped = tea_cmd("run", flow, "--interrupt-after", "first", cwd=tmp_path)
    assert stopped.returncode == 3, stopped.stderr
    checkpoint = next(line.split(": ", 1)[1] for line in stopped.stderr.splitlines()
                      if line.startswith("checkpoint: "))
    proc = tea_cmd("resume", checkpoint, "-f", "big.yaml", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["size"] == "tiny"
