"""Every example workflow validates, and each one is run by some test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tea
from tea.mission import is_mission, load_mission

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
TEA = str(Path(sys.executable).parent / "tea")

# example -> (input, expected subset of the final state); run here through the CLI.
RUN_HERE = {
    "parallel_fanout.yaml": (
        {"topic": "edge agents"},
        {"done": True, "trail": ["prepare", "merge", "finish"]},
    ),
    "conditional_loop.yaml": ({"target": 40}, {"value": 70, "summary": "reached 70 in 12 steps"}),
    "dynamic_parallel.yaml": (
        {"words": ["tea", "edge"]},
        {"shouts": ["TEA!", "EDGE!!"], "sizes": {"tea": [3, 2], "edge": [4, 2]}},
    ),
    "lua_fanout.yaml": (
        {"numbers": [3, 1, 4, 1, 5, 9, 2, 6]},
        {"sum": 31, "min": 1, "max": 9, "mean": 3.875, "spread": "wide"},
    ),
    "parallel_strategies_demo.yaml": (
        {"n": 20000, "words": ["tea", "edge"]},
        {"cpu": {"squares": 39998, "cubes": 99991}, "cpu_in_worker_processes": True,
         "io": ["a", "b"], "io_in_this_process": True, "digests": {"tea": 6707, "edge": 9472}},
    ),
    "legacy_edges.yaml": ({}, {"tier": "premium", "invoice": {"amount": 302, "tax": 60.4, "shipping": 0}}),
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    """`tea validate` accepts every example."""
    done = subprocess.run([TEA, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK:")


@pytest.mark.parametrize("name", sorted(RUN_HERE))
def test_example_runs(name: str, tmp_path: Path) -> None:
    """The example runs through `tea run` and produces its documented result."""
    given, expected = RUN_HERE[name]
    out = tmp_path / "out.json"
    done = subprocess.run(
        [TEA, "run", str(ROOT / "examples" / name), "-i", json.dumps(given), "-o", str(out), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(out.read_text())
    for key, value in expected.items():
        assert final[key] == value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_run_by_a_test(path: Path) -> None:
    """An example no test runs would rot; each one is run here or named by another test."""
    if path.name in RUN_HERE:
        return
    mentions = [
        f for f in (ROOT / "tests").rglob("test_*.py")
        if f.name != "test_examples.py" and path.name in f.read_text()
    ]
    assert mentions, f"no test runs examples/{path.name}"


def test_examples_load_in_process() -> None:
    """The library loads every example too (same loaders as the CLI: missions have their own)."""
    for path in EXAMPLES:
        loaded = load_mission(path) if is_mission(path) else tea.load(path)
        assert loaded.name
