"""The reference's ``tea validate --strict``: the warnings loading logs, and nodes no route
reaches, are printed always and fail the check only with ``--strict`` (``python -m tea``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tea.cli_helpers import tea_module as tea_cmd
from tests.tea.cli_helpers import write

TEMPLATED = """
name: templated
nodes:
  - name: a
    run: |
      return {"x": "{{ state.get('q', 1) }}"}
"""

UNREACHED = """
name: unreached
nodes:
  - name: a
    run: |
      return {"x": 1}
    goto: __end__
  - name: orphan
    run: |
      return {}
"""

CLEAN = """
name: clean
nodes:
  - name: a
    run: |
      return {"x": 1}
    error_policy:
      fallback: rescue
    goto: __end__
  - name: rescue
    run: |
      return {"x": 0}
"""




def test_a_warning_is_printed_but_passes_without_strict(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", TEMPLATED)
    proc = tea_cmd("validate", flow, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK:")
    assert f"{flow}: warning: node 'a': its run: block holds templates" in proc.stderr


def test_strict_makes_a_warning_fail(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", TEMPLATED)
    proc = tea_cmd("validate", "--strict", flow, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "its run: block holds templates" in proc.stderr and "Traceback" not in proc.stderr


def test_strict_fails_on_a_node_no_route_reaches(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", UNREACHED)
    relaxed = tea_cmd("validate", flow, cwd=tmp_path)
    assert relaxed.returncode == 0
    assert "node 'orphan' is never reached" in relaxed.stderr
    assert tea_cmd("validate", "--strict", flow, cwd=tmp_path).returncode == 2


def test_strict_passes_a_clean_workflow(tmp_path: Path) -> None:
    """A node reached only as a fallback counts as reached."""
    flow = write(tmp_path / "flow.yaml", CLEAN)
    proc = tea_cmd("validate", "--strict", flow, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_strict_json_report(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", TEMPLATED)
    clean = write(tmp_path / "clean.yaml", CLEAN)
    proc = tea_cmd("validate", "--strict", "-f", "json", flow, clean, cwd=tmp_path)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["valid"] is False and report["strict"] is True
    first, second = report["files"]
    assert first["valid"] is False and second["valid"] is True
    assert [p["severity"] for p in first["problems"]] == ["warning"]
    relaxed = json.loads(tea_cmd("validate", "-f", "json", flow, cwd=tmp_path).stdout)
    assert relaxed["valid"] is True and relaxed["files"][0]["problems"][0]["severity"] == "warning"


def test_strict_github_annotations(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", UNREACHED)
    assert tea_cmd("validate", "-f", "github", flow, cwd=tmp_path).stdout.startswith("::warning file=")
    proc = tea_cmd("validate", "--strict", "-f", "github", flow, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.startswith("::error file=") and "orphan" in proc.stdout


def test_an_action_replaced_by_another_is_a_warning(tmp_path: Path) -> None:
    """The workflow's imports: replace an --actions-file action of the same name: said, and
    fatal with --strict."""
    register = "def register_actions(registry, engine):\n    registry['x'] = lambda state: {}\n"
    for name in ("a", "b"):
        write(tmp_path / f"{name}.py", register)
    flow = write(tmp_path / "flow.yaml", """
        imports:
          - path: b.py
        nodes:
          - name: n
            uses: x
    """)
    relaxed = tea_cmd("validate", flow, "--actions-file", "a.py", cwd=tmp_path)
    assert relaxed.returncode == 0
    assert "warning: action 'x' from b.py replaces an existing action" in relaxed.stderr
    assert tea_cmd("validate", flow, "--actions-file", "a.py", "--strict", cwd=tmp_path).returncode == 2


def test_a_warning_that_names_a_line_is_reported_there(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", """
        nodes:
          - name: n
            run: |
              return {}
            error_policy:
              max_retries: 2
    """)
    proc = tea_cmd("validate", flow, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{flow}:6:7: warning: " in proc.stderr and "max_retries" in proc.stderr
