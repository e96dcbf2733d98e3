"""Finding the programs a test started, by a unique number put in their argv (``sleep 300.<mark>``),
through /proc: shared by the tests that check what a stop or a timeout leaves alive, and by
``benchmarks/bench_signals.py``."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

__all__ = ["alive", "gone", "new_mark", "wait_for"]


def new_mark() -> str:
    """A number to put in a program's argv (``sleep 300.<mark>``) that no other test uses."""
    return f"{os.getpid()}{random.randrange(10**8):08d}"


def alive(mark: str) -> list[str]:
    """The command lines of live (not zombie) processes whose argv holds ``mark``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        if mark.encode() in cmdline and stat.rsplit(b")", 1)[1].split()[0] != b"Z":
            found.append(cmdline.replace(b"\0", b" ").decode())
    return found


def gone(mark: str, within: float = 10.0) -> list[str]:
    """What still carries ``mark`` after waiting up to ``within`` s for it to go."""
    deadline = time.monotonic() + within
    while (left := alive(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def wait_for(mark: str, count: int, within: float = 30.0) -> None:
    """Wait for ``count`` ``sleep`` programs carrying ``mark`` to run."""
    deadline = time.monotonic() + within
    while sum(line.startswith("sleep ") for line in alive(mark)) < count:
        assert time.monotonic() < deadline, f"only {alive(mark)} started"
        time.sleep(0.05)
