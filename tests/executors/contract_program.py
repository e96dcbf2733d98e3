"""The branch program every backend runs in the contract suite (tests/executors/test_contract.py).

What a branch does is chosen by its input (the fan-out's shared state plus its
overrides), so one program covers success, errors, retries, slowness and
cancellation. It follows the contract: it reads ``task.state`` without changing it
and returns only what it wrote. Shipped by value (cloudpickle), so worker
processes and remote hosts need no copy of this file.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle

from executors import BranchTask
from tea.errors import NodeError

TICK_SECONDS = 0.02


class ContractProgram:
    """A ``BranchProgram``. Input keys that change what a branch does:

    ``sleep`` (seconds, ignoring cancel), ``slow_ticks`` (20 ms ticks, stopping at
    the next one when cancelled), ``wait_for`` (a file path: wait until it exists, at
    most 30 s, so a test orders branches by what it sees, not by timing), ``fail`` (raise), ``counter`` + ``fail_times``
    (raise until tried that often, counted in a file), ``shared`` (``{"seen":
    [...]}``: the branch returns a new one with its name added). Every branch
    writes ``out = i * 2`` and ``pid``; a program made with ``mark`` writes
    ``{mark: True}`` too.
    """

    def __init__(self, key: str = "contract", mark: str | None = None) -> None:
        self._key = key
        self.mark = mark

    @property
    def key(self) -> str:
        return self._key

    def run_branch(
        self, task: BranchTask, cancel: threading.Event | None = None
    ) -> dict[str, Any]:
        state = task.initial_state()
        if state.get("sleep"):
            time.sleep(state["sleep"])
        if state.get("wait_for"):
            _wait_for(Path(state["wait_for"]))
        ticks = state.get("ticks", 0)
        while ticks < state.get("slow_ticks", 0) and not (cancel and cancel.is_set()):
            time.sleep(TICK_SECONDS)
            ticks += 1
        if state.get("counter"):
            tries = _count(state["counter"])
            if tries <= state["fail_times"]:
                _fail(f"transient failure {tries}")
        if state.get("fail"):
            _fail(f"boom in {state['name']}")
        written: dict[str, Any] = {"out": state["i"] * 2, "pid": os.getpid(), "ticks": ticks}
        if "shared" in state:
            written["shared"] = {"seen": [*state["shared"]["seen"], state["name"]]}
        if self.mark:
            written[self.mark] = True
        state.update(written)
        return {k: v for k, v in state.items() if k not in task.state or task.state[k] is not v}


def _wait_for(path: Path, at_most: float = 30.0) -> None:
    deadline = time.monotonic() + at_most
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(TICK_SECONDS)


def _count(path: str) -> int:
    """One more try, counted in the file ``path`` (so it survives processes and hosts)."""
    counter = Path(path)
    tries = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(tries))
    return tries


def _fail(message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError as exc:
        raise NodeError(message, node="work") from exc


cloudpickle.register_pickle_by_value(sys.modules[__name__])
