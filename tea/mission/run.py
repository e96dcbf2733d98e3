"""Running and resuming missions: the executor, the program, checkpoints and progress around the loop.

::

    run_mission(mission, context, secrets=, stop_flag=, checkpoint_dir=)  -> MissionResult
      executor = executors.get_executor(mission.strategy)   (warmed when it can be)
      Scheduler(mission, executor, program=MissionProgram(mission, secrets), ...).run()

    resume_mission(checkpoint)  -> MissionResult
      the succeeded steps of the checkpoint are kept; every other step runs

Neither raises for a failed step: the result says what happened. They raise
``CheckpointError`` for an unusable checkpoint and ``InputError`` for a context
that is not a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executors import get_executor
from executors.base import SupportsWarm
from tea.errors import CheckpointError, InputError
from tea.mission.format import load_mission
from tea.mission.model import Mission
from tea.mission.program import MissionProgram, Variables
from tea.mission.result import MissionProgress, MissionResult, StepResult
from tea.mission.resume import Checkpointer, read_checkpoint
from tea.mission.scheduler import Scheduler
from tea.secrets import Secrets
from tea.signals import StopFlag

__all__ = ["DEFAULT_CHECKPOINT_DIR", "resume_mission", "run_mission"]

DEFAULT_CHECKPOINT_DIR = ".tea-checkpoints"
"""Where checkpoints go by default: beside the mission file, as for workflows."""


def run_mission(
    mission: Mission,
    context: Mapping[str, Any] | None = None,
    *,
    secrets: Mapping[str, Any] | None = None,
    stop_flag: StopFlag | None = None,
    checkpoint_dir: str | Path | None = None,
    autosave: bool = True,
    progress: bool | None = None,
    done: Mapping[str, StepResult] | None = None,
) -> MissionResult:
    """Run ``mission`` with ``context`` (what ``{{ context.* }}`` reads) and report how it went.

    With ``autosave`` (the default), a run that fails or is stopped leaves a checkpoint
    in ``checkpoint_dir`` (default: ``.tea-checkpoints`` beside the mission file) for
    ``resume_mission``; ``result.checkpoint_path`` names it. ``stop_flag``
    (``tea.graceful_signals()``) stops the run on SIGINT/SIGTERM: running steps are
    cancelled and the result's status is ``cancelled``. ``progress``: draw a progress
    bar on stderr (``None``: when stderr is a terminal). ``done``: results of steps that
    need not run again (a resume's).
    """
    if context is not None and not isinstance(context, Mapping):
        raise InputError(f"the mission's context must be a mapping, not {type(context).__name__}")
    context = dict(context or {})
    shared = secrets if isinstance(secrets, Secrets) else Secrets(secrets or {})
    checkpointer = None
    if autosave:
        directory = Path(checkpoint_dir) if checkpoint_dir is not None else mission.base_dir / DEFAULT_CHECKPOINT_DIR
        checkpointer = Checkpointer(mission, directory, shared, context)
    return _execute(mission, context, shared, stop_flag, checkpointer, progress, done or {})


def _execute(mission: Mission, context: dict[str, Any], secrets: Secrets, stop_flag: StopFlag | None,
             checkpointer: Checkpointer | None, progress: bool | None,
             done: Mapping[str, StepResult]) -> MissionResult:
    kept = {k: r for k, r in done.items() if k in mission.by_id and r.ok}
    executor = get_executor(mission.strategy)
    with executor:
        if isinstance(executor, SupportsWarm):
            executor.warm()
        scheduler = Scheduler(
            mission, executor,
            program=MissionProgram(mission, secrets),
            variables=Variables(context, mission.config.values(), secrets),
            secrets=secrets, stop_flag=stop_flag, done=kept,
            progress=MissionProgress.start(len(mission.steps) - len(kept), progress, f"mission {mission.name}"),
            checkpointer=checkpointer,
        )
        return scheduler.run()


def resume_mission(
    checkpoint: str | Path,
    *,
    mission: Mission | str | Path | None = None,
    context: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    stop_flag: StopFlag | None = None,
    checkpoint_dir: str | Path | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> MissionResult:
    """Run again the steps of a failed or stopped mission that did not succeed.

    ``mission`` is the mission (or its file; default: the file the checkpoint
    names). ``context`` is merged over the checkpoint's. A mission file changed
    since the checkpoint is refused unless ``force``. New checkpoints go beside
    the old one unless ``checkpoint_dir`` says otherwise.
    """
    saved = read_checkpoint(checkpoint)
    if not isinstance(mission, Mission):
        source = mission if mission is not None else saved.mission_path
        if not source:
            raise CheckpointError("the checkpoint does not name its mission file", hint="pass the mission")
        if mission is None and not Path(source).is_file():
            raise CheckpointError(f"the mission this checkpoint was saved from is gone: {source}",
                                  hint="pass the mission file (with --force if it changed)")
        mission = load_mission(source)
    if not force and saved.workflow_hash != mission.source_hash:
        raise CheckpointError(
            "the checkpoint was saved by a different version of this mission"
            + (f" ({saved.mission_path})" if saved.mission_path else ""),
            hint="resume with the mission it was saved from, or pass --force to resume anyway",
        )
    context = {**saved.context, **(context or {})}
    shared = secrets if isinstance(secrets, Secrets) else Secrets(secrets or {})
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else saved.path.parent
    checkpointer = Checkpointer(mission, directory, shared, context)
    if directory.resolve() == saved.path.parent.resolve():
        # The same file is rewritten, and removed when the mission completes.
        checkpointer.name, checkpointer.path = saved.path.stem, saved.path
    return _execute(mission, context, shared, stop_flag, checkpointer, progress, saved.succeeded)
