"""A tiny ``BranchProgram`` for executor tests that need no workflow file (shipped by value)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle

from executors.base import BranchTask


class ToyProgram:
    """Adds ``entry`` to ``seen`` and returns its update (its overrides, ``seen``, ``pid``).
    State keys (shared state or overrides) that change that:

    ``fail``: raise when it names the entry; ``sleep``: wait (stopping on cancel);
    ``hang``: wait that long ignoring cancel (only killing the worker stops it), after
    starting a ``sleep`` child process when ``child`` is set and writing the child's
    pid to ``pidfile`` when given; ``hang_once``: a marker path: the first run creates
    it and hangs for 60 s, later runs go on; ``intkeys``: return a dict with int keys.
    """

    key = "toy"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        state = task.initial_state()
        if state.get("sleep"):
            deadline = time.monotonic() + float(state["sleep"])
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    break
                time.sleep(0.02)
        if state.get("hang"):
            _hang(float(state["hang"]), state.get("child", False), state.get("pidfile"))
        marker = state.get("hang_once")
        if marker and not Path(marker).exists():
            Path(marker).touch()
            _hang(60.0, False, None)
        if state.get("fail") == task.entry:
            print("about to fail", task.entry, flush=True)
            raise ValueError(f"branch {task.entry} was told to fail")
        update: dict[str, Any] = {**task.overrides, "seen": [*state.get("seen", []), task.entry], "pid": os.getpid()}
        if state.get("intkeys"):
            update["counts"] = {1: "one"}
        return update


def _hang(seconds: float, child: bool, pidfile: str | None) -> None:
    if child:
        process = subprocess.Popen(["sleep", str(seconds)])
        if pidfile:
            Path(pidfile).write_text(str(process.pid))
    time.sleep(seconds)


cloudpickle.register_pickle_by_value(__import__(__name__))
