"""``RemoteExecutor``: the ``remote`` strategy on top of hosts, sessions and the worker.

::

    run(program, tasks, config)
      ├─ RemoteSettings (config.remote)        ├─ payload: YAML subset, or cloudpickle
      ├─ transport gnu_parallel ─► remote.gnu_transport.run_batch (one parallel command)
      └─ ssh: ResilientRunner (retries, per-target breakers, timeouts, fail_fast)
            attempt(ctx) ──► event-loop thread: _Cluster.run(task)
                                HostPool.acquire ─► HostSession (opened once per host per run)
                                  ─► its worker: one JSON line out, one back
                                host lost / refused / timed out: fault on its breaker, a
                                WARNING once per host, the branch moves to another host
                                no host left: AllHostsDown naming each host and why
            timeout / cancel ─► that host's worker is killed with all it started (its
                                other branches are sent again), a fresh one takes over

The timeout counts while the branch is on a worker, from each time it is sent. The
executor lives for a whole run: connections, workdirs and shipped binaries are
reused by every fan-out; ``close()`` kills the workers and cleans the hosts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import Attempt, AttemptContext, ResilientExecutor, failed
from remote.bundle import default_basefile
from remote.channel import HostDown, RemoteSetupError, WorkerStopped
from remote.config import RemoteSettings, forwarded_env
from remote.hosts import HostPool, HostState
from remote.progress import Progress
from remote.ssh import Basefile, HostSession, check_key_files
from remote.statejson import json_check
from remote.subset import program_payload
from tea.errors import BranchError, SerializationError

__all__ = ["AllHostsDown", "RemoteExecutor", "RemoteSetupError"]

log = logging.getLogger("tea.remote")


class AllHostsDown(BranchError):
    """No host can take a branch any more; the message names each host and why."""


def resolve_basefile(settings: RemoteSettings) -> Basefile:
    """The binary to ship: ``basefile``, or the running one when tea is frozen."""
    path = Path(settings.basefile).expanduser() if settings.basefile else default_basefile()
    if path is None:
        raise RemoteSetupError(
            "the remote strategy needs a tea binary to ship, and this tea is not one",
            hint="build one with `tea bundle -o dist/tea` and set "
            "settings.parallel.remote.basefile: dist/tea",
        )
    return Basefile.from_path(path)


class _Dispatch:
    """Where one attempt stands, shared by its driver thread and its coroutine.

    The timeout clock runs only while the branch is on a worker, from each submit:
    a branch sent again (its host lost, its worker stopped) gets its full time there.
    """

    def __init__(self) -> None:
        self.host: str | None = None
        self.abandoned = False
        self._since: float | None = None
        self._finished = False
        self._changed = threading.Condition()

    def submitted(self, host: str) -> None:
        with self._changed:
            self.host, self._since = host, time.monotonic()
            self._changed.notify_all()

    def off_worker(self) -> None:
        with self._changed:
            self._since = None

    def finished(self) -> None:
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def wait(self, timeout: float | None) -> bool:
        """Until the attempt finished (True), or was on a worker for ``timeout`` (False).

        Unbounded while no worker has it: host set-up is bounded by connect timeouts."""
        with self._changed:
            while not self._finished:
                if self._since is None or timeout is None:
                    self._changed.wait()
                    continue
                left = self._since + timeout - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


class _Cluster:
    """The hosts of one ``RemoteSettings`` for the run: pool, sessions, fail-fast error."""

    def __init__(self, settings: RemoteSettings, config: ParallelConfig, warned: set[str]) -> None:
        check_key_files(settings)
        self.settings = settings
        self.basefile = resolve_basefile(settings)
        self.env = forwarded_env(settings.env)
        self.pool = HostPool(settings.hosts, config.circuit_breaker)
        self.sessions: dict[str, HostSession] = {}
        self.retired: list[HostSession] = []
        self.opening: dict[str, asyncio.Future[HostSession]] = {}
        self.fatal: RemoteSetupError | None = None
        self.progress = Progress.for_terminal([h.name for h in self.pool.hosts])
        self.closed = False
        self._warned = warned

    async def session(self, host: HostState) -> HostSession:
        """The host's live session, opening one (once, shared by concurrent callers)."""
        current = self.sessions.get(host.name)
        if current is not None and current.dead is None:
            return current
        if host.name not in self.opening:
            self.opening[host.name] = asyncio.ensure_future(self._open(host))
        try:
            return await asyncio.shield(self.opening[host.name])
        finally:
            future = self.opening.get(host.name)
            if future is not None and future.done():
                del self.opening[host.name]

    async def _open(self, host: HostState) -> HostSession:
        session = HostSession(host.spec, self.settings, self.basefile, self.env)
        try:
            await session.open()
        except RemoteSetupError as exc:
            self.fatal = self.fatal or exc
            self._warn(host.name, f"is unusable: {exc.message}")
            await self.pool.record_fault(host, exc.message, fatal=True)
            raise
        except HostDown as exc:
            exc.counted = True
            self._warn(host.name, f"is unavailable: {exc.message}; its branches run on "
                       "the other hosts")  # fmt: skip
            await self.pool.record_fault(host, exc.message, fatal="workdir" in exc.message)
            raise
        old = self.sessions.get(host.name)
        if old is not None:
            self.retired.append(old)  # closed with the others at the end of the run
        self.sessions[host.name] = session
        return session

    def _warn(self, host: str, what: str) -> None:
        """Say on the log, once per host per run, why a host does not take branches."""
        if host not in self._warned:
            self._warned.add(host)
            log.warning("remote host %s %s", host, what)

    async def run(
        self,
        key: str,
        payload: dict[str, Any],
        task: dict[str, Any],
        avoid: set[str],
        dispatch: _Dispatch,
    ) -> tuple[dict[str, Any], str]:
        """Run ``task`` on some host until one answers; returns (result dict, host name)."""
        forbid: set[str] = set()
        while True:
            if self.fatal is not None:
                raise self.fatal
            if dispatch.abandoned or self.closed:  # nobody waits for it: start nothing
                raise asyncio.CancelledError
            self.progress.waiting(1)
            try:
                host = await self.pool.acquire(avoid, forbid)
            finally:
                self.progress.waiting(-1)
            if host is None:
                raise AllHostsDown(
                    f"no host left to run the branch; every host is down:\n"
                    f"{self.pool.down_report(forbid)}",
                    branch=task["branch_id"],
                )
            fault: str | None = None
            self.progress.update(host.name, "running")
            try:
                session = await self.session(host)
                worker = await session.worker()
                worker.load(key, payload)
                future = worker.submit(key, task)
                dispatch.submitted(host.name)
                try:
                    result = await future
                except asyncio.CancelledError:
                    if worker.dead is None:  # timed out or cancelled: stop what it runs
                        session.stop_worker(worker, f"branch {task['branch_id']} on it was "
                                            "stopped (timeout or cancel)")  # fmt: skip
                    raise
                finally:
                    dispatch.off_worker()
                self.progress.update(host.name, "done" if result["success"] else "failed")
                if not result["success"]:
                    await asyncio.sleep(0.01)  # stderr travels beside stdout: let it catch up
                    result["stderr_tail"] = worker.stderr_tail()
                return result, host.name
            except WorkerStopped:
                self.progress.update(host.name, "lost")  # sent again; the host is fine
            except HostDown as exc:
                fault = exc.message
                forbid.add(host.name)
                self.progress.update(host.name, "lost")
                if not exc.counted:
                    exc.counted = True
                    self._warn(host.name, f"was lost: {self._describe(exc)}; its branches "
                               "run again on the other hosts")  # fmt: skip
                    await self.pool.record_fault(host, self._describe(exc))
            except BaseException:
                self.progress.update(host.name, "failed")
                raise
            finally:
                await self.pool.release(host, fault)

    @staticmethod
    def _describe(exc: HostDown) -> str:
        text = exc.message
        if exc.stderr_tail:
            text += f" (stderr: {exc.stderr_tail.strip().splitlines()[-1]})"
        return text

    async def close(self) -> None:
        self.closed = True
        sessions, self.sessions = [*self.sessions.values(), *self.retired], {}
        self.retired = []
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        self.progress.close()


