"""``MissionProgram``: the ``BranchProgram`` that runs one step of a mission, on any strategy.

::

    scheduler ── BranchTask(branch_id=step id, overrides={step, params, timeout, deadline})
        │            params: the step's parameters, templates already rendered by the driver
        ▼
    executor.run(program, tasks, config, cancel)   (thread, process, remote, dask ...)
        └─ program.run_branch(task, cancel) ─► {"output": {...}}   or raises StepFailed,
                                                StepTimeout, Cancelled

The program holds only plain data (each step's type, the files root, settings and
secrets), so it pickles for worker processes and remote hosts; it is the same
object for every step of a run, so a worker receives it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executors.base import BranchTask
from tea.errors import Cancelled, TeaError
from tea.mission.model import Mission
from tea.mission.steps import STEP_TYPES
from tea.mission.steps.base import StepContext, StepFailed, resolve_params
from tea.secrets import Secrets

__all__ = ["MissionProgram", "step_task"]


def step_task(step_id: str, index: int, shared: Mapping[str, Any], params: Mapping[str, Any],
              timeout: float | None, deadline: float | None) -> BranchTask:
    """The task that runs step ``step_id``: ``deadline`` is the mission's (``time.time()``)."""
    overrides = {"step": step_id, "params": params, "timeout": timeout, "deadline": deadline}
    return BranchTask(branch_id=step_id, entry=step_id, exit=None, state=shared, index=index,
                      target=step_id, overrides=overrides)


class MissionProgram:
    """Runs the step a task names. Thread-safe (it keeps no state between steps)."""

    def __init__(self, mission: Mission, secrets: Mapping[str, Any] | None = None) -> None:
        self._key = f"mission:{mission.source_hash or id(mission)}"
        self.types = {step.id: step.step_type for step in mission.steps}
        self.base_dir = str(mission.base_dir)
        self.settings = dict(mission.settings)
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets or {})

    @property
    def key(self) -> str:
        return self._key

    def context(self, task: BranchTask, cancel: threading.Event | None) -> StepContext:
        """The step's context: its deadline is the nearer of its own timeout (from now)
        and the mission's."""
        spec = task.overrides
        step_id = str(spec["step"])
        timeout = spec.get("timeout")
        now = time.monotonic()
        deadline = now + float(timeout) if timeout else None
        mission_deadline = spec.get("deadline")
        is_mission = False
        if mission_deadline is not None:
            left = float(mission_deadline) - time.time()
            if deadline is None or now + left < deadline:
                deadline, is_mission = now + left, True
        from tea.actions import ActionContext  # the actions package only where steps run

        action = ActionContext(node=step_id, workflow_dir=Path(self.base_dir), settings=self.settings,
                               secrets=self.secrets)
        return StepContext(step_id, self.types[step_id], action, cancel, deadline, is_mission,
                           float(timeout) if timeout else None)

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        """Run the step; its update is ``{"output": {...}}``."""
        ctx = self.context(task, cancel)
        stype = STEP_TYPES[ctx.step_type]
        try:
            ctx.check_time("the step")
            params = resolve_params(ctx, stype, task.overrides.get("params") or {})
            output = stype.run(ctx, params)
        except (StepFailed, Cancelled):
            raise
        except TeaError as exc:
            raise ctx.fail(exc.message, hint=exc.hint) from exc
        except Exception as exc:
            raise ctx.fail(f"{type(exc).__name__}: {exc}") from exc
        return {"output": output}
