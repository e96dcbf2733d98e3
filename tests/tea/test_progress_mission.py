"""A mission's steps are a line of the shared progress board: one display per run."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import tea, tea_on_a_terminal

from tea.mission import load_mission, run_mission
from tea.mission.result import MissionProgress
from tea.progress import ProgressBoard, progress_board

MISSION = """\
name: sleepy
config: {max_concurrent_steps: 2}
settings:
  shell: {enabled: true}
steps:
  - {id: a, step_type: command, parameters: {command: "sleep 0.3"}}
  - {id: b, step_type: command, parameters: {command: "sleep 0.3"}}
  - {id: c, step_type: command, depends_on: [a], parameters: {command: "exit 3"}}
  - {id: d, step_type: noop, depends_on: [c]}
"""


def test_a_mission_counts_on_the_board_a_front_end_opened() -> None:
    """Under an open board the mission adds its line there and opens none of its own."""
    with ProgressBoard.open(enabled=False) as board:
        progress = MissionProgress.start(3, label="mission m")
        assert progress.counter._board is board and progress._board is None
        progress.started(2)
        progress.finished("success")
        progress.finished("failed")
        progress.finished("skipped", was_running=False)
        assert progress.counts == {"done": 3, "running": 0, "failed": 1, "skipped": 1}
        progress.close()
        assert progress_board() is board  # the front end's board is left open


def test_alone_a_mission_opens_a_board_for_its_run_and_closes_it() -> None:
    """Without a front end the mission's board is the process's board while it runs, so
    what its steps' strategies draw joins it; silent when asked (progress=False)."""
    progress = MissionProgress.start(1, enabled=False)
    try:
        assert progress._board is not None and progress_board() is progress._board
        assert not progress_board().live
        joined, owned = ProgressBoard.join()
        assert joined is progress._board and not owned
    finally:
        progress.close()
    assert ProgressBoard._active is None
    progress.close()  # idempotent


def test_a_silent_counter_by_default() -> None:
    """What the scheduler makes when it is given no progress: counts, nothing drawn."""
    progress = MissionProgress(2)
    progress.started()
    progress.finished("success")
    assert progress.total == 2 and progress.counts["done"] == 1
    assert ProgressBoard._active is None
    progress.close()


def test_run_mission_leaves_no_board_open(tmp_path: Path) -> None:
    path = tmp_path / "mission.yaml"
    path.write_text(MISSION, encoding="utf-8")
    result = run_mission(load_mission(path), autosave=False, progress=None)
    assert result.counts() == {"success": 2, "failed": 1, "skipped": 1}
    assert ProgressBoard._active is None


def test_a_mission_shows_its_line_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a terminal: the mission's line (done, running, failed, skipped, elapsed,
    ETA) is drawn there; stdout holds only the JSON result."""
    path = tmp_path / "mission.yaml"
    path.write_text(MISSION, encoding="utf-8")
    run = tea_on_a_terminal("run", path, cwd=tmp_path)
    assert run.returncode == 1, run.terminal
    assert json.loads(run.stdout)["status"] == "failed"
    assert "mission sleepy" in run.terminal
    assert "running" in run.terminal and "failed" in run.terminal and "ETA" in run.terminal


def test_no_mission_progress_with_quiet_or_off_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "mission.yaml"
    path.write_text(MISSION, encoding="utf-8")
    quiet = tea_on_a_terminal("run", "-q", path, cwd=tmp_path)
    assert quiet.returncode == 1 and "mission sleepy" not in quiet.terminal
    opted_out = tea_on_a_terminal("run", path, cwd=tmp_path, env={"TEA_PROGRESS": "0"})
    assert "mission sleepy" not in opted_out.terminal
    piped = tea("run", path, cwd=tmp_path)
    assert piped.returncode == 1 and "mission sleepy" not in piped.stderr and "\x1b" not in piped.stderr
