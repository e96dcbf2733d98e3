"""Branch programs for the process backend's own tests: each misbehaves in one chosen way.

Module-level classes, so workers import them by reference (their sys.path is the
driver's). ``Probe`` logs each time a worker unpickles it, to show the program is
sent once per worker, not once per branch; ``Counted`` does the same for a value
of the shared state, and logs each time it is pickled. ``make_client`` is for
workflows whose inline code puts an unpicklable object into the state.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any

from executors import BranchTask


class Probe:
    """A ``BranchProgram`` whose branches do what ``state["mode"]`` says."""

    def __init__(self, log: str | None = None, key: str = "probe") -> None:
        self.log = log
        self._key = key

    @property
    def key(self) -> str:
        return self._key

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(f"{os.getpid()}\n")

    def run_branch(
        self, task: BranchTask, cancel: threading.Event | None = None
    ) -> dict[str, Any]:
        state = task.initial_state()
        mode = state.get("mode", "ok")
        if "say" in state:
            print(state["say"], file=sys.stderr)
        if mode == "exit":
            os._exit(3)
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "segfault":
            ctypes.string_at(0)
        if mode == "sleep":
            time.sleep(state["seconds"])
        if mode == "raise":
            raise KeyError("missing thing")
        if mode == "unpicklable":
            state["lock"] = threading.Lock()
        if mode == "touch":
            with open(state["path"], "w") as handle:
                handle.write("ran")
        state["pid"] = os.getpid()
        return {k: v for k, v in state.items() if k not in task.state or task.state[k] is not v}


class Unpicklable(Probe):
    """A program that cannot be sent to a worker (it holds a lock)."""

    def __init__(self) -> None:
        super().__init__(key="unpicklable")
        self.lock = threading.Lock()


class Counted:
    """A value that appends ``dump <pid>`` to ``log`` each time it is pickled and
    ``load <pid>`` each time it is unpickled."""

    def __init__(self, log: str, payload: bytes = b"") -> None:
        self.log = log
        self.payload = payload

    def __getstate__(self) -> dict[str, Any]:
        _note(self.log, "dump")
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _note(self.log, "load")


def _note(log: str, what: str) -> None:
    with open(log, "a") as handle:
        handle.write(f"{what} {os.getpid()}\n")


class Client:
    """A client object as nodes keep them: plain data outside, a lock inside."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


def make_client(name: str = "db") -> Client:
    return Client(name)
