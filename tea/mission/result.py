"""What a mission run reports: a ``StepResult`` per step and the ``MissionResult`` around them.

``MissionResult.to_dict()`` is what ``tea run mission.yaml`` prints::

    {"name": "build", "status": "completed" | "failed" | "cancelled",
     "step_results": {"<id>": {"step_id", "step_type", "status": "success" | "failed" | "skipped",
                               "output", "error", "duration_ms", "started_at", "finished_at",
                               "attempts"}, ...},            # in the file's order
     "total_duration_ms": 1234.5, "timestamp": "<ISO 8601 UTC start>", "error": null | "..."}

``exit_code`` is what the command line exits with: 0 completed, 1 failed,
128 + the signal number when a signal stopped it (130 SIGINT, 143 SIGTERM).

While it runs, ``MissionProgress.start(total, enabled)`` counts the steps (done,
running, failed, skipped) on a line of the process's progress board
(``tea.ProgressBoard.join``): the board a front end opened, else one of its own,
drawn on stderr when ``enabled`` is true, or when it is ``None`` and stderr is a
terminal and ``TEA_PROGRESS`` is not ``0``. The strategy the steps run on draws on
the same board (the remote host table), so a run has one display. Nothing goes to
stdout, which carries the JSON result; the line is removed when the run ends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tea.progress import Counter, ProgressBoard

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
    """A mission's steps as a line of the progress board (``tea.progress``): the calls
    the scheduler makes, from its threads."""

    def __init__(self, total: int, counter: Counter | None = None, board: ProgressBoard | None = None) -> None:
        """Counts of ``total`` steps: on ``counter`` when given, else silently; ``board``
        is one this progress opened, closed with it."""
        self.counter = counter if counter is not None else ProgressBoard().counter("mission", total)
        self._board = board

    @classmethod
    def start(cls, total: int, enabled: bool | None = None, label: str = "mission") -> MissionProgress:
        """A line on the run's board (see the module docstring), drawn when the board is live."""
        if enabled is False:
            # A silent board, but the process's board while the mission runs, if no other
            # is: what its steps' strategies draw (the remote host table) stays silent too.
            board, owned = ProgressBoard.open(False), True
        else:
            board, owned = ProgressBoard.join(enabled)
        return cls(total, board.counter(label, total), board if owned else None)

    @property
    def total(self) -> int:
        return self.counter.total

    @property
    def counts(self) -> dict[str, int]:
        """Steps done (failed and skipped ones included), running, failed, skipped."""
        return self.counter.counts

    def started(self, count: int = 1) -> None:
        self.counter.started(count)

    def finished(self, status: str, was_running: bool = True) -> None:
        """A step ended as ``status`` (success, failed or skipped)."""
        self.counter.finished(status, was_running)

    def close(self) -> None:
        """Take the line off the board, and close the board if this progress opened it. Idempotent."""
        self.counter.close()
        board, self._board = self._board, None
        if board is not None:
            board.close()
