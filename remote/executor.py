"""``RemoteExecutor``: the ``remote`` strategy on top of hosts, sessions and the worker.

::

    run(program, tasks, config)
      ├─ RemoteSettings (config.remote)        ├─ payload: YAML subset, or cloudpickle
      ├─ transport gnu_parallel ─► remote.gnu_transport.run_batch (one parallel command)
      └─ ssh: ResilientRunner (retries, per-target breakers, timeouts, fail_fast)
            attempt(ctx) ──► event-loop thread: _Cluster.run(task)
                                HostPool.acquire ─► HostSession (opened once per host per run)
                                  ─► one JSON line out, one back
                                host lost / refused / timed out: fault on its breaker,
                                the branch moves to another host (same attempt)
                                no host left: AllHostsDown naming each host and why

The executor lives for a whole run: connections, workdirs and shipped binaries
are reused by every fan-out; ``close()`` ends the workers and cleans the hosts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import Attempt, AttemptContext, ResilientExecutor, failed
from remote.bundle import default_basefile
from remote.config import RemoteSettings, forwarded_env
from remote.hosts import HostPool, HostState
from remote.progress import Progress
from remote.ssh import Basefile, HostDown, HostSession, RemoteSetupError
from remote.subset import program_payload
from remote.worker import json_check
from tea.errors import BranchError, SerializationError

__all__ = ["AllHostsDown", "RemoteExecutor", "RemoteSetupError"]


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


class _Cluster:
    """The hosts of one ``RemoteSettings`` for the run: pool, sessions, fail-fast error."""

    def __init__(self, settings: RemoteSettings, config: ParallelConfig) -> None:
        self.settings = settings
        self.basefile = resolve_basefile(settings)
        self.env = forwarded_env(settings.env)
        self.pool = HostPool(settings.hosts, config.circuit_breaker)
        self.sessions: dict[str, HostSession] = {}
        self.opening: dict[str, asyncio.Future[HostSession]] = {}
        self.fatal: RemoteSetupError | None = None
        self.progress = Progress.for_terminal([h.name for h in self.pool.hosts])

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
            await self.pool.record_fault(host, exc.message, fatal=True)
            raise
        except HostDown as exc:
            await self.pool.record_fault(host, exc.message, fatal="workdir" in exc.message)
            raise
        self.sessions[host.name] = session
        return session

    async def run(
        self,
        key: str,
        payload: dict[str, Any],
        task: dict[str, Any],
        avoid: set[str],
        submitted: threading.Event,
    ) -> tuple[dict[str, Any], str]:
        """Run ``task`` on some host until one answers; returns (result dict, host name).

        ``submitted`` is set once the task has reached a worker: the branch's timeout
        counts from there, not from a host's first connection and binary upload.
        """
        forbid: set[str] = set()
        while True:
            if self.fatal is not None:
                raise self.fatal
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
                session.load(key, payload)
                task_id, future = session.submit(key, task)
                submitted.set()
                try:
                    result = await future
                except asyncio.CancelledError:
                    session.cancel(task_id)
                    raise
                self.progress.update(host.name, "done" if result["success"] else "failed")
                if not result["success"]:
                    await asyncio.sleep(0.01)  # stderr travels beside stdout: let it catch up
                    result["stderr_tail"] = session.stderr_tail()
                return result, host.name
            except HostDown as exc:
                fault = exc.message
                forbid.add(host.name)
                self.progress.update(host.name, "lost")
                dead = self.sessions.get(host.name)
                if dead is not None and dead.dead is exc and not dead.fault_recorded:
                    dead.fault_recorded = True
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
        sessions, self.sessions = list(self.sessions.values()), {}
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
        self._payloads: dict[int, tuple[str, dict[str, Any]]] = {}
        self._avoid: dict[str, set[str]] = {}
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
                self._clusters[settings] = self._loop.call(_make_cluster(settings, config))
            return self._clusters[settings]

    def _attempt(
        self, cluster: _Cluster, key: str, payload: dict[str, Any], ctx: AttemptContext
    ) -> BranchResult:
        task = ctx.task
        try:
            json_check(task.state, "state")
        except SerializationError as exc:
            return failed(task, replace(ErrorInfo.from_exception(exc), traceback=None))
        if cluster.fatal is not None:
            return failed(task, _whole_story(cluster.fatal))
        assert self._loop is not None
        avoid = self._avoid.setdefault(task.branch_id, set())
        submitted = threading.Event()
        future = asyncio.run_coroutine_threadsafe(
            cluster.run(key, payload, asdict(task), avoid, submitted), self._loop.loop
        )
        future.add_done_callback(lambda _: submitted.set())
        unhook = ctx.token.on_cancel(partial(_cancel, future))
        try:
            submitted.wait()  # host set-up (bounded by connect timeouts) is not branch time
            data, host = future.result(timeout=ctx.timeout_seconds)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()
            return ctx.stopped()
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
        """End the workers, clean the hosts (unless ``cleanup: false``), close connections.

        Idempotent."""
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


def _cancel(future: concurrent.futures.Future[Any]) -> None:
    future.cancel()


def _whole_story(exc: BranchError) -> ErrorInfo:
    """The error with its hint and stderr in the message; the driver's traceback says nothing."""
    return replace(ErrorInfo.from_exception(exc), message=str(exc), traceback=None)


async def _cancel_all() -> None:
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _make_cluster(settings: RemoteSettings, config: ParallelConfig) -> _Cluster:
    return _Cluster(settings, config)
