"""What travels to a host, and how: the program, the shared states, the tasks.

::

    program  ─► program_payload(program, tasks) ─► (key, load message), sent once per
                host: the branches as a standalone workflow when the program is a
                PortableProgram with a YAML source, else the program cloudpickled
    state    ─► SharedState.encode(task.state)  ─► (key, JSON text), sent once per host
                (the fan-out's shared input: the same object for every task)
    task     ─► task_message(task)              ─► its own fields and overrides only
    host     ◄─ task_from_message(data, state)  ◄─ the task again, reading the shared state

Keys are content hashes (SHA-256, 16 hex digits), so a host that already holds a
program or a state is never sent it again. Everything is JSON: a state that JSON
would change is refused by name (``remote.statejson``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from executors.base import BranchProgram, BranchTask, PortableProgram
from remote.statejson import json_encode, json_problem, not_json

__all__ = ["Batch", "SharedState", "Traffic", "program_payload", "task_from_message", "task_message"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def program_payload(program: BranchProgram, tasks: Sequence[BranchTask]) -> tuple[str, dict[str, Any]]:
    """``(key, load message)`` for the batch ``tasks`` of ``program``.

    A ``PortableProgram`` describes its branches as YAML files (``kind: yaml``, with
    the run's secrets beside them); anything else, or a batch whose tasks do not
    share one fan-out, travels cloudpickled (``kind: pickle``). The key covers the
    program, not the secrets.
    """
    message = _yaml_message(program, tasks) if isinstance(program, PortableProgram) else None
    if message is None:
        import cloudpickle  # only programs built in Python need it

        message = {"kind": "pickle", "data": base64.b64encode(cloudpickle.dumps(program)).decode("ascii")}
    key = _digest(json.dumps(message, sort_keys=True))
    if isinstance(program, PortableProgram) and program.secrets and message["kind"] == "yaml":
        message["secrets"] = dict(program.secrets)
    return key, message


def _yaml_message(program: PortableProgram, tasks: Sequence[BranchTask]) -> dict[str, Any] | None:
    fanouts = {t.fanout for t in tasks}
    exits = {t.exit for t in tasks}
    if not tasks or len(fanouts) != 1 or len(exits) != 1:
        return None
    files = program.workflow_files(sorted({t.entry for t in tasks}), exits.pop(), fanouts.pop())
    if files is None:
        return None
    return {"kind": "yaml", "entry": "workflow.yaml", "files": files}


@dataclass(frozen=True, slots=True)
class SharedState:
    """A fan-out's shared input as it travels: its content key and its JSON text."""

    key: str
    text: str

    @classmethod
    def encode(cls, state: Mapping[str, Any]) -> SharedState | str:
        """``state`` encoded, or what JSON would not carry unchanged in it."""
        text, problem = json_encode(state)
        return cls(_digest(text), text) if text is not None else problem or "it cannot be encoded"

    def message(self) -> str:
        """The protocol line that hands the state to a worker (without its newline)."""
        return f'{{"op":"state","key":"{self.key}","state":{self.text}}}'


@dataclass(frozen=True, slots=True)
class Batch:
    """One ``run`` call made ready to travel: the program once, each distinct shared
    state once, and the tasks JSON cannot carry (refused, never sent)."""

    program: tuple[str, dict[str, Any]]
    """``(key, load message)`` (``program_payload``)."""
    states: dict[int, SharedState | str]
    """By ``id(task.state)``: the encoded state, or what JSON cannot carry in it."""
    refused: dict[str, str]
    """By branch id: what JSON cannot carry in the task's own overrides."""
    tasks: tuple[BranchTask, ...]
    """The tasks, held so the ids above stay theirs."""

    @classmethod
    def prepare(cls, program: tuple[str, dict[str, Any]], tasks: Sequence[BranchTask]) -> Batch:
        """``tasks`` ready to travel with ``program`` (``program_payload``'s answer)."""
        states: dict[int, SharedState | str] = {}
        refused: dict[str, str] = {}
        for task in tasks:
            if id(task.state) not in states:
                states[id(task.state)] = SharedState.encode(task.state)
            problem = json_problem(task.overrides) if task.overrides else None
            if problem is not None:
                refused[task.branch_id] = problem
        return cls(program, states, refused, tuple(tasks))

    def state_of(self, task: BranchTask) -> SharedState:
        """The encoded shared state of ``task``; raises ``SerializationError`` (naming
        the branch and the first value at fault) when it cannot travel."""
        encoded = self.states[id(task.state)]
        problem = self.refused.get(task.branch_id) or (encoded if isinstance(encoded, str) else None)
        if problem is not None:
            raise not_json(f"the state of branch {task.branch_id}", problem, branch=task.branch_id)
        assert isinstance(encoded, SharedState)
        return encoded

    def shared_states(self) -> list[SharedState]:
        """Every distinct shared state that can travel."""
        return [s for s in self.states.values() if isinstance(s, SharedState)]


_TASK_DEFAULTS: dict[str, Any] = {"exit": None, "index": 0, "target": "", "fanout": None, "attempt": 1}
"""Task fields left out of a message while they hold these values (``BranchTask``'s own
defaults): a task line is sent once per branch, so it carries what differs only."""


def task_message(task: BranchTask) -> dict[str, Any]:
    """``task`` without its shared state: its own fields (defaults left out) and overrides."""
    data: dict[str, Any] = {"branch_id": task.branch_id, "entry": task.entry}
    for name, default in _TASK_DEFAULTS.items():
        value = getattr(task, name)
        if value != default:
            data[name] = value
    if task.overrides:
        data["overrides"] = dict(task.overrides)
    return data


def task_from_message(data: Mapping[str, Any], state: Mapping[str, Any]) -> BranchTask:
    """The task ``task_message`` described, reading through to ``state``."""
    fields = {name: data.get(name, default) for name, default in _TASK_DEFAULTS.items()}
    return BranchTask(
        branch_id=data["branch_id"],
        entry=data["entry"],
        state=state,
        overrides=dict(data.get("overrides") or {}),
        **fields,
    )


class Traffic:
    """Bytes sent to each host for branches: programs, shared states, tasks, environment
    (never the tea binary, which is cached on the host across runs). Thread-safe."""

    def __init__(self) -> None:
        self._sent: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, host: str, count: int) -> None:
        with self._lock:
            self._sent[host] = self._sent.get(host, 0) + count

    def snapshot(self) -> dict[str, int]:
        """Bytes sent so far, by host name."""
        with self._lock:
            return dict(self._sent)
