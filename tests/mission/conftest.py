"""Fixtures for the mission tests: mission files in a temp dir, loaded and run through the public API."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# The checkout first: tests/ on sys.path would let tests/executors pass for the real package.
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from mission_helpers import LoadMission, RunMission, WriteMission  # noqa: E402

from tea.mission import Mission, MissionResult, load_mission, run_mission  # noqa: E402


@pytest.fixture
def write_mission(tmp_path: Path) -> WriteMission:
    """Write dedented mission YAML to ``tmp_path/<name>`` and return its path."""

    def write(text: str, name: str = "mission.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_mission: WriteMission) -> LoadMission:
    """Write mission YAML and load it (errors carry a real file and line)."""

    def load_text(text: str, name: str = "mission.yaml") -> Mission:
        return load_mission(write_mission(text, name))

    return load_text


@pytest.fixture
def run(load: LoadMission) -> RunMission:
    """Write, load and run a mission (no checkpoint, no progress bar) and return its result."""

    def run_text(text: str, context: dict[str, Any] | None = None, **kwargs: Any) -> MissionResult:
        kwargs.setdefault("autosave", False)
        kwargs.setdefault("progress", False)
        return run_mission(load(text), context, **kwargs)

    return run_text
