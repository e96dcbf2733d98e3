"""Missions: dependency DAGs of typed steps, run on tea's executors.

A YAML file with a top-level ``steps:`` list (and no ``nodes:``) is a mission::

    mission = load_mission("build.yaml")   # LoadError / LoadErrors, each with file:line
    plan(mission)                          # {"order", "levels", "critical_path", ...}
    result = run_mission(mission, {"branch": "main"}, secrets={...}, stop_flag=stop)
    result.to_dict(), result.exit_code    # 0 completed, 1 failed, 128+N stopped by signal N
    resume_mission(result.checkpoint_path) # runs only the steps that did not succeed
    mission_diagram(mission, "mermaid")    # text, json, mermaid, dot

Modules: ``format`` (+ ``schema``, ``checks``) read and validate;
``model`` holds the records; ``dag`` orders them; ``steps`` are the step
types; ``scheduler`` runs them on an executor through ``program``; ``result``,
``resume`` and ``diagram`` report.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tea.mission.diagram import FORMATS, describe, mission_diagram, plan
    from tea.mission.format import collect_errors, load_mission, loads_mission
    from tea.mission.model import Mission, MissionConfig, Step
    from tea.mission.result import MissionResult, StepResult
    from tea.mission.resume import is_mission_checkpoint
    from tea.mission.run import resume_mission, run_mission
    from tea.mission.steps import NOT_BUILT, STEP_TYPES, StepFailed, StepTimeout

__all__ = [
    "FORMATS",
    "NOT_BUILT",
    "STEP_TYPES",
    "Mission",
    "MissionConfig",
    "MissionResult",
    "Step",
    "StepFailed",
    "StepResult",
    "StepTimeout",
    "collect_errors",
    "describe",
    "is_mission",
    "is_mission_checkpoint",
    "load_mission",
    "loads_mission",
    "mission_diagram",
    "plan",
    "resume_mission",
    "run_mission",
]

# Everything but ``is_mission`` is imported on first use: asking whether a file is a
# mission costs no import, a dry run does not pay for the executors and the scheduler,
# and checking a mission does not pay for what only running its steps needs.
_LAZY = {
    "FORMATS": "tea.mission.diagram",
    "describe": "tea.mission.diagram",
    "mission_diagram": "tea.mission.diagram",
    "plan": "tea.mission.diagram",
    "collect_errors": "tea.mission.format",
    "load_mission": "tea.mission.format",
    "loads_mission": "tea.mission.format",
    "Mission": "tea.mission.model",
    "MissionConfig": "tea.mission.model",
    "Step": "tea.mission.model",
    "MissionResult": "tea.mission.result",
    "StepResult": "tea.mission.result",
    "is_mission_checkpoint": "tea.mission.resume",
    "resume_mission": "tea.mission.run",
    "run_mission": "tea.mission.run",
    "NOT_BUILT": "tea.mission.steps",
    "STEP_TYPES": "tea.mission.steps",
    "StepFailed": "tea.mission.steps",
    "StepTimeout": "tea.mission.steps",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tea.mission' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


_TOP_KEY = re.compile(r"^(steps|nodes)\s*:", re.MULTILINE)


def is_mission(doc_or_path: Mapping[str, Any] | str | Path) -> bool:
    """Whether a document (a mapping) or a file is a mission: top-level ``steps:``, no ``nodes:``.

    A file is read, not parsed, when its top-level keys are written in block style
    (``steps:`` at the start of a line), so asking costs no YAML parse; a file in flow
    style (``{steps: [...]}``) is parsed. A file that cannot be read or parsed is not
    a mission (loading it as a workflow reports why).
    """
    if isinstance(doc_or_path, Mapping):
        return "steps" in doc_or_path and "nodes" not in doc_or_path
    try:
        text = Path(doc_or_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    keys = set(_TOP_KEY.findall(text))
    if keys:
        return keys == {"steps"}
    if not text.lstrip().startswith("{"):
        return False
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(doc, Mapping) and is_mission(doc)
