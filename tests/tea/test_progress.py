"""tea.progress: one board counts fan-outs and missions; it draws on a terminal only."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import tea, tea_on_a_terminal

import tea as tea_api
from tea.progress import ProgressBoard, progress_board, wanted

SLOW_FANOUT = """\
name: slow
nodes:
  - name: fan
    type: dynamic_parallel
    items: "{{{{ range(6) | list }}}}"
    fan_in: done
    parallel: {{strategy: {strategy}, max_workers: 2}}
    steps:
      - run: |
          if state["item"] == 5:
              raise ValueError("five")
          return {{"y": state["item"]}}
  - name: done
    run: |
      return {{"n": len(parallel_results)}}
settings:
  parallel: {{on_branch_failure: continue}}
"""


def start(fanout: str, branch: str) -> dict[str, Any]:
    return {"type": "branch_start", "fanout": fanout, "branch": branch, "strategy": "thread"}


def end(fanout: str, branch: str, success: bool = True, category: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "branch_end", "fanout": fanout, "branch": branch, "success": success}
    if not success:
        event["error"] = {"type": "X", "message": "m", "category": category or "error"}
    return event


def test_a_silent_board_counts_a_fan_out_from_its_events() -> None:
    """Branch events make one line per fan-out with done, running and failed; a finished
    fan-out leaves the board, and the next run of the same node starts a new line."""
    with ProgressBoard.open(enabled=False) as board:
        assert not board.live
        for name in ("f[0]", "f[1]", "f[2]"):
            board.branch_event(start("f", name))
        counter = board._fanouts["f"]
        assert (counter.total, counter.counts["running"]) == (3, 3)
        board.branch_event(end("f", "f[0]"))
        board.branch_event(end("f", "f[1]", success=False))
        assert counter.detail() == "done 1 · running 1 · failed 1"
        board.branch_event(end("f", "f[2]", success=False, category="cancelled"))
        assert counter.complete and counter.detail() == "done 1 · running 0 · failed 1 · skipped 1"
        board.branch_event(start("f", "f[0]"))
        assert board._fanouts["f"] is not counter and board._fanouts["f"].total == 1


def test_a_counter_is_what_a_mission_reports_to() -> None:
    """started(n) / finished(status) / close(): the calls a mission's scheduler makes."""
    board = ProgressBoard.open(enabled=False)
    try:
        steps = board.counter("mission build", 4)
        steps.started(2)
        steps.finished("success")
        steps.finished("failed")
        steps.finished("skipped", was_running=False)
        assert steps.counts == {"done": 3, "running": 0, "failed": 1, "skipped": 1}
        with pytest.raises(ValueError, match="status must be one of"):
            steps.finished("exploded")
        steps.close()
    finally:
        board.close()


def test_progress_board_is_the_open_board_or_a_silent_one() -> None:
    assert not progress_board().live
    board = ProgressBoard.open(enabled=False)
    try:
        assert progress_board() is board
        panel = board.panel(lambda: "hosts")
        panel.refresh()
        panel.close()
    finally:
        board.close()
    assert progress_board() is not board and tea_api.progress_board() is progress_board()


def test_counting_is_thread_safe() -> None:
    with ProgressBoard.open(enabled=False) as board:
        counter = board.counter("many", 4000)

        def work() -> None:
            for _ in range(1000):
                counter.started()
                counter.finished()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter.counts == {"done": 4000, "running": 0, "failed": 0, "skipped": 0}


def test_wanted_needs_a_terminal_and_no_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest stderr is not a terminal; -q and TEA_PROGRESS=0 say no in any case."""
    assert not wanted()
    assert not wanted(quiet=True)
    monkeypatch.setenv("TEA_PROGRESS", "0")
    assert not wanted()


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_a_fan_out_shows_progress_on_a_terminal(tmp_path: Path, strategy: str) -> None:
    """With stderr on a terminal, the fan-out's line (done, running, failed, elapsed, ETA) is
    drawn there; stdout still holds only the final JSON."""
    path = tmp_path / "flow.yaml"
    path.write_text(SLOW_FANOUT.format(strategy=strategy), encoding="utf-8")
    run = tea_on_a_terminal("run", path, cwd=tmp_path)
    assert run.returncode == 0, run.terminal
    assert json.loads(run.stdout)["n"] == 6
    assert f"fan-out fan ({strategy})" in run.terminal
    assert "running" in run.terminal and "failed" in run.terminal and "ETA" in run.terminal
    assert "branch 'fan[5]' failed" in run.terminal


def test_no_progress_with_quiet_or_when_not_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(SLOW_FANOUT.format(strategy="thread"), encoding="utf-8")
    quiet = tea_on_a_terminal("run", "-q", path, cwd=tmp_path)
    assert quiet.returncode == 0 and "fan-out" not in quiet.terminal
    opted_out = tea_on_a_terminal("run", path, cwd=tmp_path, env={"TEA_PROGRESS": "0"})
    assert "fan-out fan" not in opted_out.terminal
    piped = tea("run", path, cwd=tmp_path)
    assert "fan-out" not in piped.stderr and "\x1b" not in piped.stderr
