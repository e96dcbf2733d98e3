"""The worker-process side of the ``process`` strategy.

A worker sends its stdout and stderr (fds 1 and 2) to a file the driver gave it (see
``InheritedFd``), says ``ready`` once booted, then serves one branch at a time over its
pipe::

    driver ── (program key, program bytes | None,                         ──► worker
               shared key, shared bytes | None,
               (branch_id, entry, exit, index, target, fanout, attempt),
               overrides bytes)
    driver ◄── (kind, payload, (program key | None, shared key | None), events)  ─── worker
               "ok": the branch's update | "error": ErrorInfo | "missing": None;
               events: what the branch reported (retries, fallbacks: ``executors.events``)

Program bytes come only the first time a worker sees a key; it keeps the program
for the rest of its life. Shared bytes (a fan-out's parent state, keyed by their
content) come only the first time it sees that content; it keeps the last
``SHARED_CACHE`` of them, most recently used last. The third item of a reply
names what the worker now holds, so the driver can mirror its caches; "missing"
means the driver's mirror was wrong and asks for the request again with bytes.
Kept small and light on imports: the forkserver preloads it.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import select
import signal
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

from executors._pickling import dumps, serialization_error
from executors._sync import become_subreaper, die_with_parent, kill_descendants, reap_adopted
from executors.base import BranchProgram, BranchTask
from executors.events import capture
from executors.results import error_info
from tea.errors import SerializationError

__all__ = ["SHARED_CACHE", "Head", "Held", "InheritedFd", "Request", "serve"]

SHARED_CACHE = 4
"""Shared states a worker keeps: a few fan-outs interleaved (nested ones, a loop
around one) still find theirs, and old parent states do not pile up."""

Head = tuple[str, str, str | None, int, str, str | None, int, int]
"""A task without its states: branch_id, entry, exit, index, target, fanout, attempt, depth."""
Request = tuple[str, bytes | None, str, bytes | None, Head, bytes]
Held = tuple[str | None, str | None]

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


class _Held:
    """What one worker keeps between branches: programs by key, shared states by content."""

    def __init__(self) -> None:
        self.programs: dict[str, BranchProgram] = {}
        self.shared: OrderedDict[str, Mapping[str, Any]] = OrderedDict()

    def keep_shared(self, key: str, state: Mapping[str, Any]) -> None:
        self.shared[key] = state
        self.shared.move_to_end(key)
        while len(self.shared) > SHARED_CACHE:
            self.shared.popitem(last=False)

    def use_shared(self, key: str) -> Mapping[str, Any] | None:
        state = self.shared.get(key)
        if state is not None:
            self.shared.move_to_end(key)
        return state


def serve(conn: Connection, stderr: InheritedFd | None = None) -> None:
    """Worker main loop: run branches until the driver closes the pipe.

    With ``stderr``, the worker's fds 1 and 2 go to that file, where the driver reads
    them (a crash's last words go into the branch's error): what a branch prints
    never reaches tea's stdout, which carries the run's data. A worker whose driver
    went away (the pipe broke, Ctrl-C) exits at once, with status 0 and without a
    traceback: the driver is gone or has stopped listening, and multiprocessing
    would print that traceback on the user's terminal.

    The worker leads a process group of its own and adopts its orphaned descendants
    (Linux), so the driver's ``kill_tree`` reaches all a branch started, ``setsid``
    programs included. Whatever is still running is killed with the worker when it
    exits, when SIGTERM comes (multiprocessing's exit hook, its parent's death), and
    when the driver hangs up while a branch runs (tea was SIGKILLed).
    """
    adopts = _isolate()
    _watch_driver(conn)
    try:
        _serve(conn, stderr, adopts)
    except _DRIVER_GONE:
        return
    finally:
        kill_descendants()


def _isolate() -> bool:
    """Own process group, SIGTERM on the parent's death, subreaper (see ``serve``);
    whether it became a subreaper (and so must reap the orphans it adopts)."""
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _terminated)
    # The parent is the forkserver (prctl exists only on Linux, which always has
    # it), which outlives the driver while workers hold its pipe: this covers the
    # forkserver's death, _watch_driver the driver's. SIGTERM rather than SIGKILL,
    # so the handler can take the branch's programs along; a node stuck in C code
    # holding the GIL delays it until it returns.
    die_with_parent(signal.SIGTERM)
    return become_subreaper()


def _terminated(signum: int, frame: object) -> None:
    kill_descendants()
    os._exit(128 + signum)


def _watch_driver(conn: Connection) -> None:
    """Start a thread that ends the worker, and all it started, when the driver's end
    of the pipe closes, even in the middle of a branch (Linux: ``POLLRDHUP``)."""
    hangup = getattr(select, "POLLRDHUP", 0)
    if not hangup:
        return
    poller = select.poll()
    poller.register(conn.fileno(), hangup)
    threading.Thread(target=_on_hangup, args=(poller,), name="tea-driver-watch", daemon=True).start()


def _on_hangup(poller: select.poll) -> None:
    ended = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL
    while not any(events & ended for _, events in poller.poll()):
        pass
    kill_descendants()
    os._exit(0)


def _serve(conn: Connection, stderr: InheritedFd | None, adopts: bool) -> None:
    if stderr is not None:
        _capture_output(stderr.fd)
    # The driver decides what Ctrl-C means (stop at the next safe point); a worker
    # that died of the terminal's SIGINT would look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A segfault in a C extension prints the Python stack to stderr, which the
    # driver puts into the branch's WorkerDied error.
    faulthandler.enable()
    # Workers are daemonic so they never outlive the driver; a branch that fans
    # out with the process strategy itself must still be allowed its own workers.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    held = _Held()
    conn.send_bytes(b"ready")
    while True:
        try:
            message = conn.recv_bytes()
        except OSError:
            return
        reply = _handle(message, held)
        if adopts:
            reap_adopted()
        # The driver reads the output file once the reply is in: nothing may still be buffered.
        _flush()
        conn.send_bytes(reply)


def _capture_output(fd: int) -> None:
    """Point fds 1 and 2 (and so ``sys.stdout``, ``sys.stderr``, faulthandler, C code and
    the programs a branch starts) at ``fd``."""
    _flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def _handle(message: bytes, held: _Held) -> bytes:
    request: Request = pickle.loads(message)
    program_key, program_blob, shared_key, shared_blob, head, overrides_blob = request
    reply = partial(_reply, held, program_key, shared_key)
    try:
        if program_blob is not None:
            held.programs[program_key] = pickle.loads(program_blob)
        if shared_blob is not None:
            held.keep_shared(shared_key, pickle.loads(shared_blob))
        program = held.programs.get(program_key)
        shared = held.use_shared(shared_key)
        if program is None or shared is None:
            return reply("missing", None)
        branch_id, entry, exit, index, target, fanout, attempt, depth = head
        task = BranchTask(
            branch_id, entry, exit, shared, index=index, target=target, fanout=fanout,
            attempt=attempt, overrides=pickle.loads(overrides_blob), depth=depth,
        )
    except Exception as exc:
        error = SerializationError(
            f"the worker cannot unpickle the branch program or its state: {exc}",
            branch=head[0],
        )
        return reply("error", error_info(error))
    with capture() as events:
        try:
            update = program.run_branch(task, None)
        except Exception as exc:
            return reply("error", error_info(exc), events=events)
    try:
        return reply("ok", update, by_value=True, events=events)
    except Exception as exc:
        error = serialization_error(task.branch_id, update, exc, "the branch's update")
        return reply("error", error_info(error), events=events)


def _reply(
    held: _Held,
    program_key: str,
    shared_key: str,
    kind: str,
    payload: Any,
    *,
    by_value: bool = False,
    events: list[dict[str, Any]] | None = None,
) -> bytes:
    """A reply naming what this worker holds now of what the request named, with the
    branch's ``events``; ``by_value`` pickles with cloudpickle (an update may hold objects
    of classes defined in the workflow)."""
    holds: Held = (
        program_key if program_key in held.programs else None,
        shared_key if shared_key in held.shared else None,
    )
    message = (kind, payload, holds, tuple(events or ()))
    if by_value:
        return dumps(message)
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
