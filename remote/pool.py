"""A host's branch processes: ``slots`` children forked from the worker, one branch each.

::

    front end (the resident worker's stdin, or the GNU Parallel server's FIFO)
        │  env / load / state / run, as protocol lines
        ▼
    ProcessPool (the parent: one thread, one select loop)
        │  an idle child gets the task, preceded by the env, program and shared state
        │  it lacks (each sent to a child once; states mirror its STATES_KEPT)
        ▼
    child 1 … child N   (forked at start, while the parent has one thread: they share
        │                what it imported; each runs Branches, one branch at a time)
        ◄── result line ── on_result(task_id, line)

A child that dies (a branch that crashed it, or ``cancel``) fails the task it held
with ``WorkerDied`` and is replaced by a fresh fork; the parent never has a second
thread, so forking again is safe. Everything here runs on the caller's thread.

Process groups: the resident worker's children stay in its group, so the driver's
``kill -KILL -pgid`` takes the worker, every branch and all they started. The GNU
Parallel server's children lead groups of their own (``own_groups``), so that one
branch (its job gone) can be killed with what it started, alone; the server kills
every child's group when it stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import ErrorInfo
from executors.results import failed
from remote.branches import STATES_KEPT, Branches, decode
from remote.payload import task_from_message

__all__ = ["ProcessPool"]

OnResult = Callable[[str, bytes], None]
"""Called with a task's id and its result line (``{"op": "result", ...}`` and a newline)."""


@dataclass(eq=False)
class _Child:
    """One branch process: its pipes, its task, and what it was already sent."""

    pid: int
    to_child: int
    from_child: int
    task: _Task | None = None
    env_sent: int = 0
    loaded: set[str] = field(default_factory=set)
    states: OrderedDict[str, None] = field(default_factory=OrderedDict)
    pending: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class _Task:
    """A ``run`` line waiting for (or on) a child, with the shared state it reads."""

    task_id: str
    key: str
    state_key: str
    state: bytes | None
    line: bytes


