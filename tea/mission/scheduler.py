"""The mission loop: each step runs as a branch of the chosen strategy as soon as its dependencies are done.

::

    ready heap (highest rank first: the longest chain to the end starts first)
      │ up to max_concurrent_steps running
      ▼
    _start_ready: render each step's templates, group by (timeout, retries) ─► one
      executor.run(program, tasks, config, cancel) per group, consumed by a feeder thread
                                                   │ results as steps finish
    _finished ◄── queue ◄──────────────────────────┘
      success ─► dependents whose every dependency is done become ready
      failure ─► dependents skipped (unless continue_on_error); fail_fast: nothing new starts

Several batches run at once, so a step never waits for the rest of a "level":
it starts when its own dependencies finish. Retries (a fixed delay), the step's
timeout and the run's cancel event are the executor's (``executors.resilience``),
the same for every strategy. The loop itself is single-threaded: only it
touches the records; feeders only put results on the queue.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from executors.base import BranchResult, BranchTask, ErrorInfo, ParallelConfig, ParallelExecutor, RetryPolicy
from tea.mission.model import Mission, Step
from tea.mission.program import MissionProgram, TemplateError, Variables, step_task
from tea.mission.result import MissionProgress, MissionResult, StepResult, utc_now
from tea.mission.resume import Checkpointer
from tea.secrets import Secrets
from tea.signals import StopFlag

__all__ = ["BACKSTOP_SECONDS", "MISSION_GRACE_SECONDS", "Scheduler"]

BACKSTOP_SECONDS = 1.0
"""How long after its own ``timeout_seconds`` the executor stops a step that did not stop itself."""
MISSION_GRACE_SECONDS = 2.0
"""How long after the mission's deadline running steps get to stop themselves before they are cancelled."""
_STOP_POLL_SECONDS = 0.1


