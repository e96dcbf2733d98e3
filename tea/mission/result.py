"""What a mission run reports: a ``StepResult`` per step and the ``MissionResult`` around them.

``MissionResult.to_dict()`` is what ``tea run mission.yaml`` prints::

    {"name": "build", "status": "completed" | "failed" | "cancelled",
     "step_results": {"<id>": {"step_id", "step_type", "status": "success" | "failed" | "skipped",
                               "output", "error", "duration_ms", "started_at", "finished_at",
                               "attempts"}, ...},            # in the file's order
     "total_duration_ms": 1234.5, "timestamp": "<ISO 8601 UTC start>", "error": null | "..."}

``exit_code`` is what the command line exits with: 0 completed, 1 failed,
128 + the signal number when a signal stopped it (130 SIGINT, 143 SIGTERM).

While it runs, ``MissionProgress.start(total, enabled)`` draws a ``rich`` progress
bar on stderr (steps done, running, failed, skipped) when ``enabled`` is true, or
when it is ``None`` and stderr is a terminal and ``TEA_PROGRESS`` is not ``0``;
otherwise it only counts. Nothing goes to stdout, which carries the JSON result;
the bar is removed when the run ends.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["MISSION_STATUSES", "STEP_STATUSES", "MissionProgress", "MissionResult", "StepResult", "utc_now"]

STEP_STATUSES = ("success", "failed", "skipped")
MISSION_STATUSES = ("completed", "failed", "cancelled")


def utc_now() -> str:
    """The current time as ISO 8601 in UTC (millisecond precision)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class StepResult:
    """How one step ended. A skipped step never ran: ``error`` says why it was skipped
    (or stopped), and it has no start time unless it was stopped while running."""

    step_id: str
    step_type: str
    status: str
    output: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "step_type": self.step_type,
            "status": self.status,
            "output": dict(self.output),
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepResult:
        """A result saved with ``to_dict`` (a checkpoint's); ``ValueError`` when malformed."""
        try:
            status = str(data["status"])
            output = data.get("output") or {}
            if status not in STEP_STATUSES or not isinstance(output, Mapping):
                raise ValueError(f"bad status or output in {data.get('step_id')!r}")
            return cls(
                step_id=str(data["step_id"]), step_type=str(data["step_type"]), status=status,
                output=dict(output), error=data.get("error"), duration_ms=float(data.get("duration_ms", 0)),
                started_at=data.get("started_at"), finished_at=data.get("finished_at"),
                attempts=int(data.get("attempts", 0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a step result lacks {exc}") from None


@dataclass(frozen=True)
class MissionResult:
    """How a mission run ended. ``checkpoint_path``: where the run saved what resume
    needs (a failed or stopped run); ``signum``: the signal that stopped it."""

    name: str
    status: str
    step_results: Mapping[str, StepResult]
    total_duration_ms: float
    timestamp: str
    error: str | None = None
    checkpoint_path: Path | None = None
    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """0 completed, 1 failed, 128 + signal number when stopped by a signal."""
        if self.status == "completed":
            return 0
        if self.status == "cancelled":
            return 128 + (self.signum or 2)
        return 1

    def counts(self) -> dict[str, int]:
        """How many steps ended in each status."""
        out = dict.fromkeys(STEP_STATUSES, 0)
        for result in self.step_results.values():
            out[result.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "step_results": {k: r.to_dict() for k, r in self.step_results.items()},
            "total_duration_ms": round(self.total_duration_ms, 3),
            "timestamp": self.timestamp,
            "error": self.error,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """``to_dict()`` as JSON (values JSON has no form for are written as text)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)


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
