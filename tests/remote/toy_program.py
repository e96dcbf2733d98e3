"""A tiny ``BranchProgram`` for executor tests that need no workflow file (shipped by value)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import cloudpickle

from executors.base import BranchTask


class ToyProgram:
    """Adds ``entry`` to ``seen``; ``fail`` raises; ``sleep`` waits (stopping on cancel)."""

    key = "toy"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        state = dict(task.state)
        if state.get("sleep"):
            deadline = time.monotonic() + float(state["sleep"])
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    break
                time.sleep(0.02)
        if state.get("fail") == task.entry:
            print("about to fail", task.entry, flush=True)
            raise ValueError(f"branch {task.entry} was told to fail")
        state["seen"] = [*state.get("seen", []), task.entry]
        state["pid"] = os.getpid()
        return state


cloudpickle.register_pickle_by_value(__import__(__name__))