class _LoopThread:
    """An asyncio loop on a daemon thread, for the executor's whole life."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="tea-remote-loop", daemon=True
        )
        self.thread.start()

    def call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is still pending (readers of dead hosts), then stop the loop."""
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.call(_cancel_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class RemoteExecutor(ResilientExecutor):
    """Runs branches on SSH hosts. One per run; thread-safe; ``close()`` is idempotent.

    Concurrency is the sum of the hosts' slots (capped by ``max_workers``). Each
    attempt of a branch may move between hosts when one is lost; a branch error
    comes back as a failed result and is retried (preferably elsewhere) under the
    fan-out's retry policy.
    """

    strategy = "remote"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._loop: _LoopThread | None = None
        self._clusters: dict[RemoteSettings, _Cluster] = {}
        self._avoid: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: Any = None,
    ) -> Iterator[BranchResult]:
        """Start the batch and yield results as branches finish (see ``ParallelExecutor``)."""
        if self._closed:
            raise RuntimeError("the remote executor is closed")
        settings = RemoteSettings.from_mapping(config.remote)
        if settings.transport == "gnu_parallel":
            from remote.gnu_transport import run_batch

            check_key_files(settings)
            key, payload = program_payload(program, tasks)
            basefile = resolve_basefile(settings)
            return run_batch(settings, basefile, key, payload, tasks, config, cancel)
        cluster = self._cluster(settings, config)
        slots = sum(h.spec.slots for h in cluster.pool.hosts)
        workers = min(config.max_workers or self._max_workers or slots, slots)
        attempt = self._prepare(program, tasks, config, workers)
        return self._runner.run(tasks, config, attempt, workers=workers, cancel=cancel)

    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        """The batch's ``attempt``: its hosts (connected lazily) and its program payload."""
        cluster = self._cluster(RemoteSettings.from_mapping(config.remote), config)
        key, payload = program_payload(program, tasks)
        return partial(self._attempt, cluster, key, payload)

    def _cluster(self, settings: RemoteSettings, config: ParallelConfig) -> _Cluster:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            if settings not in self._clusters:
                made = _make_cluster(settings, config, self._warned)
                self._clusters[settings] = self._loop.call(made)
            return self._clusters[settings]

    def _attempt(
        self, cluster: _Cluster, key: str, payload: dict[str, Any], ctx: AttemptContext
    ) -> BranchResult:
        task = ctx.task
        try:
            json_check(task.state, f"the state of branch {task.branch_id}", branch=task.branch_id)
        except SerializationError as exc:
            return failed(task, replace(ErrorInfo.from_exception(exc), traceback=None))
        if cluster.fatal is not None:
            return failed(task, _whole_story(cluster.fatal))
        assert self._loop is not None
        avoid = self._avoid.setdefault(task.branch_id, set())
        dispatch = _Dispatch()
        future = asyncio.run_coroutine_threadsafe(
            cluster.run(key, payload, asdict(task), avoid, dispatch), self._loop.loop
        )
        future.add_done_callback(lambda _: dispatch.finished())
        unhook = ctx.token.on_cancel(partial(_abandon, dispatch, future))
        try:
            if not dispatch.wait(ctx.timeout_seconds):
                _abandon(dispatch, future)  # its coroutine kills the worker running it
            data, host = future.result()
        except concurrent.futures.CancelledError:
            return _stopped(ctx, dispatch.host, avoid)
        except (AllHostsDown, RemoteSetupError) as exc:
            return failed(task, _whole_story(exc), host=exc.host)
        finally:
            unhook()
        result = BranchResult.from_dict(data)
        error = result.error
        if error is not None:
            avoid.add(host)  # a retry of this branch prefers another host
            tail = data.get("stderr_tail")
            text = error.traceback or ""
            if tail:
                text += f"\n--- stderr of the worker on {host} (last lines) ---\n{tail}\n"
            error = replace(error, host=host, traceback=text or None)
        return replace(result, host=host, error=error, attempts=task.attempt)

    def close(self) -> None:
        """Kill the workers (and all they started), clean the hosts (unless ``cleanup:
        false``), close connections. Idempotent."""
        if self._closed:
            return
        super().close()
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


def _abandon(dispatch: _Dispatch, future: concurrent.futures.Future[Any]) -> None:
    dispatch.abandoned = True
    future.cancel()


def _stopped(ctx: AttemptContext, host: str | None, avoid: set[str]) -> BranchResult:
    """``BranchTimeout`` or ``Cancelled``, naming the host it was stopped on."""
    if host is not None:
        avoid.add(host)  # a retry after a timeout prefers another host
    result = ctx.stopped(host=host)
    if result.error is None:
        return result
    return replace(result, error=replace(result.error, host=host))


def _whole_story(exc: BranchError) -> ErrorInfo:
    """The error with its hint and stderr in the message; the driver's traceback says nothing."""
    return replace(ErrorInfo.from_exception(exc), message=str(exc), traceback=None)


async def _cancel_all() -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _make_cluster(settings: RemoteSettings, config: ParallelConfig,
                        warned: set[str]) -> _Cluster:  # fmt: skip
    return _Cluster(settings, config, warned)
