"""Progress of a mission on a terminal: a bar with steps done, running, failed and skipped.

``MissionProgress.start(total, enabled)`` draws a ``rich`` progress bar on stderr
when ``enabled`` is true, or when it is ``None`` and stderr is a terminal and
``TEA_PROGRESS`` is not ``0``; otherwise it only counts. Nothing ever goes to
stdout, which carries the mission's JSON result. The bar is removed when the
run ends (``close``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["MissionProgress"]


class MissionProgress:
    """Counts of steps by state; the scheduler's thread calls it, rich redraws in its own."""

    def __init__(self, total: int, bar: Any = None, task: Any = None) -> None:
        self.total = total
        self.counts = {"done": 0, "running": 0, "failed": 0, "skipped": 0}
        self._bar = bar
        self._task = task

    @classmethod
    def start(cls, total: int, enabled: bool | None = None) -> MissionProgress:
        """A progress display if wanted (see the module docstring), else a silent counter."""
        if enabled is None:
            enabled = os.environ.get("TEA_PROGRESS") != "0" and sys.stderr.isatty()
        if not enabled:
            return cls(total)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("mission"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            redirect_stdout=False, redirect_stderr=False, refresh_per_second=4,
        )
        bar.start()
        progress = cls(total, bar)
        progress._task = bar.add_task("mission", total=total, detail=progress.detail())
        return progress

    def detail(self) -> str:
        c = self.counts
        return f"running {c['running']}  failed {c['failed']}  skipped {c['skipped']}"

    def started(self, count: int = 1) -> None:
        self.counts["running"] += count
        self._draw()

    def finished(self, status: str, was_running: bool = True) -> None:
        """A step ended as ``status`` (success, failed or skipped)."""
        if was_running:
            self.counts["running"] -= 1
        self.counts["done"] += 1
        if status in ("failed", "skipped"):
            self.counts[status] += 1
        self._draw()

    def _draw(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.counts["done"], detail=self.detail())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