class ProcessPool:
    """``slots`` branch processes and the queue in front of them. Not thread-safe: the
    front end feeds it and calls ``pump`` from one thread."""

    def __init__(
        self, slots: int, workdir: Path, on_result: OnResult, inherited: Iterable[int] = (), own_groups: bool = False
    ) -> None:
        self._slots = max(1, slots)
        self._own_groups = own_groups
        self._workdir = workdir
        self._on_result = on_result
        self._inherited = list(inherited)
        """The front end's descriptors, which a child must not keep."""
        self._selector = selectors.DefaultSelector()
        self._children: list[_Child] = []
        self._queue: deque[_Task] = deque()
        self._env: list[bytes] = []
        self._loads: dict[str, bytes] = {}
        self._states: OrderedDict[str, bytes] = OrderedDict()

    def start(self) -> None:
        """Fork the children (call while this process has one thread)."""
        while len(self._children) < self._slots:
            self._children.append(self._fork())

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from ``pump`` whenever ``fd`` is readable (the front end's input)."""
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def env(self, line: bytes) -> None:
        """An ``env`` message: every child gets it before its next task."""
        self._env.append(line)

    def load(self, key: str, line: bytes) -> None:
        self._loads[key] = line

    def has_state(self, key: str) -> bool:
        return key in self._states

    def state(self, key: str, line: bytes) -> None:
        """A ``state`` message; the pool keeps the last ``STATES_KEPT``, as its feeder assumes."""
        self._states[key] = line
        while len(self._states) > STATES_KEPT:
            self._states.popitem(last=False)

    def run(self, task_id: str, key: str, state_key: str, line: bytes) -> None:
        """Queue a ``run`` message; its shared state is the one known now (message order)."""
        self._queue.append(_Task(task_id, key, state_key, self._states.get(state_key), line))
        self._dispatch()

    def cancel(self, task_id: str) -> None:
        """Stop ``task_id``: dropped from the queue, or its child killed (and replaced)."""
        self._queue = deque(t for t in self._queue if t.task_id != task_id)
        for child in self._children:
            if child.task is not None and child.task.task_id == task_id:
                self._kill(child.pid)

    def pump(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for input or results and handle what came."""
        for key, _ in self._selector.select(timeout):
            key.data()

    def _dispatch(self) -> None:
        for child in self._children:
            if not self._queue:
                return
            if child.task is None:
                self._send(child, self._queue.popleft())

    def _send(self, child: _Child, task: _Task) -> None:
        lines = self._env[child.env_sent :]
        child.env_sent = len(self._env)
        if task.key not in child.loaded and task.key in self._loads:
            lines.append(self._loads[task.key])
            child.loaded.add(task.key)
        if task.state is not None and task.state_key not in child.states:
            lines.append(task.state)
            child.states[task.state_key] = None
            while len(child.states) > STATES_KEPT:
                child.states.popitem(last=False)
        lines.append(task.line)
        child.task = task
        # A child that died takes the write with it; its end of file fails the task next.
        with contextlib.suppress(OSError):
            _write_all(child.to_child, b"".join(lines))

    def _fork(self) -> _Child:
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: keep only its own pipes and stderr
            if self._own_groups:
                os.setpgid(0, 0)
            os.close(down_write)
            os.close(up_read)
            for fd in self._parent_fds():
                os.close(fd)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            _child_main(down_read, up_write, self._workdir)
        os.close(down_read)
        os.close(up_write)
        child = _Child(pid, down_write, up_read)
        self._selector.register(up_read, selectors.EVENT_READ, lambda: self._readable(child))
        return child

    def _parent_fds(self) -> list[int]:
        fds = [self._selector.fileno(), *self._inherited]
        for child in self._children:
            fds += [child.to_child, child.from_child]
        return fds

    def _readable(self, child: _Child) -> None:
        data = os.read(child.from_child, 1 << 16)
        if not data:
            self._died(child)
            return
        child.pending += data
        while (end := child.pending.find(b"\n")) >= 0:
            line = bytes(child.pending[: end + 1])
            del child.pending[: end + 1]
            task, child.task = child.task, None
            if task is not None:
                self._on_result(task.task_id, line)
        self._dispatch()

    def _died(self, child: _Child) -> None:
        self._selector.unregister(child.from_child)
        os.close(child.from_child)
        os.close(child.to_child)
        _, status = os.waitpid(child.pid, 0)
        if self._own_groups:  # what the branch started dies with it
            self._kill(child.pid)
        self._children.remove(child)
        if child.task is not None:
            self._on_result(child.task.task_id, _died_line(child.task, status))
        self._children.append(self._fork())
        self._dispatch()

    def _kill(self, pid: int) -> None:
        """Kill a child (its group, with ``own_groups``: all it started)."""
        with contextlib.suppress(ProcessLookupError):
            if self._own_groups:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill the children (a branch still running dies with them)."""
        for child in self._children:
            self._kill(child.pid)
            os.waitpid(child.pid, 0)
            os.close(child.to_child)
            os.close(child.from_child)
        self._children.clear()
        self._selector.close()


def _died_line(task: _Task, status: int) -> bytes:
    """The result of a task whose process died under it."""
    how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
           else f"exit status {os.waitstatus_to_exitcode(status)}")
    error = ErrorInfo(type="WorkerDied", message=f"the process running the branch died ({how})",
                      kinds=("WorkerDied", "BranchError", "RunError", "TeaError", "Exception"),
                      category="worker_died")
    branch = task_from_message(decode(task.line).get("task") or {"branch_id": task.task_id, "entry": ""}, {})
    result = failed(branch, error).to_dict()
    return (json.dumps({"op": "result", "id": task.task_id, "result": result}, separators=(",", ":")) + "\n").encode()


def _child_main(inp: int, out: int, workdir: Path) -> None:
    """A child's whole life: answer messages until the parent closes the pipe."""
    # The parent's handlers (the server's SIGTERM) are not the child's business.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    status = 0
    try:
        branches = Branches(workdir)
        with os.fdopen(inp, "rb") as reader:
            for line in reader:
                reply = branches.handle(decode(line))
                if reply is not None:
                    _write_all(out, (json.dumps(reply, separators=(",", ":")) + "\n").encode())
    except BaseException:  # nothing may unwind into the parent's code after a fork
        status = 70
    os._exit(status)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
