"""tea: YAML state-graph workflows for agents that run unattended.

The public API::

    workflow = tea.load("flow.yaml")          # LoadError on any problem, with file:line
    final = workflow.invoke({"x": 1})         # run to the end
    for event in workflow.stream({"x": 1}):   # or watch it run
        ...
    workflow.invoke({"ok": True}, checkpoint="ckpt.json")   # resume

``tea.StateGraph`` builds a graph in Python (``StateGraph(State)``: LangGraph's model,
with ``tea.Send`` for map-reduce); ``tea.register_action`` adds an
action for ``uses:``, ``tea.register_executor`` a parallel strategy;
``tea.ParallelConfig`` and ``tea.RetryPolicy`` describe how fan-outs run. What a
command line needs besides (signals, secrets, checkpoints, validation, diagrams,
the JSON Schema, the progress board) is here too, so ``tea.cli`` and other front
ends use only this module. Imports are lazy so that ``tea --version`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tea.version import __version__

__all__ = [
    "END",
    "START",
    "STREAM_MODES",
    "BranchResult",
    "CheckpointError",
    "LoadError",
    "ParallelConfig",
    "ProgressBoard",
    "RedactingFilter",
    "RetryPolicy",
    "Run",
    "RunError",
    "Secrets",
    "Send",
    "StateGraph",
    "TeaError",
    "Workflow",
    "__version__",
    "collect_errors",
    "graceful_signals",
    "json_schema",
    "load",
    "load_checkpoint",
    "loads",
    "parse_secrets_arg",
    "progress_board",
    "register_action",
    "register_executor",
    "register_reducer",
    "render_diagram",
    "secrets_from_env",
    "version_text",
]

# name -> "module" (same name there) or "module:name"
_LAZY = {
    "END": "tea.graph",
    "START": "tea.graph",
    "STREAM_MODES": "tea.streams",
    "Run": "tea.run",
    "StateGraph": "tea.builder",
    "Send": "tea.graph",
    "Workflow": "tea.workflow",
    "load": "tea.workflow",
    "loads": "tea.workflow",
    "register_action": "tea.actions",
    "register_reducer": "tea.state",
    "BranchResult": "executors.base",
    "ParallelConfig": "executors.base",
    "RetryPolicy": "executors.base",
    "register_executor": "executors",
    "ProgressBoard": "tea.progress",
    "progress_board": "tea.progress",
    "json_schema": "tea.schema",
    "TeaError": "tea.errors",
    "LoadError": "tea.errors",
    "RunError": "tea.errors",
    "CheckpointError": "tea.errors",
    "Secrets": "tea.secrets",
    "RedactingFilter": "tea.secrets",
    "parse_secrets_arg": "tea.secrets",
    "secrets_from_env": "tea.secrets",
    "graceful_signals": "tea.signals",
    "load_checkpoint": "tea.checkpoint",
    "collect_errors": "tea.loader",
    "render_diagram": "tea.diagram:render",
    "version_text": "tea.version",
}

if TYPE_CHECKING:
    from executors import register_executor
    from executors.base import BranchResult, ParallelConfig, RetryPolicy
    from tea.actions import register_action
    from tea.builder import StateGraph
    from tea.checkpoint import load_checkpoint
    from tea.diagram import render as render_diagram
    from tea.errors import CheckpointError, LoadError, RunError, TeaError
    from tea.graph import END, START, Send
    from tea.loader import collect_errors
    from tea.progress import ProgressBoard, progress_board
    from tea.run import Run
    from tea.schema import json_schema
    from tea.secrets import RedactingFilter, Secrets, parse_secrets_arg, secrets_from_env
    from tea.signals import graceful_signals
    from tea.state import register_reducer
    from tea.streams import STREAM_MODES
    from tea.version import version_text
    from tea.workflow import Workflow, load, loads


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'tea' has no attribute '{name}'")
    import importlib

    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
