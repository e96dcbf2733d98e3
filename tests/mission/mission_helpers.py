"""Types of the mission test fixtures (``conftest.py``), importable by name from the test modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tea.mission import Mission, MissionResult

WriteMission = Callable[..., Path]
"""``write_mission(text, name="mission.yaml")``: dedented YAML written to the test's temp dir."""
LoadMission = Callable[..., Mission]
"""``load(text, name=...)``: written, then loaded with ``load_mission``."""
RunMission = Callable[..., MissionResult]
"""``run(text, context=None, **run_mission_kwargs)``: written, loaded and run (no checkpoint)."""
