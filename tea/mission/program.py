"""What a step receives and how it runs: its rendered parameters, and the ``BranchProgram``.

Variables its templates read, rendered in the driver just before the step starts
(where every finished step's output is, so a step on a worker process or a remote
host receives plain values)::

    {{ fetch.output.body }}     the output of step fetch (one the step depends on, checked at load);
                                {{ fetch.status }} and {{ fetch.error }} too
    {{ env.HOME }}              the driver's environment
    {{ context.user }}          the run's input (tea run -i '{"user": ...}')
    {{ config.retry_attempts }} the mission's config block
    {{ secrets.api_token }}     --secrets (outputs and errors are redacted, never the values sent)

``MissionProgram`` runs one step of a mission, on any strategy::

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
from tea.mission.model import Mission, Step
from tea.mission.result import StepResult
from tea.mission.steps import STEP_TYPES
from tea.mission.steps.base import StepContext, StepFailed, resolve_params
from tea.secrets import Secrets
from tea.templates import EnvironProxy, TemplateError, render_value

__all__ = ["MissionProgram", "TemplateError", "Variables", "step_task"]


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


class Variables:
    """The run-wide part of every template's context; ``render`` adds the step's inputs."""

    def __init__(self, context: Mapping[str, Any], config: Mapping[str, Any], secrets: Secrets) -> None:
        self.base: dict[str, Any] = {"env": EnvironProxy(), "context": dict(context), "config": dict(config),
                                     "secrets": secrets}

    def render(self, step: Step, outputs: Mapping[str, Mapping[str, Any]],
               results: Mapping[str, StepResult]) -> dict[str, Any]:
        """``step``'s parameters with its templates rendered (``TemplateError`` when one fails).

        ``outputs`` are the finished steps' outputs as they were produced (not redacted);
        ``results`` give their status and error.
        """
        if step.static:
            return dict(step.parameters)
        scope = dict(self.base)
        for name in step.reads:
            result = results.get(name)
            scope[name] = {
                "output": outputs.get(name, {}),
                "status": result.status if result is not None else None,
                "error": result.error if result is not None else None,
            }
        rendered: dict[str, Any] = render_value(dict(step.parameters), scope)
        return rendered
