"""The per-host progress display: drawn on a terminal's stderr, silent everywhere else."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from remote.progress import Progress

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from remote.progress import Progress
p = Progress.for_terminal(["alpha@h1", "beta@h2"])
p.waiting(1); p.waiting(-1)
p.update("alpha@h1", "running"); p.update("alpha@h1", "done")
p.update("beta@h2", "running"); p.update("beta@h2", "failed")
import time; time.sleep(0.6)
print("live" if p._live is not None else "silent")
p.close()
"""


def test_counts_per_host():
    progress = Progress(["h1", "h2"])
    progress.update("h1", "running")
    progress.update("h1", "running")
    progress.update("h1", "done")
    progress.update("h2", "running")
    progress.update("h2", "lost")
    assert progress.counts["h1"] == {"running": 1, "done": 1, "failed": 0, "lost": 0}
    assert progress.counts["h2"] == {"running": 0, "done": 0, "failed": 0, "lost": 1}


def test_off_a_terminal_nothing_is_drawn():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert done.stdout == "silent\n" and done.stderr == ""


def test_on_a_terminal_a_live_table_goes_to_stderr():
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env={**os.environ, "PYTHONPATH": str(ROOT),
                                              "TERM": "xterm", "COLUMNS": "100"},
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
    assert stdout == "live\n", drawn.decode(errors="replace")[-800:]  # stdout stays clean
    text = drawn.decode(errors="replace")
    assert "alpha@h1" in text and "beta@h2" in text
