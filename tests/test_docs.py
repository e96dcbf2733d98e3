"""Every workflow snippet in docs/YAML_REFERENCE.md loads, and the runnable ones run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import tea

DOC = Path(__file__).resolve().parent.parent / "docs" / "YAML_REFERENCE.md"
BLOCKS = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if "nodes:" in b]
INPUTS = {
    "python_nodes": {},
    "expression_node": {"w": 3, "h": 4},
    "steps_node": {},
    "while_loop_node": {},
    "dynamic_parallel_node": {"cities": ["oslo", "lima"]},
    "routing": {},
    "legacy_edges": {},
    "fan_out_seed_syntax": {},
    "fan_out_reference_syntax": {},
    "reducers": {},
    "lua_nodes": {"items": [1, 2, 3]},
    "lua_condition": {},
    "matrix_node": {},
    "parallel_each_node": {"words": ["a", "b"]},
    "io_schemas": {"query": "hello"},
}
EXPECTED = {
    "python_nodes": {"total": 6, "doubled": 12, "result": 13},
    "expression_node": {"area": 12},
    "steps_node": {"a": 1, "b": 2},
    "while_loop_node": {"n": 5},
    "dynamic_parallel_node": {"shouts": ["OSLO", "LIMA"]},
    "fan_out_seed_syntax": {"ys": [4, 8]},
    "fan_out_reference_syntax": {"total": 3},
    "reducers": {"log": ["one", "two"], "total": 3, "meta": {"a": 1, "b": 2}},
    "lua_nodes": {"total": 18, "label": "big"},
    "lua_condition": {"n": 3, "parity": "odd"},
    "matrix_node": {"labels": ["smallx1", "smallx2", "largex1", "largex2"]},
    "parallel_each_node": {"uppers": ["A", "B"]},
    "io_schemas": {"answer": "HELLO", "limit": 10},
}


def test_the_reference_has_snippets() -> None:
    """The reference documents the dialect with runnable snippets."""
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: re.search(r"name: (\S+)", b).group(1))
def test_snippet_loads(block: str, tmp_path: Path) -> None:
    """A documented workflow is a valid workflow."""
    path = tmp_path / "snippet.yaml"
    path.write_text(block)
    if "actions/notes.py" in block:  # the imports snippet uses the example's action file
        shutil.copytree(DOC.parent.parent / "examples" / "actions", tmp_path / "actions")
    workflow = tea.load(path)
    if workflow.name in INPUTS:
        final = workflow.invoke(INPUTS[workflow.name])
        for key, value in EXPECTED.get(workflow.name, {}).items():
            assert final[key] == value


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_in_the_reference_reaches_a_heading() -> None:
    """The table of contents and cross-references point at headings that exist."""
    text = DOC.read_text()
    headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= headings, sorted(links - headings)
