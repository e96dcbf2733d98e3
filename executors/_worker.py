"""The worker-process side of the ``process`` strategy, and the pickling both sides share.

A worker sends its stderr (fd 2) to a file the driver gave it (see ``InheritedFd``),
says ``ready`` once booted, then serves one branch at a time over its pipe::

    parent ── (program key, program bytes | None, task without state, state bytes) ──► worker
    parent ◄── ("ok", final state, key) | ("error", ErrorInfo, key | None) ─────────── worker

Program bytes come only the first time this worker sees a key; it keeps the
unpickled program for the rest of its life. Kept small and light on imports: the
forkserver preloads it, so every worker starts with it already imported.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import replace
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from executors.base import BranchProgram, BranchTask, ErrorInfo
from tea.errors import SerializationError

__all__ = ["InheritedFd", "dumps", "serialization_error", "serve", "unpicklable_path"]

Request = tuple[str, bytes | None, BranchTask, bytes]

# How deep the search for an unpicklable value goes (a bound, since objects may hold cycles).
_SEARCH_DEPTH = 16
# What tells the worker that its driver is gone: nobody is left to answer, so it exits quietly.
_DRIVER_GONE = (BrokenPipeError, ConnectionResetError, EOFError, KeyboardInterrupt)


class InheritedFd:
    """A file descriptor that a worker process receives as an argument of its ``Process``.

    Pickling it while the process starts hands the descriptor over the way
    ``multiprocessing`` hands over a pipe (``reduction.DupFd``: passed to the
    forkserver, or inherited under spawn); the worker gets its own descriptor of
    the same open file.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild_fd, (reduction.DupFd(self.fd),)


def _rebuild_fd(dup: Any) -> InheritedFd:
    return InheritedFd(dup.detach())


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as it crosses the process boundary (cloudpickle: code travels by value)."""
    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpicklable_path(state: Mapping[str, Any]) -> tuple[str, BaseException] | None:
    """The path of the first value in ``state`` that cannot be pickled, and why.

    The path goes through mappings (``db.conn``), lists and tuples (``items[2]``)
    and objects' attributes (``client.lock``) down to the innermost culprit.
    """
    return _find_unpicklable(state, "", _SEARCH_DEPTH)


def _find_unpicklable(value: Any, path: str, depth: int) -> tuple[str, BaseException] | None:
    for where, child in _children(value, path):
        try:
            dumps(child)
        except Exception as exc:
            inner = _find_unpicklable(child, where, depth - 1) if depth > 0 else None
            return inner or (where, exc)
    return None


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield (f"{path}.{key}" if path else str(key)), child
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield f"{path}[{index}]", child
    else:
        # Only a guess at what pickling an object sends (it may define __getstate__),
        # but a good one: a lock or a socket held in an attribute.
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            for name, child in attributes.items():
                yield f"{path}.{name}", child


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


def serve(conn: Connection, stderr: InheritedFd | None = None) -> None:
    """Worker main loop: run branches until the driver closes the pipe.

    With ``stderr``, the worker's fd 2 goes to that file, where the driver reads
    it (a crash's last words go into the branch's error). A worker whose driver
    went away (the pipe broke, Ctrl-C) exits at once, with status 0 and without a
    traceback: the driver is gone or has stopped listening, and multiprocessing
    would print that traceback on the user's terminal.
    """
    try:
        _serve(conn, stderr)
    except _DRIVER_GONE:
        return


def _serve(conn: Connection, stderr: InheritedFd | None) -> None:
    if stderr is not None:
        _redirect_stderr(stderr.fd)
    # The driver decides what Ctrl-C means (stop at the next safe point); a worker
    # that died of the terminal's SIGINT would look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A segfault in a C extension prints the Python stack to stderr, which the
    # driver puts into the branch's WorkerDied error.
    faulthandler.enable()
    # Workers are daemonic so they never outlive the driver; a branch that fans
    # out with the process strategy itself must still be allowed its own workers.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    programs: dict[str, BranchProgram] = {}
    conn.send_bytes(b"ready")
    while True:
        try:
            message = conn.recv_bytes()
        except OSError:
            return
        reply = _handle(message, programs)
        # The driver reads the stderr file once the reply is in: nothing may still be buffered.
        if sys.stderr is not None:
            sys.stderr.flush()
        conn.send_bytes(reply)


def _redirect_stderr(fd: int) -> None:
    """Point fd 2 (and so ``sys.stderr``, faulthandler and C code) at ``fd``."""
    if sys.stderr is not None:
        sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


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
