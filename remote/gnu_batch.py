"""One fan-out on the GNU Parallel transport, as the shared ``BatchRunner`` drives it.

::

    GnuBatch(run, batch, config, cap)     a job per branch that can travel (its task as
                                          JSON, or @ when too large for a command line:
                                          ``big``, sent with the batch's files)
    launch()                              every first attempt to one ``parallel``, at
                                          most ``cap`` (max_workers) jobs at once
    BatchRunner ─► attempt(ctx)           takes the branch's first job (a retry gets one
                                          of its own), waits for its end:
        a result line          ─► the branch's result (host from the joblog)
        killed at --timeout    ─► BranchTimeout
        skipped (its breaker opened), or its host lost (ssh failed, no server there)
                               ─► a new job on the other hosts, no retry used
        anything else          ─► WorkerDied with the job's stderr
    finished(result, open)                targets whose breaker opened: their branches
                                          not yet started are skipped (never run)
    close()                               what still runs is stopped

The timeout is GNU Parallel's ``--timeout``: it counts from when the job starts on a
host, as the ssh transport's counts from when the branch reaches a worker.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from executors.base import BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import AttemptContext
from executors.results import error_info, failed, with_stderr
from remote.errors import AllHostsDown
from remote.gnu_jobs import Job, Jobs
from remote.gnu_parallel import INLINE_LIMIT, SKIPPED, jobs_command
from remote.gnu_transport import GnuRun
from remote.payload import Batch, task_message
from tea.errors import BranchError, BranchTimeout, SerializationError, WorkerDied

__all__ = ["GnuBatch"]

_SSH_FAILED = 255
_NO_SERVER = 75


class GnuBatch:
    """The jobs of one ``run`` call on a ``GnuRun``. Thread-safe."""

    def __init__(self, run: GnuRun, batch: Batch, config: ParallelConfig, cap: int) -> None:
        self.run = run
        self.batch = batch
        self.config = config
        self.cap = cap
        self.number = next(run.counter)
        self.big: dict[str, str] = {}
        """Task files too large for a command line, by job id: sent with the batch's files."""
        self._lock = threading.Lock()
        self._made = 0
        self._hooked = False
        self._claimed: set[str] = set()
        self._processes: list[Jobs] = []
        self._main: Jobs | None = None
        self._started = 0
        self._loginfiles: list[tuple[str, int | None]] = []
        self._by_login = {run.login_key(h): h.name for h in run.hosts}
        self._first: dict[str, Job] = {}
        for task in batch.tasks:
            try:
                batch.state_of(task)
            except SerializationError:
                continue  # refused by its attempt, never sent
            self._first[task.branch_id] = self._job(task)

    def _job(self, task: BranchTask, ident: str | None = None) -> Job:
        with self._lock:
            self._made += 1
            own = f"{self.number}-{task.index}-{self._made}"
        state = self.batch.state_of(task)
        text = json.dumps({"program": self.batch.program[0], "state": state.key, "task": task_message(task)},
                          separators=(",", ":"))
        if ident is not None or len(text) > INLINE_LIMIT:
            ident = ident or own
            self.big.setdefault(ident, text)
            return Job(task, ident, "@")
        return Job(task, own, text)

    def launch(self) -> None:
        """Hand every first attempt to one ``parallel``."""
        if self._first:
            self._main = self._start(list(self._first.values()), self.cap)

    def _start(self, jobs: list[Job], cap: int | None) -> Jobs:
        with self._lock:
            name = f"run-{self.number}-{self._started}"
            self._started += 1
        loginfile = self.run.loginfile(self.run.live(), f"{name}.logins", cap)
        argv = jobs_command(loginfile, self.run.run_dir, name, self.config.timeout_seconds)
        process = Jobs(argv, self.run.stage, name, jobs, self._ended)
        with self._lock:
            self._processes.append(process)
            self._loginfiles.append((loginfile.name, cap))
        process.start()
        return process

    def _ended(self, job: Job) -> None:
        host = self.host_of(job)
        if host is not None and job.arg != "@":
            self.run.traffic.add(host, len(job.ident) + len(job.arg) + 2)

    def host_of(self, job: Job) -> str | None:
        return self._by_login.get(job.row.login) if job.row is not None else None

    def attempt(self, ctx: AttemptContext) -> BranchResult:
        """One try of ``ctx.task``: its job's end, as a result (see the module docstring)."""
        task = ctx.task
        try:
            self.batch.state_of(task)
        except SerializationError as exc:
            return failed(task, error_info(exc, traceback=False))
        self._hook(ctx)
        stop = threading.Event()
        unhook = ctx.token.on_cancel(stop.set)
        try:
            job, before = self._claim(task), None
            while True:
                if job is None:
                    if not self.run.live():
                        return failed(task, _whole_story(self._all_down(task)))
                    job = self._again(task, before)
                # A stop ends the jobs too: whichever is seen first, the branch was stopped.
                if not job.wait(stop) or stop.is_set() or ctx.batch.cancelled:
                    return ctx.stopped(host=self.host_of(job))
                result = self._outcome(job, task)
                if result is not None:
                    return result
                before, job = job, None
        finally:
            unhook()

    def _all_down(self, task: BranchTask) -> AllHostsDown:
        report = "\n".join(f"  {name}: {why}" for name, why in self.run.lost.items())
        return AllHostsDown(f"no host left to run the branch; every host is down:\n{report}", branch=task.branch_id)

    def _hook(self, ctx: AttemptContext) -> None:
        """fail_fast or a stop cancels the batch: stop every job at once (in the background:
        the thread that cancels is delivering the failure that did it)."""
        with self._lock:
            hooked, self._hooked = self._hooked, True
        if not hooked:
            ctx.batch.on_cancel(lambda: threading.Thread(target=self.close, name="tea-gnu-stop", daemon=True).start())

    def _claim(self, task: BranchTask) -> Job | None:
        """The branch's first job, unless an earlier attempt took it (``None``: make one)."""
        with self._lock:
            first = self._first.get(task.branch_id)
            fresh = first is not None and task.branch_id not in self._claimed
            self._claimed.add(task.branch_id)
        return first if fresh else None

    def _again(self, task: BranchTask, before: Job | None) -> Job:
        """A job of its own for ``task`` (a large task keeps the file sent with the batch)."""
        before = before or self._first.get(task.branch_id)
        job = self._job(task, before.ident if before is not None and before.arg == "@" else None)
        self._start([job], None)
        return job

    def _outcome(self, job: Job, task: BranchTask) -> BranchResult | None:
        """The result ``job`` ended with; ``None``: the branch must run again elsewhere."""
        host, row = self.host_of(job), job.row
        stderr = "\n".join(job.stderr)
        if job.output.strip():
            data = json.loads(job.output.strip().splitlines()[-1])
            result = BranchResult.from_dict(data)
            error = result.error
            if error is not None:
                tail = data.get("stderr_tail") or stderr
                error = with_stderr(replace(error, host=host), tail, f"the job on {host}")
            return replace(result, branch_id=task.branch_id, index=task.index, host=host, error=error,
                           attempts=task.attempt)
        if row is not None and row.exit_status == SKIPPED:
            return None  # skipped while its breaker was open: it never ran
        timeout = self.config.timeout_seconds
        exc: BranchError
        if row is not None and timeout is not None and (row.signal or row.runtime >= timeout):
            # GNU Parallel's --timeout kills the job's ssh: it ends with 255, or a signal.
            exc = BranchTimeout(f"timed out after {timeout:g}s", branch=task.branch_id, host=host)
            self.run.cancel([job.ident], [host] if host is not None else None)
        elif row is not None and host is not None and not row.signal and row.exit_status in (_SSH_FAILED, _NO_SERVER):
            self._lose(host, stderr.splitlines()[-1] if stderr else f"its job ended with {row.exit_status}")
            return None
        else:
            status = row.exit_status if row is not None else None
            how = f" (exit {status})" if status is not None else f" ({job.never_ran or 'never ran'})"
            exc = WorkerDied("the job produced no result" + how, branch=task.branch_id, host=host,
                             exit_status=status, stderr_tail=stderr or self._messages() or None)
        return failed(task, error_info(exc, traceback=False), host=host)

    def _lose(self, host: str, why: str) -> None:
        """``host`` is out for this batch: no more jobs go there."""
        self.run.lose(host, why)
        with self._lock:
            files = list(self._loginfiles)
        self.run.refresh(files)

    def _messages(self) -> str:
        with self._lock:
            return "\n".join(p.messages for p in self._processes if p.messages)

    def finished(self, open_targets: set[str]) -> None:
        """After each final result: the first jobs of targets whose breaker is open, not
        claimed by an attempt, are skipped if GNU Parallel has not started them."""
        main = self._main
        if not open_targets or main is None:
            return
        with self._lock:
            waiting = [j for b, j in self._first.items() if b not in self._claimed and not j.done]
        for job in waiting:
            if (job.task.target or job.task.branch_id) in open_targets:
                main.skip(job)

    def close(self) -> None:
        """Stop every ``parallel`` of the batch, and the branches of jobs still running."""
        with self._lock:
            processes, self._processes = list(self._processes), []
        for process in processes:
            process.stop()
        self.run.cancel([job.ident for p in processes for job in p.jobs if job.row is None])


def _whole_story(exc: BranchError) -> ErrorInfo:
    """The error with its hint in the message; the driver's traceback says nothing."""
    return replace(error_info(exc, traceback=False), message=str(exc))
