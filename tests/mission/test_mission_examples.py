"""Every example mission and every mission in the reference's Missions chapter loads; the examples run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tea.mission import is_mission, load_mission, loads_mission, plan, run_mission

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("mission_*.yaml"))
DOC = (ROOT / "docs" / "YAML_REFERENCE.md").read_text()
CHAPTER = DOC[DOC.index("\n## Missions\n"):]
SNIPPETS = [b for b in re.findall(r"```yaml\n(.*?)```", CHAPTER, re.S) if "steps:" in b]


def test_there_are_a_data_pipeline_and_a_build_mission() -> None:
    assert {p.name for p in EXAMPLES} >= {"mission_data_pipeline.yaml", "mission_build_and_test.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_plans(path: Path) -> None:
    assert is_mission(path)
    out = plan(load_mission(path))
    assert sorted(out["order"]) == sorted(s for level in out["levels"] for s in level)


def copy(name: str, tmp_path: Path) -> Path:
    """The example copied into ``tmp_path``, so its files are written there, not in the checkout."""
    target = tmp_path / name
    shutil.copy(ROOT / "examples" / name, target)
    return target


def test_the_data_pipeline_runs(tmp_path: Path) -> None:
    result = run_mission(load_mission(copy("mission_data_pipeline.yaml", tmp_path)), {"region": "eu"},
                         autosave=False, progress=False)
    assert result.status == "completed", result.to_json()
    work = tmp_path / ".mission-work" / "data_pipeline"
    assert (work / "out/report.md").read_text() == "# Sales for eu\nrows: 3, total: 87.5 EUR\nlargest: kettle\n"
    assert (work / "clean/region.csv").read_text().splitlines()[1] == "eu,kettle,45"
    assert result.step_results["listing"].output["entries"][0]["name"] == "report.tar.gz"


def test_the_build_and_test_mission_runs(tmp_path: Path) -> None:
    if shutil.which("git") is None or shutil.which("python3") is None:
        pytest.skip("the example needs git and python3 on PATH")
    path = copy("mission_build_and_test.yaml", tmp_path)
    for _ in range(2):  # a second run starts clean
        result = run_mission(load_mission(path), autosave=False, progress=False)
        assert result.status == "completed", result.to_json()
    steps = result.step_results
    assert "Ran 2 tests" in steps["unit_tests"].output["stderr"]
    assert steps["commit"].output["message"] == "calc on main: tests passed"
    summary = (tmp_path / ".mission-work/build_and_test/dist/SUMMARY.txt").read_text()
    assert summary == f"commit {steps['commit'].output['commit']}, package dist/calc.zip (1 file)\n"


@pytest.mark.parametrize("block", SNIPPETS, ids=lambda b: b.split("\n", 1)[0])
def test_reference_snippet_loads(block: str) -> None:
    loads_mission(block)
