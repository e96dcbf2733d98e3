"""The worker-process side of the ``process`` strategy, and the pickling both sides share.

A worker says ``ready`` once booted, then serves one branch at a time over its pipe::

    parent ── (program key, program bytes | None, task without state, state bytes) ──► worker
    parent ◄── ("ok", final state, key) | ("error", ErrorInfo, key | None) ─────────── worker

Program bytes come only the first time this worker sees a key; it keeps the
unpickled program for the rest of its life. Kept small and light on imports: the
forkserver preloads it, so every worker starts with it already imported.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import pickle
import signal
import traceback
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from executors.base import BranchProgram, BranchTask, ErrorInfo
from tea.errors import SerializationError

__all__ = ["dumps", "serve", "unpicklable_path"]

Request = tuple[str, bytes | None, BranchTask, bytes]


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as it crosses the process boundary (cloudpickle: code travels by value)."""
    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpicklable_path(state: Mapping[str, Any]) -> tuple[str, BaseException] | None:
    """The dotted key path of the first value in ``state`` that cannot be pickled, and why."""
    for key, value in state.items():
        try:
            dumps(value)
        except Exception as exc:
            if isinstance(value, Mapping):
                inner = unpicklable_path(value)
                if inner is not None:
                    return f"{key}.{inner[0]}", inner[1]
            return str(key), exc
    return None


def serialization_error(branch_id: str, state: Mapping[str, Any], exc: BaseException,
                        what: str) -> SerializationError:
    """A ``SerializationError`` naming the state key (and branch) that cannot be pickled."""
    found = unpicklable_path(state)
    path, cause = found if found is not None else ("<state>", exc)
    return SerializationError(
        f"{what} state key '{path}' cannot be pickled "
        f"({type(cause).__name__}: {cause})",
        branch=branch_id,
        hint="only picklable values (plain data, or objects cloudpickle can copy) cross "
        "to a worker process; drop the key before the fan-out, or use parallel_strategy: thread",
    )


def serve(conn: Connection) -> None:
    """Worker main loop: run branches until the parent closes the pipe."""
    # The driver decides what Ctrl-C means (stop at the next safe point); a worker
    # that died of the terminal's SIGINT would look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A segfault in a C extension prints the Python stack to stderr before the
    # parent reports the worker died.
    faulthandler.enable()
    # Workers are daemonic so they never outlive the driver; a branch that fans
    # out with the process strategy itself must still be allowed its own workers.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    programs: dict[str, BranchProgram] = {}
    conn.send_bytes(b"ready")
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send_bytes(_handle(message, programs))


def _handle(message: bytes, programs: dict[str, BranchProgram]) -> bytes:
    key, blob, task, state_bytes = pickle.loads(message)
    try:
        if blob is not None:
            programs[key] = pickle.loads(blob)
        program = programs[key]
        task = replace(task, state=pickle.loads(state_bytes))
    except Exception as exc:
        error = SerializationError(
            f"the worker cannot unpickle the branch program or its state: {exc}",
            branch=task.branch_id,
        )
        return _error(error, key if key in programs else None)
    try:
        state = program.run_branch(task, None)
    except Exception as exc:
        return _error(exc, key)
    try:
        return dumps(("ok", state, key))
    except Exception as exc:
        return _error(serialization_error(task.branch_id, state, exc, "the branch's final"), key)


def _error(exc: BaseException, key: str | None) -> bytes:
    """An error reply; ``key`` is the program this worker now holds (``None``: not loaded)."""
    info = ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))
    return pickle.dumps(("error", info, key), protocol=pickle.HIGHEST_PROTOCOL)