class Scheduler:
    """One run of one mission. Not reusable; ``run`` is called once, from one thread."""

    def __init__(
        self, mission: Mission, executor: ParallelExecutor, *, program: MissionProgram, variables: Variables,
        secrets: Secrets, stop_flag: StopFlag | None = None, done: Mapping[str, StepResult] | None = None,
        progress: MissionProgress | None = None, checkpointer: Checkpointer | None = None,
    ) -> None:
        self.mission = mission
        self.executor = executor
        self.program = program
        self.variables = variables
        self.secrets = secrets
        self.stop_flag = stop_flag
        self.progress = progress or MissionProgress(len(mission.steps))
        self.checkpointer = checkpointer
        self.results: dict[str, StepResult] = dict(done or {})
        self.outputs: dict[str, Mapping[str, Any]] = {k: r.output for k, r in self.results.items()}
        self.waiting: dict[str, int] = {}
        self.ready: list[tuple[int, int, str]] = []
        self.running: dict[str, str] = {}
        """Step id → when it started (ISO 8601)."""
        self.done: queue.SimpleQueue[BranchResult] = queue.SimpleQueue()
        self.cancel = threading.Event()
        self.halt: str | None = None
        self.failure: str | None = None
        self.signum: int | None = None
        self.deadline: float | None = None
        self.deadline_epoch: float | None = None
        self.timed_out = False
        self.succeeded = len(self.results)
        self.shared: dict[str, Any] = {}
        self.feeders = ThreadPoolExecutor(max_workers=mission.max_concurrent, thread_name_prefix="tea-mission")

    # The loop: a step starts when every step it depends on is done (succeeded, or failed
    # with continue_on_error) and a slot is free; a step whose dependency failed (without
    # continue_on_error) or was skipped is skipped at once. After a failure with fail_fast,
    # a stop, or the mission's timeout, nothing new starts; what never started is skipped.
    def run(self) -> MissionResult:
        """Run the mission to its end and report it."""
        started, timestamp = time.monotonic(), utc_now()
        timeout = self.mission.config.timeout_seconds
        if timeout is not None:
            self.deadline, self.deadline_epoch = started + timeout, time.time() + timeout
        try:
            self._seed()
            self._start_ready()
            while self.running:
                for result in self._wait():
                    self._finished(result)
                self._check_limits()
                self._start_ready()
                if self.checkpointer is not None:
                    self.checkpointer.progress(self.results, self.succeeded)
        finally:
            self.cancel.set()
            self.feeders.shutdown(wait=False)
            self.progress.close()
        self._skip_the_rest()
        return self._report(timestamp, (time.monotonic() - started) * 1000.0)

    def _seed(self) -> None:
        for step in self.mission.steps:
            if step.id in self.results:
                continue
            self.waiting[step.id] = sum(1 for d in step.depends_on if d not in self.results)
            if self.waiting[step.id] == 0:
                self._push(step.id)

    def _push(self, step_id: str) -> None:
        heapq.heappush(self.ready, (-self.mission.plan.rank[step_id], self.mission.by_id[step_id].index, step_id))

    def _start_ready(self) -> None:
        """Start ready steps while slots are free, one executor batch per kind of step."""
        batches: dict[tuple[float | None, int, float], list[BranchTask]] = {}
        limit = self.mission.max_concurrent
        while self.ready and self.halt is None and len(self.running) < limit:
            step_id = heapq.heappop(self.ready)[2]
            if step_id in self.results:
                continue
            step = self.mission.by_id[step_id]
            try:
                params = self.variables.render(step, self.outputs, self.results)
            except TemplateError as exc:
                self._record_failure(step, f"step '{step.id}' ({step.step_type}): {exc}", {}, utc_now(), 0, 0.0)
                continue
            task = step_task(step.id, step.index, self.shared, params, step.timeout_seconds, self.deadline_epoch)
            batches.setdefault(self._kind(step), []).append(task)
            self.running[step.id] = utc_now()
        for kind, tasks in batches.items():
            self.progress.started(len(tasks))
            self.feeders.submit(self._feed, tasks, self._config(kind, len(tasks)))

    def _kind(self, step: Step) -> tuple[float | None, int, float]:
        config = self.mission.config
        attempts = step.retry_attempts if step.retry_attempts is not None else config.retry_attempts
        delay = step.retry_delay_ms if step.retry_delay_ms is not None else config.retry_delay_ms
        return step.timeout_seconds, attempts, float(delay)

    def _config(self, kind: tuple[float | None, int, float], size: int) -> ParallelConfig:
        timeout, attempts, delay = kind
        retry = RetryPolicy(max_attempts=attempts + 1, backoff_base_ms=delay, backoff_max_ms=delay,
                            jitter=False, backoff_multiplier=1.0)
        return ParallelConfig(
            strategy=self.mission.strategy, max_workers=size,
            timeout_seconds=timeout + BACKSTOP_SECONDS if timeout is not None else None,
            retry=retry, options=self.mission.options,
        )

    def _feed(self, tasks: list[BranchTask], config: ParallelConfig) -> None:
        """Run one batch on the executor and queue its results (a feeder thread)."""
        seen: set[str] = set()
        try:
            for result in self.executor.run(self.program, tasks, config, self.cancel):
                seen.add(result.branch_id)
                self.done.put(result)
        except Exception as exc:  # the backend refused the batch or broke: every step left fails
            info = ErrorInfo.from_exception(exc)
            for task in tasks:
                if task.branch_id not in seen:
                    self.done.put(BranchResult(task.branch_id, False, {}, info, index=task.index))

    def _wait(self) -> Iterator[BranchResult]:
        """The results that arrived: at least one, unless the deadline or a stop comes first."""
        timeout = None
        if self.deadline is not None:
            end = self.deadline + (MISSION_GRACE_SECONDS if self.timed_out else 0.0)
            # Past the grace, cancelled steps are coming back: wait for them without spinning.
            timeout = max(_STOP_POLL_SECONDS if self.cancel.is_set() else 0.0, end - time.monotonic())
        for limit in (_STOP_POLL_SECONDS if self.stop_flag is not None else None, self._save_due()):
            if limit is not None:
                timeout = limit if timeout is None else min(timeout, limit)
        try:
            yield self.done.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            try:
                yield self.done.get_nowait()
            except queue.Empty:
                return

    def _save_due(self) -> float | None:
        if self.checkpointer is None:
            return None
        return self.checkpointer.due_in(self.succeeded)

    def _check_limits(self) -> None:
        if self.stop_flag is not None and self.stop_flag.requested is not None and self.signum is None:
            self.signum = self.stop_flag.requested
            self.halt = f"stopped by signal {self.signum}"
            self.cancel.set()
        if self.deadline is None:
            return
        now = time.monotonic()
        if now >= self.deadline and not self.timed_out:
            self._time_out()
        if self.timed_out and now >= self.deadline + MISSION_GRACE_SECONDS:
            self.cancel.set()

    def _time_out(self) -> None:
        self.timed_out = True
        self.halt = self.halt or f"the mission timed out after {self.mission.config.timeout_seconds:g}s"

    def _finished(self, result: BranchResult) -> None:
        step = self.mission.by_id[result.branch_id]
        started = self.running.pop(step.id)
        if result.success:
            output = result.update.get("output") or {}
            self._record(step, "success", output, None, started, result)
            self.outputs[step.id] = output
            self.succeeded += 1
            self._release(step.id)
            return
        error = result.error or ErrorInfo("Error", "the step failed")
        message = self._message(step, error)
        if error.category == "cancelled":
            if self.halt is None and self.deadline is not None:
                # Nothing else cancels a step before the run halts: it saw the mission's
                # deadline (its clock) a moment before this loop did.
                self._time_out()
            if self.halt is not None:  # the run's own reason says more than the executor's
                reason = self.halt if self.signum is not None else f"stopped: {self.halt}"
                message = f"step '{step.id}' ({step.step_type}): {reason}"
            self._record(step, "skipped", {}, message, started, result)
            self._skip_dependents(step.id, "was stopped")
            return
        output = {"exit_code": error.exit_status, "stderr": error.stderr_tail} if error.exit_status is not None else {}
        self._record_failure(step, message, output, started, result.attempts, result.duration_ms)

    def _record_failure(self, step: Step, message: str, output: Mapping[str, Any], started: str,
                        attempts: int, duration_ms: float) -> None:
        self.results[step.id] = StepResult(step.id, step.step_type, "failed", self.secrets.redact(dict(output)),
                                           message, round(duration_ms, 3), started, utc_now(), attempts)
        self.progress.finished("failed", was_running=attempts > 0)
        if step.continue_on_error:
            self.outputs[step.id] = output
            self._release(step.id)
            return
        self.failure = self.failure or message
        self._skip_dependents(step.id, "failed")
        if self.mission.config.fail_fast and self.halt is None:
            self.halt = f"step '{step.id}' failed and fail_fast is on"

    def _message(self, step: Step, error: ErrorInfo) -> str:
        text = error.message if error.message.startswith("step '") else (
            f"step '{step.id}' ({step.step_type}): {error.message}")
        if error.stderr_tail:
            text += "\nstderr (last lines):\n" + error.stderr_tail
        return self.secrets.redact_text(text)

    def _record(self, step: Step, status: str, output: Mapping[str, Any], error: str | None, started: str,
                result: BranchResult) -> None:
        self.results[step.id] = StepResult(step.id, step.step_type, status, self.secrets.redact(dict(output)),
                                           error, round(result.duration_ms, 3), started, utc_now(), result.attempts)
        self.progress.finished(status)

    def _release(self, step_id: str) -> None:
        for dependent in self.mission.plan.dependents[step_id]:
            if dependent in self.results:
                continue
            self.waiting[dependent] -= 1
            if self.waiting[dependent] == 0:
                self._push(dependent)

    def _skip_dependents(self, step_id: str, how: str) -> None:
        """Skip every step that depends on ``step_id``, directly or not."""
        stack = [(step_id, how)]
        while stack:
            source, what = stack.pop()
            for dependent in self.mission.plan.dependents[source]:
                if dependent in self.results:
                    continue
                step = self.mission.by_id[dependent]
                reason = f"skipped: dependency '{source}' {what}"
                self.results[dependent] = StepResult(dependent, step.step_type, "skipped", {}, reason)
                self.progress.finished("skipped", was_running=False)
                stack.append((dependent, "was skipped"))

    def _skip_the_rest(self) -> None:
        reason = f"skipped: not started ({self.halt})" if self.halt else "skipped: not started"
        for step in self.mission.steps:
            if step.id not in self.results:
                self.results[step.id] = StepResult(step.id, step.step_type, "skipped", {}, reason)

    def _report(self, timestamp: str, duration_ms: float) -> MissionResult:
        ordered = {s.id: self.results[s.id] for s in self.mission.steps}
        failed = any(r.status == "skipped" or (r.status == "failed" and not self.mission.by_id[k].continue_on_error)
                     for k, r in ordered.items())
        if self.signum is not None:
            status, error = "cancelled", self.halt
        elif self.timed_out or failed:
            status = "failed"
            error = self.halt if self.timed_out else self.failure or self.halt
        else:
            status, error = "completed", None
        path = None
        if self.checkpointer is not None:
            if status == "completed":
                self.checkpointer.discard()
            else:
                path = self.checkpointer.save(ordered, reason="signal" if self.signum else "error", error=error)
        return MissionResult(self.mission.name, status, ordered, duration_ms, timestamp, error, path, self.signum)
