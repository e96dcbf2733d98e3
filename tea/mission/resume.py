"""Mission checkpoints: which steps succeeded and their outputs, so a resume runs only the rest.

A mission checkpoint is a tea checkpoint (``tea.checkpoint``: JSON, checksummed,
written atomically, secrets redacted) whose ``extra.kind`` is ``"mission"``::

    node: the first step (in file order) that did not succeed   position: "before"
    reason: "error" (the mission failed) | "signal" (stopped) | "progress" (while running)
    state: {"context": <the run's input>, "steps": {<id>: <StepResult of a step that succeeded>}}
    workflow_hash / workflow_path: the mission file it belongs to

A run keeps one checkpoint file, rewritten as steps finish (at most once a
second, without fsync: a killed run loses at most the last second) and at the
end (fsynced); a run that completes removes it. ``resume_mission`` keeps the
succeeded steps' results and runs every other step: failed, skipped, stopped.
Outputs were redacted when saved, so a template that reads a kept step's secret
sees ``***``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tea.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, unique_name
from tea.errors import CheckpointError
from tea.mission.model import Mission
from tea.mission.result import StepResult
from tea.secrets import Secrets

__all__ = ["PROGRESS_INTERVAL_SECONDS", "Checkpointer", "MissionCheckpoint", "is_mission_checkpoint",
           "read_checkpoint"]

PROGRESS_INTERVAL_SECONDS = 1.0
_KIND = "mission"


@dataclass(frozen=True)
class MissionCheckpoint:
    """What a resume needs from a checkpoint."""

    path: Path
    mission_path: str | None
    workflow_hash: str
    context: dict[str, Any]
    succeeded: dict[str, StepResult]


def is_mission_checkpoint(ckpt: Checkpoint) -> bool:
    """Whether ``ckpt`` (``tea.load_checkpoint``) was saved by a mission run."""
    return ckpt.extra.get("kind") == _KIND


def read_checkpoint(path: str | Path) -> MissionCheckpoint:
    """Read a mission checkpoint; ``CheckpointError`` when it is not one or is malformed."""
    file = Path(path)
    ckpt = load_checkpoint(file)
    if not is_mission_checkpoint(ckpt):
        raise CheckpointError(f"{file} is a workflow checkpoint, not a mission's",
                              hint="resume it with its workflow (tea resume reads both kinds)")
    context = ckpt.state.get("context", {})
    steps = ckpt.state.get("steps", {})
    if not isinstance(context, dict) or not isinstance(steps, dict):
        raise CheckpointError(f"checkpoint {file} is malformed: state.context and state.steps must be objects")
    try:
        succeeded = {str(k): StepResult.from_dict(v) for k, v in steps.items() if isinstance(v, Mapping)}
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {file} is malformed: {exc}") from None
    return MissionCheckpoint(file, ckpt.workflow_path, ckpt.workflow_hash, context,
                             {k: r for k, r in succeeded.items() if r.ok})


class Checkpointer:
    """Saves one run's checkpoint file (always the same name). Used by the scheduler's thread only."""

    def __init__(self, mission: Mission, directory: Path, secrets: Secrets, context: Mapping[str, Any]) -> None:
        self.mission = mission
        self.directory = directory
        self.secrets = secrets
        self.context = dict(context)
        self.name = unique_name(mission.name, "mission")
        self.path: Path | None = None
        self._last = float("-inf")
        self._saved: int | None = None
        """How many steps had succeeded at the last save."""

    def save(self, results: Mapping[str, StepResult], *, reason: str, error: str | None = None,
             sync: bool = True) -> Path:
        """Write the checkpoint for ``results`` so far; returns its path."""
        succeeded = {k: r.to_dict() for k, r in results.items() if r.ok}
        pending = next((s.id for s in self.mission.steps if s.id not in succeeded), self.mission.name)
        ckpt = Checkpoint(
            workflow_hash=self.mission.source_hash,
            workflow_path=str(self.mission.path) if self.mission.path is not None else None,
            node=pending, position="before", reason=reason,
            state={"context": self.context, "steps": succeeded}, step=len(succeeded),
            error={"message": error} if error else None,
            extra={"kind": _KIND, "mission": self.mission.name},
        )
        self.path = save_checkpoint(self.directory, ckpt, redact=self.secrets.redact, name=self.name, sync=sync)
        self._last, self._saved = time.monotonic(), len(succeeded)
        return self.path

    def due_in(self, succeeded: int) -> float | None:
        """Seconds until a progress save of ``succeeded`` steps is due (``None``: nothing new)."""
        if succeeded == self._saved or not succeeded:
            return None
        return max(0.0, self._last + PROGRESS_INTERVAL_SECONDS - time.monotonic())

    def progress(self, results: Mapping[str, StepResult], succeeded: int) -> None:
        """Save without fsync when steps succeeded since the last save and it is a second old
        (the first success is saved at once): insurance against SIGKILL."""
        if self.due_in(succeeded) == 0.0:
            self.save(results, reason="progress", sync=False)

    def discard(self) -> None:
        """Remove the checkpoint (the mission completed: nothing to resume)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
