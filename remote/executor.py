"""``RemoteExecutor``: the ``remote`` strategy on top of hosts, sessions and the worker.

::

    load:  RemoteExecutor.parse_options(settings.parallel.remote) ─► RemoteSettings
           (ParallelConfig.options; a missing host list is a SchemaError, at load)
    run start: preflight(configs) ─► every host connected and prepared at once; none
           usable: AllHostsDown before the first node; some: a WARNING each, the run goes on
    run(program, tasks, config)
      ├─ Batch.prepare: program payload (YAML subset, or cloudpickle), each distinct
      │  shared state encoded once, tasks whose state JSON cannot carry refused
      └─ BatchRunner (retries, per-target breakers, timeouts, fail_fast, max_workers),
         with one attempt function per transport:
           ssh           event-loop thread: remote.cluster.Cluster.run(task); a timeout
                         or cancel kills the worker running the branch, a fresh one takes over
           gnu_parallel  remote.gnu_batch.GnuBatch.attempt: the branch's GNU Parallel job

The timeout counts while the branch is on a host, from each time it is sent. The
executor lives for a whole run: connections, workdirs, shipped binaries and shared
states are reused by every fan-out; ``close()`` kills the workers and cleans the
hosts. ``traffic()`` tells the bytes each host was sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from executors.backend import BaseExecutor
from executors.base import (
    BranchProgram,
    BranchResult,
    BranchStarted,
    BranchTask,
    ErrorInfo,
    Locate,
    ParallelConfig,
)
from executors.resilience import Attempt, AttemptContext
from executors.results import error_info, failed, with_stderr
from remote.config import RemoteSettings, no_location
from remote.errors import AllHostsDown, RemoteSetupError
from remote.payload import Batch, Traffic, program_payload, task_message
from tea.errors import BranchError, SerializationError

if TYPE_CHECKING:
    from remote.cluster import Cluster, RemoteAttempt
    from remote.gnu_batch import GnuBatch
    from remote.gnu_transport import GnuRun

__all__ = ["RemoteExecutor"]


class _LoopThread:
    """An asyncio loop on a daemon thread, for the executor's whole life."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tea-remote-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is still pending (readers of dead hosts), then stop the loop."""
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.call(_cancel_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class RemoteExecutor(BaseExecutor):
    """Runs branches on SSH hosts. One per run; thread-safe; ``close()`` is idempotent.

    Concurrency is the sum of the hosts' slots (capped by ``max_workers``). Each
    attempt of a branch may move between hosts when one is lost; a branch error
    comes back as a failed result and is retried (preferably elsewhere) under the
    fan-out's retry policy.
    """

    strategy = "remote"

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None, locate: Locate = no_location) -> RemoteSettings:
        """``settings.parallel.remote`` (merged with a fan-out's override) as the typed
        record ``run`` expects in ``ParallelConfig.options``; raises ``SchemaError``."""
        return RemoteSettings.parse(raw, locate)

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._loop: _LoopThread | None = None
        self._clusters: dict[RemoteSettings, Cluster] = {}
        self._gnu: dict[RemoteSettings, GnuRun] = {}
        self._avoid: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._traffic = Traffic()
        self._payloads: dict[tuple[Any, ...], tuple[BranchProgram, tuple[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def traffic(self) -> dict[str, int]:
        """Bytes sent to each host so far for branches (programs, shared states, tasks),
        counted by the transport; the tea binary is not included."""
        return self._traffic.snapshot()

    def preflight(self, configs: Iterable[ParallelConfig]) -> None:
        """Check the hosts of every remote ``configs`` before the run's first node: each
        host is connected and prepared at once (the connections stay for the run), and
        this returns when each is ready or known to be unusable. Raises ``AllHostsDown``
        when no host of some settings can be used, and ``RemoteSetupError`` for a problem
        the fan-out would stop at (a missing file, an untrusted host key, a failed login,
        no binary for a host's architecture); an unreachable host among usable ones is
        a WARNING (logger ``tea.remote``), and the run goes on."""
        self._check_open()
        seen: set[RemoteSettings] = set()
        for config in configs:
            settings = _settings(config)
            if settings in seen:
                continue
            seen.add(settings)
            if settings.transport == "gnu_parallel":
                self._gnu_run(settings).preflight()
                continue
            cluster = self._cluster(settings, config)
            assert self._loop is not None
            outcomes: dict[str, BaseException | None] = self._loop.call(cluster.preflight())
            fatal = next((e for e in outcomes.values() if isinstance(e, RemoteSetupError)), None)
            if fatal is not None:
                raise fatal
            if all(e is not None for e in outcomes.values()):
                raise AllHostsDown(f"no host can be used:\n{cluster.pool.down_report()}")

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Start the batch and yield results as branches finish (see ``ParallelExecutor``)."""
        self._check_open()
        settings = _settings(config)
        if settings.transport != "gnu_parallel":
            return super().run(program, tasks, config, cancel, on_start)
        if not tasks:
            return iter([])
        # The GNU Parallel transport's modules (tarfile and more) only when it is used.
        from remote.gnu_batch import GnuBatch

        gnu = self._gnu_run(settings)
        batch = Batch.prepare(self._program_payload(program, tasks), tasks)
        workers = self._workers(config)
        jobs = GnuBatch(gnu, batch, config, workers)
        try:
            gnu.prepare(batch, jobs.big)
        except (AllHostsDown, RemoteSetupError) as exc:
            return iter([failed(t, _whole_story(exc), host=exc.host) for t in tasks])
        jobs.launch()
        return self._gnu_results(jobs, tasks, config, workers, cancel, on_start)

    def _gnu_results(self, jobs: GnuBatch, tasks: Sequence[BranchTask], config: ParallelConfig, workers: int,
                     cancel: threading.Event | None, on_start: BranchStarted | None) -> Iterator[BranchResult]:
        try:
            for result in self._runner.run(tasks, config, jobs.attempt, workers=workers, cancel=cancel,
                                           on_start=on_start):
                jobs.finished({name for name, state in self._runner.breakers.states().items() if state == "open"})
                yield result
        finally:
            jobs.close()

    def _workers(self, config: ParallelConfig) -> int:
        slots = sum(host.slots for host in _settings(config).hosts)
        return min(config.max_workers or self._max_workers or slots, slots)

    def _prepare(
        self, program: BranchProgram, tasks: Sequence[BranchTask], config: ParallelConfig, workers: int
    ) -> Attempt:
        """The ``ssh`` transport's attempt: its hosts (connected lazily) and the batch."""
        cluster = self._cluster(_settings(config), config)
        return partial(self._attempt, cluster, Batch.prepare(self._program_payload(program, tasks), tasks))

    def _program_payload(self, program: BranchProgram, tasks: Sequence[BranchTask]) -> tuple[str, dict[str, Any]]:
        """``program_payload``, cut once per program and branch shape for the run (a fan-out
        in a loop runs the same branches again and again)."""
        shape = (
            id(program),
            frozenset(t.entry for t in tasks),
            frozenset(t.exit for t in tasks),
            frozenset(t.fanout for t in tasks),
        )
        with self._lock:
            cached = self._payloads.get(shape)
        if cached is not None and cached[0] is program:
            return cached[1]
        payload = program_payload(program, tasks)
        with self._lock:
            # The program is kept with its payload, so its id cannot name another one.
            self._payloads[shape] = (program, payload)
        return payload

    def _cluster(self, settings: RemoteSettings, config: ParallelConfig) -> Cluster:
        # asyncssh (300 ms to import) only once hosts are needed: loading a workflow that
        # uses this strategy (parse_options) never pays for it.
        from remote.cluster import Cluster

        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            if settings not in self._clusters:
                made = _in_loop(partial(Cluster, settings, config, self._warned, self._traffic))
                self._clusters[settings] = self._loop.call(made)
            return self._clusters[settings]

    def _gnu_run(self, settings: RemoteSettings) -> GnuRun:
        from remote.gnu_transport import GnuRun  # only when the transport is used (see run)

        with self._lock:
            if settings not in self._gnu:
                self._gnu[settings] = GnuRun(settings, self._warned, self._traffic)
            return self._gnu[settings]

    def _attempt(self, cluster: Cluster, batch: Batch, ctx: AttemptContext) -> BranchResult:
        task = ctx.task
        try:
            state = batch.state_of(task)
        except SerializationError as exc:
            return failed(task, error_info(exc, traceback=False))
        if cluster.fatal is not None:
            return failed(task, _whole_story(cluster.fatal))
        avoid = self._avoid.get(task.branch_id, set())
        attempt, future = cluster.start(
            batch.program, state, task_message(task), set(avoid), lambda host: ctx.started(host=host)
        )
        unhook = ctx.token.on_cancel(partial(_abandon, attempt, future))
        try:
            if not attempt.wait(ctx.timeout_seconds):
                _abandon(attempt, future)  # its coroutine kills the worker running it
            data, host = future.result()
        except concurrent.futures.CancelledError:
            if attempt.host is not None:
                self._avoid_later(task, attempt.host)  # a retry after a timeout prefers another host
            return _stopped(ctx, attempt.host)
        except (AllHostsDown, RemoteSetupError) as exc:
            return failed(task, _whole_story(exc), host=exc.host)
        finally:
            unhook()
        result = BranchResult.from_dict(data)
        error = result.error
        if error is not None:
            self._avoid_later(task, host)  # a retry of this branch prefers another host
            error = with_stderr(replace(error, host=host), data.get("stderr_tail") or "", f"the worker on {host}")
        return replace(result, host=host, error=error, attempts=task.attempt)

    def _avoid_later(self, task: BranchTask, host: str) -> None:
        """Make the next attempts of ``task`` prefer hosts other than ``host`` (kept only for
        branches that failed somewhere: a wide fan-out keeps nothing per branch)."""
        with self._lock:
            self._avoid.setdefault(task.branch_id, set()).add(host)

    def close(self) -> None:
        """Kill the workers (and all they started), clean the hosts (unless ``cleanup:
        false``), close connections. Idempotent."""
        if self._closed:
            return
        super().close()
        for gnu in self._gnu.values():
            gnu.close()
        self._gnu.clear()
        if self._loop is None:
            return
        for cluster in self._clusters.values():
            try:
                self._loop.call(cluster.close(), timeout=60)
            except (concurrent.futures.TimeoutError, OSError):
                continue
        self._clusters.clear()
        self._loop.stop()
        self._loop = None


def _settings(config: ParallelConfig) -> RemoteSettings:
    if isinstance(config.options, RemoteSettings):
        return config.options
    raise RemoteSetupError(
        "the remote strategy was given no parsed settings (ParallelConfig.options)",
        hint="load the workflow with tea.load, or pass options=RemoteExecutor.parse_options(...)",
    )


def _abandon(attempt: RemoteAttempt, future: concurrent.futures.Future[Any]) -> None:
    attempt.abandoned = True
    future.cancel()


def _stopped(ctx: AttemptContext, host: str | None) -> BranchResult:
    """``BranchTimeout`` or ``Cancelled``, naming the host it was stopped on."""
    result = ctx.stopped(host=host)
    if result.error is None:
        return result
    return replace(result, error=replace(result.error, host=host))


def _whole_story(exc: BranchError) -> ErrorInfo:
    """The error with its hint and stderr in the message; the driver's traceback says nothing."""
    return replace(error_info(exc, traceback=False), message=str(exc))


async def _cancel_all() -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    # A transport closes its socket in a callback of the next loop iteration: run it
    # before the loop stops, or the socket is left to the garbage collector.
    await asyncio.sleep(0.01)


async def _in_loop(make: partial[Cluster]) -> Cluster:
    """``make()`` on the loop's thread (a cluster's asyncio objects belong to that loop)."""
    return make()
