"""One ``parallel`` process running jobs, read as each job ends.

::

    Jobs(argv, stage, name, jobs).start()  ─► parallel ... :::: NAME.inputs
                      (one line per job, "ID<TAB>task", in order: its SEQ)
      reader thread:  joblog rows read first, then stdout and stderr drained, then the
                      rows applied: GNU Parallel prints a job's output before its joblog
                      row, so a row's output is always in hand when the row is.
        stdout "SEQ<TAB>line"  ─► Job.output        (the result the server sent back)
        stderr "SEQ<TAB>line"  ─► Job.stderr        (the job's own complaints)
        joblog row SEQ         ─► Job.end(row)      (exit status, signal, login): done

A ``Job`` is waited on by the attempt that owns it (``Job.wait``). ``stop()`` ends the
process (SIGTERM twice, GNU Parallel's way, which kills the running jobs' remote
commands); jobs that never got a row end as ``never ran``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import BranchTask
from remote.gnu_parallel import JobRow, parse_joblog

__all__ = ["Job", "Jobs"]

_POLL_SECONDS = 0.02
_TAIL = 20


@dataclass(eq=False)
class Job:
    """One task attempt handed to GNU Parallel, from its input file to its end."""

    task: BranchTask
    ident: str
    """Unique in the run: names its files on the host."""
    arg: str
    """The task as JSON, or ``@`` when it travels as ``tasks/ID.json``."""
    output: bytes = b""
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL))
    row: JobRow | None = None
    never_ran: str | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def end(self, row: JobRow | None, why: str | None = None) -> None:
        if not self._done.is_set():
            self.row, self.never_ran = row, why
            self._done.set()

    def wait(self, stop: threading.Event) -> bool:
        """Until it ended (True) or ``stop`` is set (False)."""
        while not self._done.wait(_POLL_SECONDS * 5):
            if stop.is_set():
                return False
        return True


class Jobs:
    """A ``parallel`` process and the thread that reads its ends (see the module docstring)."""

    def __init__(self, argv: list[str], stage: Path, name: str, jobs: Sequence[Job],
                 on_end: Callable[[Job], None]) -> None:
        self.jobs = list(jobs)
        self.name = name
        self._stage = stage
        self._joblog = stage / f"{name}.joblog"
        (stage / f"{name}.skip").mkdir()
        (stage / f"{name}.inputs").write_text("".join(f"{j.ident}\t{j.arg}\n" for j in self.jobs), encoding="utf-8")
        self._argv = argv
        self._on_end = on_end
        self._messages: deque[str] = deque(maxlen=_TAIL)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def skip(self, job: Job) -> None:
        """Keep ``job`` from starting, if GNU Parallel has not started it yet."""
        (self._stage / f"{self.name}.skip" / str(self.jobs.index(job) + 1)).touch()

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self._argv, cwd=self._stage, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        self._thread = threading.Thread(target=self._read, name="tea-gnu-reader", daemon=True)
        self._thread.start()

    @property
    def messages(self) -> str:
        """GNU Parallel's own last words on stderr (not a job's)."""
        return "\n".join(self._messages)

    def stop(self) -> None:
        """End the process (its running jobs with it) and wait for the reader."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            for _ in range(2):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                time.sleep(0.2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        pipes = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        selector = selectors.DefaultSelector()
        for fd in pipes:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        offset, partial = 0, ""
        try:
            while True:
                ended = proc.poll() is not None
                text, offset = _read_from(self._joblog, offset)
                complete, partial = _split_complete(partial + text)
                open_pipes = self._drain(pipes, proc.stdout.fileno())
                for row in parse_joblog(complete):
                    if 0 < row.seq <= len(self.jobs):
                        self._ended(self.jobs[row.seq - 1], row)
                if ended and not open_pipes:
                    break
                selector.select(_POLL_SECONDS)
        finally:
            selector.close()
            proc.stdout.close()
            proc.stderr.close()
            for job in self.jobs:
                self._ended(job, None, "GNU Parallel ended before the job did")

    def _ended(self, job: Job, row: JobRow | None, why: str | None = None) -> None:
        if not job.done:
            job.end(row, why)
            self._on_end(job)

    def _drain(self, pipes: dict[int, bytearray], stdout: int) -> bool:
        """Read what the pipes hold now; whether any is still open."""
        still_open = False
        for fd, buffer in pipes.items():
            while True:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    still_open = True
                    break
                if not data:
                    break
                buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                self._line(line, fd == stdout)
        return still_open

    def _line(self, line: bytes, stdout: bool) -> None:
        seq, tab, rest = line.partition(b"\t")
        job = self.jobs[int(seq) - 1] if tab and seq.isdigit() and 0 < int(seq) <= len(self.jobs) else None
        if job is None:
            if not stdout:
                self._messages.append(line.decode(errors="replace"))
        elif stdout:
            job.output += rest
        else:
            job.stderr.append(rest.decode(errors="replace"))


def _read_from(path: Path, offset: int) -> tuple[str, int]:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


def _split_complete(text: str) -> tuple[str, str]:
    """``text`` cut after its last newline: (complete lines, the rest)."""
    end = text.rfind("\n")
    return (text[: end + 1], text[end + 1 :]) if end >= 0 else ("", text)
