"""Small primitives shared by the backends: a cancel token, reusable daemon threads, and
the killing of a whole process tree.

Private: the backends, ``executors.resilience`` and ``tea.actions.shell`` use them;
nothing else should. The threads live as long as the process: idle ones just wait
for the next job.

Killing what a process started (``kill_tree``) takes three nets, because a program
can leave its process group (``setsid``, a daemon's double fork) and its parent can
exit, which hands the orphan to init:

- the process group: one ``killpg`` reaches whatever stayed in it;
- descendants by parent pid, read from ``/proc``: a program that left its group is
  still the child of its parent, and of a *child subreaper* (``become_subreaper``,
  Linux ``PR_SET_CHILD_SUBREAPER``) once that parent is gone;
- a mark in the environment (``MARK_VARIABLE``, the way Jenkins' ProcessTreeKiller
  finds a build's daemons): every descendant inherits it unless it clears its
  environment, wherever it was reparented.

The tree is frozen (``SIGSTOP``) parents first while it is collected, so nothing
forks or hands a pid back for reuse between the look and the kill, then killed.
Without ``/proc`` (macOS) only the group is reached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable

__all__ = [
    "MARK_VARIABLE",
    "CancelToken",
    "DaemonThreads",
    "at_hard_stop",
    "become_subreaper",
    "die_with_parent",
    "kill_descendants",
    "kill_tree",
    "reap_adopted",
    "run_hard_stop_hooks",
    "shared_threads",
]

MARK_VARIABLE = "TEA_PROCESS_MARK"
"""The environment variable ``kill_tree(mark=...)`` looks for (marks joined by ":")."""


class CancelToken:
    """A cancel flag that wakes its waiters and runs callbacks when set. Thread-safe.

    A token made with ``parent`` is cancelled when its parent is; cancelling the
    child leaves the parent alone (a timed-out attempt does not stop its batch).
    ``detach()`` unhooks a child from its parent once it is no longer needed.
    """

    def __init__(self, parent: CancelToken | None = None) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        # Keyed by the callback (a bound method equals another of the same object and
        # function), in order: a child unhooks itself in O(1), however wide its batch.
        self._callbacks: dict[Callable[[], None], None] = {}
        self._parent = parent
        if parent is not None:
            parent.on_cancel(self.cancel)

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def cancel(self) -> None:
        """Set the flag and run the callbacks (once; later calls do nothing)."""
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            callbacks, self._callbacks = list(self._callbacks), {}
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when cancelled (at once if already); returns an unhook function."""
        with self._lock:
            if not self.event.is_set():
                self._callbacks[callback] = None
                return lambda: self._discard(callback)
        callback()
        return _nothing

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when cancelled."""
        self.event.wait(seconds)

    def detach(self) -> None:
        """Stop following the parent (so a finished attempt is not kept alive by its batch)."""
        if self._parent is not None:
            self._parent._discard(self.cancel)
            self._parent = None

    def _discard(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.pop(callback, None)


def _nothing() -> None:
    return None


class DaemonThreads:
    """A cached pool of daemon threads: a job goes to an idle thread, else a new thread starts.

    Unbounded on purpose: the backends bound concurrency themselves (one driver per
    ``max_workers`` slot), and a thread left behind by a timed-out branch must not
    take a slot from the next one. Daemon, because such a thread may still be inside
    a node at interpreter exit and must not keep the process alive.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a pool thread; ``job`` must not raise."""
        with self._lock:
            self._jobs.put(job)
            if self._idle:
                self._idle -= 1
                return
            self._started += 1
            name = f"{self._prefix}-{self._started}"
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_shared: DaemonThreads | None = None
_shared_lock = threading.Lock()


def shared_threads() -> DaemonThreads:
    """The process-wide pool every backend draws its driver and branch threads from."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DaemonThreads("tea")
        return _shared


# prctl(2) options; Linux only.
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# Rounds of look-and-freeze: each round freezes what forked since the last look.
_FREEZE_ROUNDS = 20
_CHILDREN_LISTS = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
"""Whether the kernel lists each process's children (cheaper than reading all of /proc)."""
_Table = dict[int, tuple[int, int]]
"""pid → (parent pid, process group) of every process ``/proc`` shows."""


def _prctl(option: int, value: int) -> bool:
    """Call prctl(2); False where it does not exist or refuses."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux), so that a program that
    left its group and lost its parent is still found by ``kill_tree``; False elsewhere."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux);
    exits at once if the parent is already gone. False where not supported."""
    parent = os.getppid()
    if not _prctl(_PR_SET_PDEATHSIG, signum):
        return False
    if os.getppid() != parent:  # the parent died before prctl: nobody will send it
        os._exit(128 + signum)
    return True


