"""The API the CLI calls: plan (the --dry-run JSON), diagrams, the result JSON and its exit codes."""

from __future__ import annotations

import json

import pytest
from mission_helpers import LoadMission, RunMission

from tea.mission import STEP_TYPES, mission_diagram, plan
from tea.mission.dag import find_cycles, make_plan

DIAMOND = """
    name: diamond
    steps:
      - {id: fetch, step_type: noop}
      - {id: left, step_type: noop, depends_on: [fetch]}
      - {id: right, step_type: noop, depends_on: [fetch]}
      - {id: deep, step_type: noop, depends_on: [right]}
      - {id: join, step_type: noop, depends_on: [left, deep]}
      - {id: alone, step_type: noop}
"""


def test_plan_gives_order_levels_and_the_critical_path(load: LoadMission) -> None:
    out = plan(load(DIAMOND))
    assert out["order"] == ["fetch", "alone", "left", "right", "deep", "join"]
    assert out["levels"] == [["fetch", "alone"], ["left", "right"], ["deep"], ["join"]]
    assert out["critical_path"] == ["fetch", "right", "deep", "join"]
    assert out["name"] == "diamond" and out["steps"] == 6 and out["strategy"] == "thread"
    json.dumps(out)


def test_plan_algorithms_on_plain_ids() -> None:
    deps = {"a": [], "b": ["a"], "c": ["b", "a"]}
    made = make_plan(["c", "b", "a"], deps)
    assert made.order == ("a", "b", "c") and made.rank == {"a": 3, "b": 2, "c": 1}
    assert find_cycles(["a", "b"], {"a": [], "b": ["a"]}) == []
    two = find_cycles(["x", "y", "p", "q", "after"],
                      {"x": ["y"], "y": ["x"], "p": ["q"], "q": ["p"], "after": ["x"]})
    assert two == [["x", "y", "x"], ["p", "q", "p"]]
    with pytest.raises(ValueError, match="cycle"):
        make_plan(["x", "y"], {"x": ["y"], "y": ["x"]})


def test_diagrams_in_every_format(load: LoadMission) -> None:
    mission = load(DIAMOND)
    mermaid = mission_diagram(mission, "mermaid")
    assert mermaid.startswith("flowchart TD") and 'n1["fetch<br/>noop"]' in mermaid and "n2 --> n5" in mermaid
    dot = mission_diagram(mission, "dot")
    assert dot.startswith('digraph "diamond" {') and '"left" -> "join";' in dot
    described = json.loads(mission_diagram(mission, "json"))
    assert {"from": "__start__", "to": "alone"} in described["edges"]
    assert described["steps"][3] == {"id": "deep", "name": "deep", "step_type": "noop", "depends_on": ["right"],
                                     "line": 6, "level": 2, "continue_on_error": False}
    text = mission_diagram(mission, "text")
    assert "critical path: fetch -> right -> deep -> join" in text
    with pytest.raises(ValueError, match="unknown diagram format"):
        mission_diagram(mission, "svg")


def test_the_result_json_and_exit_codes(run: RunMission) -> None:
    ok = run(DIAMOND)
    data = json.loads(ok.to_json())
    assert set(data) == {"name", "status", "step_results", "total_duration_ms", "timestamp", "error"}
    assert list(data["step_results"]) == ["fetch", "left", "right", "deep", "join", "alone"]
    assert set(data["step_results"]["join"]) == {"step_id", "step_type", "status", "output", "error", "duration_ms",
                                                 "started_at", "finished_at", "attempts"}
    assert ok.exit_code == 0 and ok.counts() == {"success": 6, "failed": 0, "skipped": 0}
    failed = run("steps:\n  - {id: a, step_type: read_file, parameters: {path: nope.txt}}\n")
    assert failed.exit_code == 1 and failed.status == "failed"


def test_the_progress_bar_writes_to_stderr_only(run: RunMission, capsys: pytest.CaptureFixture[str]) -> None:
    """stdout carries only the JSON result, so the bar (forced on here) must stay off it."""
    result = run(DIAMOND, progress=True)
    assert result.status == "completed" and capsys.readouterr().out == ""


def test_every_step_type_documents_its_parameters_and_outputs() -> None:
    """What the reference chapter lists: a summary, documented parameters, documented outputs."""
    assert {"noop", "create_file", "edit_file", "read_file", "delete_file", "copy_file", "move_file",
            "list_directory", "file_search", "parse_json", "parse_yaml", "validate_schema", "csv_process",
            "command", "http", "llm", "ssh_execute", "git_status", "git_diff", "git_commit", "sql_query",
            "compress"} == set(STEP_TYPES)
    for stype in STEP_TYPES.values():
        assert stype.summary and all(p.doc for p in stype.params), stype.name
        assert stype.outputs or stype.name == "noop"
    assert set(STEP_TYPES["create_file"].outputs) == {"path", "bytes"}
    assert set(STEP_TYPES["read_file"].outputs) == {"path", "content", "bytes"}
    assert set(STEP_TYPES["command"].outputs) == {"stdout", "stderr", "exit_code"}
    assert set(STEP_TYPES["http"].outputs) == {"status", "headers", "body", "json"}
    assert set(STEP_TYPES["parse_json"].outputs) == {"data"}
