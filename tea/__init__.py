"""tea: YAML state-graph workflows for agents that run unattended.

The public API::

    workflow = tea.load("flow.yaml")          # LoadError on any problem, with file:line
    final = workflow.invoke({"x": 1})         # run to the end
    for event in workflow.stream({"x": 1}):   # or watch it run
        ...
    workflow.invoke({"ok": True}, checkpoint="ckpt.json")   # resume

``tea.StateGraph`` builds a graph in Python; ``tea.register_action`` adds an
action for ``uses:``. Imports are lazy so that ``tea --version`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "END",
    "START",
    "STREAM_MODES",
    "BranchResult",
    "CheckpointError",
    "LoadError",
    "ParallelConfig",
    "Run",
    "RunError",
    "StateGraph",
    "TeaError",
    "Workflow",
    "__version__",
    "load",
    "loads",
    "register_action",
    "register_reducer",
]

_LAZY = {
    "END": "tea.graph",
    "START": "tea.graph",
    "STREAM_MODES": "tea.runner",
    "Run": "tea.runner",
    "StateGraph": "tea.builder",
    "Workflow": "tea.workflow",
    "load": "tea.workflow",
    "loads": "tea.workflow",
    "register_action": "tea.actions",
    "register_reducer": "tea.state",
    "BranchResult": "executors.base",
    "ParallelConfig": "executors.base",
    "TeaError": "tea.errors",
    "LoadError": "tea.errors",
    "RunError": "tea.errors",
    "CheckpointError": "tea.errors",
}

if TYPE_CHECKING:
    from executors.base import BranchResult, ParallelConfig
    from tea.actions import register_action
    from tea.builder import StateGraph
    from tea.errors import CheckpointError, LoadError, RunError, TeaError
    from tea.graph import END, START
    from tea.runner import STREAM_MODES, Run
    from tea.state import register_reducer
    from tea.workflow import Workflow, load, loads


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tea' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
