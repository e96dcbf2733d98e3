"""The remote side's branch runner: what one branch process does with the messages it gets.

A ``Branches`` object lives in each process of a host's pool (``remote.pool``) and
answers the worker protocol's messages one at a time::

    {"op": "env", "env": {...}}                       environment for the branches
    {"op": "load", "key", "kind": "yaml"|"pickle"|"dir", ...}   a program, kept by key
    {"op": "state", "key", "state": {...}}            a shared state, the last STATES_KEPT
    {"op": "run", "id", "key", "state", "task"}      ─► {"op": "result", "id", "result"}

A program is loaded the first time a task needs it, then kept; a shared state is
read when a task arrives. What a branch writes to stdout or stderr is captured
while it runs and then passed on to the process's stderr; a failed branch's result
carries the last lines of it (``stderr_tail``), its own and nobody else's.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import tea
from executors.base import BranchProgram, BranchTask
from executors.events import capture
from executors.results import failed, succeeded
from remote.errors import ProgramLoadError
from remote.payload import task_from_message
from remote.statejson import json_check

__all__ = ["PROGRAM_DIR", "PROTOCOL", "STATES_KEPT", "Branches", "decode", "load_program", "run_task"]

PROTOCOL = 4
PROGRAM_DIR = "programs"
STATES_KEPT = 4
"""Shared states a process keeps (and whoever feeds it assumes it keeps): the last ones sent."""
_TAIL_LINES = 20
_HOSTNAME = socket.gethostname()


def load_program(directory: Path, message: Mapping[str, Any]) -> BranchProgram:
    """Materialise a ``load`` message under ``directory`` (``kind: dir``: the files are
    already in ``message["path"]``) and return the program; raises ``ProgramLoadError``
    when it does not load here."""
    try:
        if message.get("kind") == "pickle":
            import cloudpickle  # only programs built in Python need it

            program = cloudpickle.loads(base64.b64decode(message["data"]))
            if not isinstance(program, BranchProgram):
                raise TypeError(f"a {type(program).__name__} is not a BranchProgram")
            return program
        if message.get("kind") == "dir":
            directory = Path(message["path"])
        for name, text in (message.get("files") or {}).items():
            target = (directory / name).resolve()
            if directory.resolve() not in target.parents:
                raise ValueError(f"program file {name!r} escapes the program directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            # The host's other branch processes may be writing the same file: each writes
            # its own copy and renames it into place, so none reads half a file.
            partial = target.with_name(f".{target.name}.{os.getpid()}")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, target)
        workflow = tea.load(directory / message.get("entry", "workflow.yaml"))
        return workflow.branch_program(message.get("secrets") or None)
    except Exception as exc:
        raise ProgramLoadError(
            f"the workflow sent to {socket.gethostname()} does not load there: {exc}",
            hint="the host loads it with the tea it runs: build that from this tea "
            "(`tea bundle`), and keep the files the workflow names beside it",
        ) from exc


def run_task(program: BranchProgram, task: BranchTask) -> dict[str, Any]:
    """Run one branch and return its ``BranchResult.to_dict()`` (a failure is a result too),
    with where and how long it ran."""
    started = time.perf_counter()
    with capture() as events:
        try:
            # No cancel event: a branch the driver gives up on is stopped by killing its process.
            update = program.run_branch(task, None)
            json_check(update, f"the update branch {task.branch_id} returned", branch=task.branch_id)
            result = succeeded(task, update)
        except Exception as exc:
            result = failed(task, exc)
    out = replace(result, events=tuple(events)).to_dict()
    out.update(host=_HOSTNAME, pid=os.getpid(), duration_ms=(time.perf_counter() - started) * 1000.0)
    return out


class Branches:
    """One branch process's programs and shared states, and its answer to each message.

    Not thread-safe: one message at a time, in order (the order the driver counts on).
    """

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._programs: dict[str, BranchProgram | BaseException] = {}
        self._loads: dict[str, dict[str, Any]] = {}
        self._states: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Kept open for the process's life (one per branch process, reused by each branch).
        self._capture = tempfile.TemporaryFile(prefix="tea-branch-")  # noqa: SIM115
        self._stderr = os.dup(2)

    def handle(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Apply ``message``; a ``run`` is answered with its result message."""
        op = message.get("op")
        if op == "run":
            return {"op": "result", "id": message["id"], "result": self._run(message)}
        if op == "state":
            self._states[message["key"]] = message["state"]
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        elif op == "load":
            self._loads[message["key"]] = message
        elif op == "env":
            os.environ.update({str(k): str(v) for k, v in (message.get("env") or {}).items()})
        return None

    def _program(self, key: str) -> BranchProgram:
        if key not in self._programs:
            message = self._loads.pop(key, None)
            if message is None:
                self._programs[key] = KeyError(f"program {key} was never sent")
            else:
                try:
                    self._programs[key] = load_program(self._workdir / PROGRAM_DIR / key, message)
                except ProgramLoadError as exc:
                    self._programs[key] = exc
        program = self._programs[key]
        if isinstance(program, BaseException):
            raise program
        return program

    def _run(self, message: dict[str, Any]) -> dict[str, Any]:
        state = self._states.get(message.get("state", ""))
        task = task_from_message(message["task"], state or {})
        self._start_capture()
        try:
            if state is None:
                raise KeyError(f"shared state {message.get('state')} was never sent")
            result = run_task(self._program(message["key"]), task)
        except Exception as exc:
            result = failed(task, exc).to_dict()
            result.update(host=_HOSTNAME, pid=os.getpid())
        finally:
            said = self._end_capture()
        if not result.get("success"):
            result["stderr_tail"] = "\n".join(said.decode(errors="replace").rstrip().splitlines()[-_TAIL_LINES:])
        return result

    def _start_capture(self) -> None:
        os.dup2(self._capture.fileno(), 1)
        os.dup2(self._capture.fileno(), 2)

    def _end_capture(self) -> bytes:
        """Stop capturing; pass what the branch said on to the real stderr, and return it
        (a silent branch costs five system calls here: most are silent)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(self._stderr, 1)
        os.dup2(self._stderr, 2)
        fd = self._capture.fileno()
        size = os.lseek(fd, 0, os.SEEK_CUR)
        if not size:
            return b""
        os.lseek(fd, 0, os.SEEK_SET)
        said = os.read(fd, size)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(said)
        while view:
            view = view[os.write(self._stderr, view):]
        return said


def decode(line: str | bytes) -> dict[str, Any]:
    """One protocol line as a message (``{}`` for a line that is not a JSON object)."""
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}
