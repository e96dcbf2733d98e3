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
    it and hangs for 60 s, later runs go on; ``fail_once``: a marker path: the first run
    creates it and fails, later runs go on; ``crash``: kill its own process; ``ran``: a
    directory where each run leaves a file named for its entry; ``done``: a file written
    once the branch ends (``sleep``
    first); ``spin``: seconds of pure-Python work, reported as ``spun: [start, end]``
    (wall clock); ``intkeys``: return a dict with int keys.
    """

    key = "toy"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        state = task.initial_state()
        if state.get("crash"):
            os.kill(os.getpid(), 9)
        if state.get("ran"):
            Path(state["ran"], f"{task.entry}-{os.getpid()}-{time.monotonic_ns()}").touch()
        spun = _spin(float(state["spin"])) if state.get("spin") else None
        if state.get("sleep"):
            deadline = time.monotonic() + float(state["sleep"])
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    break
                time.sleep(0.02)
        if state.get("hang"):
            _hang(float(state["hang"]), state.get("child", False), state.get("pidfile"))
        if _first(state.get("hang_once")):
            _hang(60.0, False, None)
        if _first(state.get("fail_once")):
            raise ConnectionError(f"branch {task.entry} fails once")
        if state.get("done"):
            Path(state["done"]).touch()
        if state.get("fail") == task.entry:
            print("about to fail", task.entry, flush=True)
            raise ValueError(f"branch {task.entry} was told to fail")
        update: dict[str, Any] = {**task.overrides, "seen": [*state.get("seen", []), task.entry], "pid": os.getpid()}
        if state.get("intkeys"):
            update["counts"] = {1: "one"}
        if spun is not None:
            update["spun"] = spun
        return update


def _first(marker: str | None) -> bool:
    """Whether this run is the first to reach ``marker`` (created atomically: branches
    running at once on several hosts of one machine must not all see it missing)."""
    if not marker:
        return False
    try:
        Path(marker).touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def _spin(seconds: float) -> list[float]:
    """Pure-Python work for ``seconds`` of this process's CPU time; its wall-clock span."""
    started = time.time()
    deadline = time.process_time() + seconds
    total = 0
    while time.process_time() < deadline:
        total += sum(i * i for i in range(2_000))
    return [started, time.time()]


def _hang(seconds: float, child: bool, pidfile: str | None) -> None:
    if child:
        process = subprocess.Popen(["sleep", str(seconds)])
        if pidfile:
            Path(pidfile).write_text(str(process.pid))
    time.sleep(seconds)


cloudpickle.register_pickle_by_value(__import__(__name__))