def kill_tree(roots: Iterable[int], *, mark: str | None = None) -> None:
    """SIGKILL each process of ``roots``, its process group and all its descendants
    (see the module docstring); with ``mark``, also every process whose environment
    carries it in ``MARK_VARIABLE``. Processes already gone are skipped."""
    roots = [pid for pid in roots if pid > 0]
    if not roots or not hasattr(os, "killpg"):
        return
    for pid in roots:
        _send(pid, signal.SIGSTOP, group=True)
        _send(pid, signal.SIGSTOP)
    frozen = list(roots)
    marks: dict[int, bool] = {}
    for _ in range(_FREEZE_ROUNDS):
        if mark is None and _CHILDREN_LISTS:
            # Cheaper than reading every process: the tree's own lists of children.
            found = _descendants(frozen)
        else:
            table = _process_table()
            if table is None:
                break
            found = _members(table, frozen, mark, marks)
        if not found:
            break
        for pid in found:  # parents first: a frozen parent cannot reap a child whose pid is listed
            _send(pid, signal.SIGSTOP)
        frozen.extend(found)
    for pid in roots:
        _send(pid, signal.SIGKILL, group=True)
    for pid in frozen:
        _send(pid, signal.SIGKILL)


def kill_descendants() -> None:
    """SIGKILL every descendant of this process (see ``kill_tree``), not the process itself."""
    if _CHILDREN_LISTS:
        kill_tree(_children(os.getpid()))
    else:
        me = os.getpid()
        kill_tree(pid for pid, (parent, _) in (_process_table() or {}).items() if parent == me)


def reap_adopted() -> None:
    """Reap the exited children of this subreaper that left its process group.

    They are the orphans it adopted (nothing else waits for them, and each zombie
    keeps a pid). A program the caller started in a group of its own and never
    waited for looks the same; the caller loses only its exit status.
    """
    group = os.getpgrp()
    for pid in _children(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z" and int(fields[2]) != group:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _children(pid: int) -> list[int]:
    """The children of process ``pid`` (``/proc/<pid>/task/*/children``: Linux built
    with CONFIG_PROC_CHILDREN; [] elsewhere or once it is gone)."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as children:
                pids.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return pids


def _descendants(frozen: list[int]) -> list[int]:
    """Descendants of ``frozen`` not in it, parents first, from the children lists."""
    known = set(frozen)
    found: list[int] = []
    todo = deque(frozen)
    while todo:
        for child in _children(todo.popleft()):
            if child not in known:
                known.add(child)
                found.append(child)
                todo.append(child)
    return found


def _send(pid: int, signum: int, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _process_table() -> _Table | None:
    """Parent and group of every process, from ``/proc`` (None without it)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    table: _Table = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = text[text.rfind(b")") + 2 :].split()
        table[int(name)] = (int(fields[1]), int(fields[2]))
    return table


def _members(table: _Table, frozen: list[int], mark: str | None, marks: dict[int, bool]) -> list[int]:
    """Processes of ``table`` not in ``frozen`` that belong to its tree, parents first."""
    known = set(frozen)
    groups = set(frozen)  # a pid that leads a group gives it its number
    found: list[int] = []
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    candidates = [pid for pid, (_, group) in table.items() if group in groups]
    if mark is not None:
        candidates += [pid for pid in table if pid not in known and _marked(pid, mark, marks)]
    todo = deque([*frozen, *candidates])
    while todo:
        pid = todo.popleft()
        if pid not in known:
            known.add(pid)
            found.append(pid)
        todo.extend(child for child in children.get(pid, ()) if child not in known)
    return [pid for pid in found if pid != os.getpid()]


def _marked(pid: int, mark: str, cache: dict[int, bool]) -> bool:
    """Whether process ``pid``'s environment carries ``mark`` (read once per pid)."""
    if pid not in cache:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                data = environ.read()
        except OSError:  # another user's process, or gone
            data = b""
        cache[pid] = mark.encode() in data and f"{MARK_VARIABLE}=".encode() in data
    return cache[pid]


_HARD_STOP_HOOKS: list[Callable[[], None]] = []


def at_hard_stop(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run when the process is about to die at once (a second
    SIGTERM/SIGINT, where ``atexit`` never runs): it kills what it started. Returns it."""
    _HARD_STOP_HOOKS.append(hook)
    return hook


def run_hard_stop_hooks() -> None:
    """Run every ``at_hard_stop`` hook; one that fails does not keep the others from running."""
    for hook in list(_HARD_STOP_HOOKS):
        with contextlib.suppress(Exception):
            hook()
