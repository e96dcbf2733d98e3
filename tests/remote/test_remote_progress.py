"""The per-host table: a panel of the run's progress board, drawn on a terminal's stderr only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from remote.progress import Progress
from tea.progress import ProgressBoard, progress_board

ROOT = Path(__file__).resolve().parents[2]

# A front end's board with a fan-out line, and the host table joining it.
SCRIPT = """
import tea
from remote.progress import Progress
with tea.ProgressBoard.open() as board:
    fanout = board.counter("fan-out fan (remote)", 2)
    p = Progress.for_terminal(["alpha@h1", "beta@h2"])
    p.waiting(1); p.waiting(-1)
    p.update("alpha@h1", "running"); p.update("alpha@h1", "done")
    p.update("beta@h2", "running"); p.update("beta@h2", "failed")
    fanout.started(2); fanout.finished(); fanout.finished("failed")
    import time; time.sleep(0.6)
    print("drawn" if p.drawn else "silent", "shared" if p._board is None else "own")
    p.close()
print("closed" if tea.progress_board() is not board and not p.drawn else "open")
"""


def test_counts_per_host() -> None:
    progress = Progress(["h1", "h2"])
    progress.update("h1", "running")
    progress.update("h1", "running")
    progress.update("h1", "done")
    progress.update("h2", "running")
    progress.update("h2", "lost")
    assert progress.counts["h1"] == {"running": 1, "done": 1, "failed": 0, "lost": 0}
    assert progress.counts["h2"] == {"running": 0, "done": 0, "failed": 0, "lost": 1}
    assert not progress.drawn


def test_the_table_is_a_panel_of_the_open_board() -> None:
    """Under a front end's board (here a silent one, as with -q) the table opens no board
    of its own: it is not drawn, and the front end's board stays the process's board."""
    with ProgressBoard.open(enabled=False) as board:
        progress = Progress.for_terminal(["h1"])
        assert not progress.drawn and progress._board is None
        assert progress_board() is board
        progress.update("h1", "running")
        progress.close()
        progress.close()  # idempotent
        assert progress_board() is board


def test_without_a_board_it_opens_none_that_lingers(monkeypatch: pytest.MonkeyPatch) -> None:
    """No front end and no terminal: nothing drawn, and no board left open in the process."""
    monkeypatch.delenv("TEA_PROGRESS", raising=False)
    progress = Progress.for_terminal(["h1"])
    assert not progress.drawn and not progress_board().live
    assert ProgressBoard._active is None
    progress.close()


def test_the_table_renders_its_counts() -> None:
    from rich.console import Console

    progress = Progress(["alpha@h1"])
    progress.waiting(2)
    progress.update("alpha@h1", "running")
    console = Console(width=100, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(progress._table())
    text = console.export_text()
    console.file.close()
    assert "remote branches (2 queued)" in text and "alpha@h1" in text


def test_off_a_terminal_nothing_is_drawn() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert done.stdout == "silent shared\nclosed\n" and done.stderr == ""


def test_on_a_terminal_one_display_holds_the_fan_out_and_the_table() -> None:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env={**os.environ, "PYTHONPATH": str(ROOT),
                                              "TERM": "xterm", "COLUMNS": "120"},
        stdout=subprocess.PIPE, stderr=secondary, text=True,
    )
    os.close(secondary)
    drawn = b""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            drawn += os.read(primary, 65536)
        except OSError:
            break
    stdout, _ = proc.communicate(timeout=30)
    os.close(primary)
    text = drawn.decode(errors="replace")
    assert stdout == "drawn shared\nclosed\n", text[-800:]  # stdout stays clean
    assert "alpha@h1" in text and "beta@h2" in text and "remote branches" in text
    assert "fan-out fan (remote)" in text
