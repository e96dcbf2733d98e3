"""The step types a mission may use, by name, each with its parameters and documented outputs.

::

    STEP_TYPES["create_file"]  -> StepType(params=(Param...), outputs={...}, run=fn)
    lookup(name)               -> StepType, or UnknownStepType saying what exists

One module per family: ``files``, ``data``, ``programs``
(``command``, ``git_*``), ``network`` (``http``, ``llm``) and ``ssh``. Libraries a
step needs (httpx, jsonschema, asyncssh, yaml, sqlite3) are imported when the
step runs, so loading and planning a mission never pays for them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from tea.mission.steps import data, files, network, programs, ssh
from tea.mission.steps.base import Param, StepContext, StepFailed, StepTimeout, StepType

__all__ = [
    "NOT_BUILT",
    "STEP_TYPES",
    "Param",
    "StepContext",
    "StepFailed",
    "StepTimeout",
    "StepType",
    "UnknownStepType",
    "lookup",
]


def noop(ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
    """Nothing: a join point, or a placeholder."""
    return {}


_NOOP = StepType("noop", "control", "do nothing (a join point or a placeholder)", (), {}, noop)

STEP_TYPES: Mapping[str, StepType] = {
    t.name: t
    for t in (_NOOP, *files.STEP_TYPES, *data.STEP_TYPES, *programs.STEP_TYPES,
              *network.STEP_TYPES, *ssh.STEP_TYPES)
}
"""Every built step type by name."""

NOT_BUILT = frozenset({
    "parse_xml", "compile_code", "run_tests", "format_code", "lint_code", "extract_functions",
    "generate_docs", "git_branch", "git_merge", "process_start", "process_kill", "monitor_resources",
    "service_health", "redis_set", "redis_get", "db_backup", "db_migrate", "websocket_connect",
    "ftp_upload", "ftp_download", "ping_host", "generate_embedding", "similarity_search",
    "model_inference", "tool", "agent", "chain", "rag_query", "rag_add",
})
"""Step types of the mission format (seed 004) that tea does not build."""

_FOR_CODE = frozenset({"compile_code", "run_tests", "format_code", "lint_code", "generate_docs",
                       "git_branch", "git_merge", "process_start", "ping_host", "db_backup", "db_migrate"})


class UnknownStepType(LookupError):
    """A ``step_type`` that is not built; ``hint`` suggests what to use."""

    def __init__(self, name: str) -> None:
        built = ", ".join(sorted(STEP_TYPES))
        if name in NOT_BUILT:
            message = f"step type '{name}' is not built in tea"
            hint = "a command step can run the tool that does it; " if name in _FOR_CODE else ""
            hint += f"built step types: {built}"
        else:
            message = f"unknown step type '{name}'"
            close = difflib.get_close_matches(name, list(STEP_TYPES), n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'? " if close else "") + f"built step types: {built}"
        super().__init__(message)
        self.message = message
        self.hint = hint


def lookup(name: str) -> StepType:
    """The step type called ``name``; ``UnknownStepType`` otherwise."""
    try:
        return STEP_TYPES[name]
    except KeyError:
        raise UnknownStepType(name) from None
