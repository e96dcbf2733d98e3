"""The worker processes of the ``process`` strategy, as the driver sees them.

``WorkerPool`` keeps ``WorkerProcess``es for the executor's life. Each is one
``multiprocessing.Process`` with its own pipe and its own output file, and the
driver's record of what that worker holds (programs, shared states)::

    WorkerProcess ── pipe: requests and replies (see executors._worker) ── worker process
                  ◄─ output file: fds 1 and 2 of the worker, read and emptied by the driver
                     after each branch; the end of it goes into the error of a branch that
                     failed

The output file (called the stderr file below: it holds both streams) is an unlinked
temporary file, so nothing is left behind, and a worker's output never reaches tea's
stdout, which carries the run's data (see ``executors.process`` for where it goes).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import tempfile
import threading
from collections import OrderedDict
from multiprocessing.context import BaseContext

from executors import _worker
from executors._sync import kill_tree
from tea.errors import WorkerDied

__all__ = ["MAIN_GUARD_HINT", "WorkerPool", "WorkerProcess", "log", "log_stderr"]

log = logging.getLogger("tea.process")

MAIN_GUARD_HINT = (
    "see the worker's traceback on stderr; a script that runs the process strategy must "
    "guard its entry point with if __name__ == '__main__':"
)
_REAP_SECONDS = 5.0
_BOOT_SECONDS = 60.0
# How much of a worker's stderr an error keeps: a faulthandler dump of a usual stack
# fits, a branch that printed megabytes does not fill the error.
_TAIL_BYTES = 8192
_TAIL_LINES = 50


class WorkerProcess:
    """One worker process, the driver's end of its pipe, the file its stderr goes to, and
    what it holds. Used by one driver thread at a time (the pool hands it out)."""

    def __init__(self, context: BaseContext) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.stderr = _stderr_file()
        try:
            self.process = context.Process(  # type: ignore[attr-defined]
                target=_worker.serve,
                args=(child, _worker.InheritedFd(self.stderr)),
                name="tea-process-worker",
                daemon=True,
            )
            self.process.start()
        except BaseException:
            self.conn.close()
            os.close(self.stderr)
            raise
        finally:
            child.close()
        self.pid: int = self.process.pid
        # One poll object each, made once: multiprocessing's own wait() builds a selector
        # per call, which cost more than the rest of a small branch's round trip.
        self._exited = select.poll()
        self._exited.register(self.process.sentinel, select.POLLIN)
        self._replied = select.poll()
        self._replied.register(self.conn.fileno(), select.POLLIN)
        self.programs: set[str] = set()
        self.shared: OrderedDict[str, None] = OrderedDict()
        """The shared-state keys the worker holds, in its own order (least recent first)."""
        self.ready = False
        self.boot_timed_out = False
        self.last_words = ""
        """The end of the worker's stderr since its last branch, read once it is reaped."""
        # close() may reap a worker while its driver thread drains it: the descriptor
        # must not be read (or truncated!) after it is closed and its number reused.
        self._stderr_lock = threading.Lock()

    def wait_ready(self) -> bool:
        """Wait for the worker's "ready" (sent once it has booted); False if it died first."""
        if not self.ready:
            try:
                if self.conn.poll(_BOOT_SECONDS):
                    self.conn.recv_bytes()
                    self.ready = True
                else:
                    self.boot_timed_out = True
            except (EOFError, OSError):
                pass
        return self.ready

    def holds(self, held: tuple[str | None, str | None]) -> None:
        """Note what a reply says the worker now holds, mirroring its shared-state cache."""
        program, shared = held
        if program is not None:
            self.programs.add(program)
        if shared is not None:
            self.shared[shared] = None
            self.shared.move_to_end(shared)
            while len(self.shared) > _worker.SHARED_CACHE:
                self.shared.popitem(last=False)

    def alive(self) -> bool:
        """Whether the process is still running (it has not exited or been killed)."""
        return not self._exited.poll(0)

    def wait_reply(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the reply (or EOF) to be readable; ``None``
        means no wait here: the read that follows blocks until one or the other."""
        return timeout is None or bool(self._replied.poll(max(0, int(timeout * 1000) + 1)))

    def kill(self) -> None:
        """Kill the worker, its process group and every process it started (``kill_tree``).

        Not once it has exited: it may have been reaped, and its pid given to another.
        """
        if self.alive():
            kill_tree([self.pid])

    def drain_stderr(self) -> str:
        """The last lines the worker wrote to stderr since the last drain ("" if none).

        Empties the file: it is opened in append mode, so the worker's next write
        starts at its beginning again. Call it only while the worker is idle or gone.
        """
        with self._stderr_lock:
            return _read_tail(self.stderr) if self.stderr >= 0 else ""

    def reap(self) -> None:
        """Close the pipe and wait for the process to be gone (killing it if it lingers);
        then keep the end of its stderr in ``last_words``."""
        self.conn.close()
        self.process.join(_REAP_SECONDS)
        if self.process.exitcode is None:
            self.kill()
            self.process.join(_REAP_SECONDS)
        with self._stderr_lock:
            if self.stderr >= 0:
                self.last_words = _read_tail(self.stderr)
                os.close(self.stderr)
                self.stderr = -1

    def death(self, branch_id: str) -> WorkerDied:
        """Why this (reaped) worker stopped answering, naming the branch it was running."""
        code = self.process.exitcode
        note = None
        if self.boot_timed_out:
            how, status = f"did not start within {_BOOT_SECONDS:g}s", None
        elif code is not None and code < 0:
            how, status = f"killed by signal {_signal_name(-code)}", 128 - code
            if -code == signal.SIGKILL:
                note = "SIGKILL often means the out-of-memory killer; check memory limits"
        else:
            how, status = f"exit code {code}", code
        if not self.ready:
            note = MAIN_GUARD_HINT
        when = "running the branch" if self.ready else "starting"
        # The note is part of the message too: fan-in code and stream events see
        # only ErrorInfo's message, not the exception's hint.
        message = f"worker process {self.pid} died while {when} ({how})"
        return WorkerDied(
            f"{message}; {note}" if note else message,
            branch=branch_id,
            exit_status=status,
            stderr_tail=self.last_words or None,
        )


class WorkerPool:
    """Workers kept for the executor's life. Thread-safe."""

    def __init__(self, context: BaseContext) -> None:
        self._context = context
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._lock = threading.Lock()
        self._closed = False

    def warm(self, count: int) -> None:
        """Start workers until ``count`` exist; they boot concurrently. Best effort: a
        worker that cannot start is reported by ``acquire``, for the branch that needs it."""
        with self._lock:
            missing = 0 if self._closed else count - len(self._idle) - len(self._busy)
            try:
                for _ in range(missing):
                    self._idle.append(WorkerProcess(self._context))
            except Exception:  # acquire() meets the same failure and reports it for a branch
                pass

    def acquire(self, program: str, shared: str) -> WorkerProcess:
        """An idle live worker, preferring one that already holds ``program`` and the
        ``shared`` state, then one that holds the program; else a new one."""
        dead: list[WorkerProcess] = []
        with self._lock:
            while True:
                with_program = [w for w in self._idle if program in w.programs]
                ready = [w for w in with_program if shared in w.shared] or with_program
                if not (ready or self._idle):
                    worker = WorkerProcess(self._context)
                    break
                worker = (ready or self._idle)[-1]
                self._idle.remove(worker)
                if worker.alive():
                    break
                dead.append(worker)
            self._busy.add(worker)
        for worker_gone in dead:
            worker_gone.reap()
            log_stderr(worker_gone, "an idle worker that died")
        return worker

    def release(self, worker: WorkerProcess) -> None:
        with self._lock:
            self._busy.discard(worker)
            self._idle.append(worker)

    def discard(self, worker: WorkerProcess) -> None:
        """Kill and reap ``worker``; the next ``acquire`` starts a fresh one in its place."""
        worker.kill()
        worker.reap()
        with self._lock:
            self._busy.discard(worker)

    def close(self) -> None:
        """Idle workers exit when their pipe closes; busy ones are killed."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy, self._busy = list(self._busy), set()
        kill_tree(worker.pid for worker in busy if worker.alive())
        for worker in idle + busy:
            worker.reap()
            log_stderr(worker, "a worker stopped at the end of the run")


def _stderr_file() -> int:
    """A new, already unlinked temporary file (read-write, append) for a worker's stderr.

    A file, not a pipe: a pipe would need a reader thread per worker, or a branch
    writing more than the pipe's buffer would block forever.
    """
    fd, path = tempfile.mkstemp(prefix="tea-worker-", suffix=".stderr")
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND)
    finally:
        os.close(fd)
        os.unlink(path)


def _read_tail(fd: int) -> str:
    """The last lines of the file ``fd`` ("" if empty), and empty it."""
    size = os.fstat(fd).st_size
    if not size:
        return ""
    start = max(0, size - _TAIL_BYTES)
    lines = os.pread(fd, size - start, start).decode("utf-8", "replace").splitlines()
    os.ftruncate(fd, 0)
    if start:
        lines = lines[1:]  # cut in the middle
    if start or len(lines) > _TAIL_LINES:
        lines = ["[...]", *lines[-_TAIL_LINES:]]
    return "\n".join(lines).strip("\n")


def log_stderr(worker: WorkerProcess, what: str) -> None:
    """Worker stderr that belongs to no error is logged at DEBUG, not dropped."""
    if worker.last_words:
        log.debug("stderr of worker process %d (%s):\n%s", worker.pid, what, worker.last_words)
        worker.last_words = ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
