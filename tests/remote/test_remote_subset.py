"""Branch subsets: standalone, validating workflows that run a branch exactly as the full one does."""

from __future__ import annotations

from pathlib import Path

import yaml
from toy_program import ToyProgram

import tea
from executors.base import BranchTask
from remote.subset import branch_subset, program_payload, subset_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _materialise(files: dict[str, str], where: Path) -> Path:
    for name, text in files.items():
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return where / "workflow.yaml"


def _fanout_tasks(state: dict) -> list[BranchTask]:
    return [
        BranchTask(f"prepare[{t}]", t, "merge", dict(state), index=i, target=t)
        for i, t in enumerate(["count_words", "fingerprint", "shout"])
    ]


def test_static_fanout_subset_keeps_branches_up_to_the_fan_in():
    graph = tea.load(EXAMPLES / "parallel_fanout.yaml").graph
    doc = branch_subset(
        graph.source, ["count_words", "fingerprint", "shout"], "merge", None, graph.nodes
    )
    names = [n["name"] for n in doc["nodes"]]
    assert names == ["count_words", "fingerprint", "shout", "merge"]
    assert doc["nodes"][-1] == {"name": "merge", "run": "return {}"}  # a placeholder
    assert doc["settings"]["parallel"]["strategy"] == "thread"
    assert doc["variables"] == {"max_words": 6}
    assert "initial_state" not in doc and "edges" not in doc
    # Each branch's last node is pinned to the fan-in: no falling into a sibling.
    assert [n.get("goto") for n in doc["nodes"][:3]] == ["merge", "merge", "merge"]


def test_subset_validates_and_runs_branches_like_the_full_workflow(tmp_path):
    workflow = tea.load(EXAMPLES / "parallel_fanout.yaml")
    state = {"topic": "edge agents", "words": ["edge", "agents"], "text": "edge agents edge"}
    tasks = _fanout_tasks(state)
    key, message = program_payload(workflow.graph, tasks)
    assert message["kind"] == "yaml"
    subset = tea.load(_materialise(message["files"], tmp_path)).graph
    for task in tasks:
        assert subset.run_branch(task) == workflow.graph.run_branch(task)
    assert program_payload(workflow.graph, tasks)[0] == key  # stable: uploaded once per host


def test_chains_rules_and_nested_nodes_are_followed(tmp_path):
    source = tmp_path / "flow.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "name": "chain",
                "nodes": [
                    {"name": "start", "run": "return {}"},
                    {"name": "a1", "run": "return {'a': 1}"},
                    {"name": "a2", "goto": [{"if": "{{ state.a }}", "to": "a3"}, {"to": "join"}],
                     "run": "return {}"},
                    {"name": "unused", "run": "return {'unused': True}"},
                    {"name": "a3", "run": "return {'a3': True}", "goto": "join"},
                    {"name": "b1", "run": "return {'b': 1}"},
                    {"name": "join", "run": "return {}"},
                    {"name": "after", "run": "return {}"},
                ],
                "edges": [{"from": "start", "to": ["a1", "b1"], "parallel": True, "fan_in": "join"}],
            },
            sort_keys=False,
        )
    )
    graph = tea.load(source).graph
    doc = branch_subset(graph.source, ["a1", "b1"], "join", None, graph.nodes)
    assert [n["name"] for n in doc["nodes"]] == ["a1", "a2", "a3", "b1", "join"]
    subset = tea.load(_materialise(subset_files(doc, tmp_path), tmp_path / "out")).graph
    task = BranchTask("start[a1]", "a1", "join", {})
    assert subset.run_branch(task) == graph.run_branch(task) == {"a": 1, "a3": True}


def test_dynamic_parallel_scope_ships_the_node_and_its_subgraph(tmp_path):
    workflow = tea.load(EXAMPLES / "dynamic_parallel.yaml")
    task = BranchTask(
        "measure_each[0]", "measure_each", None, {"words": ["tea"], "item": "tea", "index": 0},
        scope="measure_each", target="measure_each",
    )
    _key, message = program_payload(workflow.graph, [task])
    files = message["files"]
    doc = yaml.safe_load(files["workflow.yaml"])
    assert [n["name"] for n in doc["nodes"]] == ["measure_each", "collect_sizes"]
    shipped = doc["nodes"][0]["subgraph"]
    assert shipped.startswith("files/") and shipped in files
    subset = tea.load(_materialise(files, tmp_path)).graph
    assert subset.run_branch(task) == workflow.graph.run_branch(task)


def test_imported_action_files_are_shipped(tmp_path):
    workflow = tea.load(EXAMPLES / "custom_actions.yaml")
    first = workflow.graph.entry
    task = BranchTask("x[0]", first, None, {"idea": "ship it"})
    _, message = program_payload(workflow.graph, [task])
    doc = yaml.safe_load(message["files"]["workflow.yaml"])
    path = doc["imports"][0]["path"]
    assert path.startswith("files/") and path.endswith("notes.py")
    assert message["files"][path] == (EXAMPLES / "actions" / "notes.py").read_text()
    subset = tea.load(_materialise(message["files"], tmp_path)).graph
    assert subset.run_branch(task) == workflow.graph.run_branch(task)


def test_a_program_without_yaml_is_cloudpickled():
    key, message = program_payload(ToyProgram(), [BranchTask("b", "n", None, {})])
    assert message["kind"] == "pickle" and message["data"]
    assert len(key) == 16
