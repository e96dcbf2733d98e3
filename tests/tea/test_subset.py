"""Branch subsets (tea.subset): standalone, validating workflows that run a branch exactly as the full one does."""

from __future__ import annotations

from pathlib import Path

import yaml

import tea
from executors.base import BranchTask
from tea.subset import branch_subset, subset_files, workflow_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _materialise(files: dict[str, str], where: Path) -> Path:
    for name, text in files.items():
        target = where / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return where / "workflow.yaml"


def _same_branch(full: tea.Workflow, files: dict[str, str], where: Path, task: BranchTask) -> dict:
    """The branch's update from the shipped files, checked equal to the full workflow's."""
    subset = tea.load(_materialise(files, where))
    update = subset.branch_program().run_branch(task)
    assert update == full.branch_program().run_branch(task)
    return update


def _fanout_tasks(state: dict) -> list[BranchTask]:
    return [
        BranchTask(f"prepare[{t}]", t, "merge", state, index=i, target=t)
        for i, t in enumerate(["count_words", "fingerprint", "shout"])
    ]


def test_static_fanout_subset_keeps_branches_up_to_the_fan_in():
    graph = tea.load(EXAMPLES / "parallel_fanout.yaml").graph
    doc = branch_subset(graph.source, ["count_words", "fingerprint", "shout"], "merge", None, graph.nodes)
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
    files = workflow_files(workflow.graph, ["count_words", "fingerprint", "shout"], "merge", None)
    assert files is not None and set(files) == {"workflow.yaml"}
    updates = [_same_branch(workflow, files, tmp_path, task) for task in _fanout_tasks(state)]
    assert updates[2] == {"loud": "EDGE AGENTS!"}  # an update: the branch's own keys only
    again = workflow_files(workflow.graph, ["count_words", "fingerprint", "shout"], "merge", None)
    assert again == files  # the same text each time: hosts cache it by content


def test_chains_rules_and_nested_nodes_are_followed(tmp_path):
    source = tmp_path / "flow.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "name": "chain",
                "nodes": [
                    {"name": "start", "run": "return {}"},
                    {"name": "a1", "run": "return {'a': 1}"},
                    {"name": "a2", "goto": [{"if": "{{ state.a }}", "to": "a3"}, {"to": "join"}], "run": "return {}"},
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
    workflow = tea.load(source)
    graph = workflow.graph
    doc = branch_subset(graph.source, ["a1", "b1"], "join", None, graph.nodes)
    assert [n["name"] for n in doc["nodes"]] == ["a1", "a2", "a3", "b1", "join"]
    files = subset_files(doc, tmp_path)
    update = _same_branch(workflow, files, tmp_path / "out", BranchTask("start[a1]", "a1", "join", {}))
    assert update == {"a": 1, "a3": True}


def test_dynamic_parallel_ships_the_node_and_its_subgraph(tmp_path):
    workflow = tea.load(EXAMPLES / "dynamic_parallel.yaml")
    files = workflow_files(workflow.graph, ["measure_each"], None, "measure_each")
    assert files is not None
    doc = yaml.safe_load(files["workflow.yaml"])
    assert [n["name"] for n in doc["nodes"]] == ["measure_each", "collect_sizes"]
    shipped = doc["nodes"][0]["subgraph"]
    assert shipped.startswith("files/") and shipped in files
    task = BranchTask(
        "measure_each[0]", "measure_each", None, {"words": ["tea"]}, target="measure_each",
        fanout="measure_each", overrides={"item": "tea", "index": 0},
    )
    _same_branch(workflow, files, tmp_path, task)


def test_imported_action_files_are_shipped(tmp_path):
    workflow = tea.load(EXAMPLES / "custom_actions.yaml")
    first = workflow.graph.entry
    files = workflow_files(workflow.graph, [first], None, None)
    assert files is not None
    path = yaml.safe_load(files["workflow.yaml"])["imports"][0]["path"]
    assert path.startswith("files/") and path.endswith("notes.py")
    assert files[path] == (EXAMPLES / "actions" / "notes.py").read_text()
    _same_branch(workflow, files, tmp_path, BranchTask("x[0]", first, None, {"idea": "ship it"}))


def test_a_subgraph_carries_the_files_its_own_imports_reference(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.py").write_text(
        "def register_actions(registry, engine):\n"
        "    registry['twice'] = lambda state, value: int(value) * 2\n"
    )
    (tmp_path / "lib" / "double.yaml").write_text(
        "name: double\nimports:\n  - {path: helpers.py, namespace: h}\n"
        "nodes:\n  - name: go\n    uses: h.twice\n    with: {value: '{{ state.n }}'}\n    output: doubled\n"
    )
    (tmp_path / "flow.yaml").write_text(
        "name: outer\nnodes:\n  - name: each\n    type: dynamic_parallel\n    items: '{{ state.ns }}'\n"
        "    fan_in: done\n    subgraph: lib/double.yaml\n    input: {n: '{{ state.item }}'}\n"
        "  - name: done\n    run: 'return {\"all\": [r[\"doubled\"] for r in parallel_results]}'\n"
    )
    workflow = tea.load(tmp_path / "flow.yaml")
    assert workflow.invoke({"ns": [1, 2]})["all"] == [2, 4]
    files = workflow_files(workflow.graph, ["each"], None, "each")
    assert files is not None
    subgraph = yaml.safe_load(files[yaml.safe_load(files["workflow.yaml"])["nodes"][0]["subgraph"]])
    helper = subgraph["imports"][0]["path"]  # relative to the shipped subgraph, beside it
    assert f"files/{helper}" in files and "registry['twice']" in files[f"files/{helper}"]
    task = BranchTask("each[1]", "each", None, {"ns": [1, 2]}, index=1, fanout="each",
                      overrides={"item": 2, "index": 1})
    assert _same_branch(workflow, files, tmp_path / "shipped", task)["doubled"] == 4


def test_a_graph_built_in_python_has_no_files():
    graph = tea.StateGraph()
    graph.add_node("a", lambda state: {"x": 1})
    graph.add_edge("a", tea.END)
    workflow = graph.compile()
    assert workflow_files(workflow.graph, ["a"], None, None) is None


def test_an_entry_the_source_does_not_hold_gives_no_files():
    graph = tea.load(EXAMPLES / "parallel_fanout.yaml").graph
    assert workflow_files(graph, ["not_a_node"], "merge", None) is None
