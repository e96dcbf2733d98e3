"""``RemoteExecutor``: the ``remote`` strategy on top of hosts, sessions and the worker.

::

    run(program, tasks, config)
      ├─ RemoteSettings (config.remote)        ├─ payload: YAML subset, or cloudpickle
      ├─ transport gnu_parallel ─► remote.gnu_transport.run_batch (one parallel command)
      └─ ssh: ResilientRunner (retries, per-target breakers, timeouts, fail_fast)
            attempt(ctx) ──► state checked as JSON (SerializationError before dispatch)
                         ──► event-loop thread: remote.cluster.Cluster.run(task)
            timeout / cancel ─► that coroutine is cancelled: the worker running the branch
                                is killed with all it started, a fresh one takes over

The timeout counts while the branch is on a worker, from each time it is sent. The
executor lives for a whole run: connections, workdirs and shipped binaries are
reused by every fan-out; ``close()`` kills the workers and cleans the hosts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from functools import partial
from typing import Any

from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo, ParallelConfig
from executors.resilience import Attempt, AttemptContext, ResilientExecutor, failed
from remote.channel import RemoteSetupError
from remote.cluster import AllHostsDown, Cluster, Dispatch
from remote.config import RemoteSettings
from remote.ssh import check_key_files, resolve_basefile
from remote.statejson import json_check
from remote.subset import program_payload
from tea.errors import BranchError, SerializationError

__all__ = ["AllHostsDown", "RemoteExecutor", "RemoteSetupError"]


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
        self._clusters: dict[RemoteSettings, Cluster] = {}
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

    def _cluster(self, settings: RemoteSettings, config: ParallelConfig) -> Cluster:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            if settings not in self._clusters:
                made = _make_cluster(settings, config, self._warned)
                self._clusters[settings] = self._loop.call(made)
            return self._clusters[settings]

    def _attempt(
        self, cluster: Cluster, key: str, payload: dict[str, Any], ctx: AttemptContext
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
        dispatch = Dispatch()
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


def _abandon(dispatch: Dispatch, future: concurrent.futures.Future[Any]) -> None:
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
                        warned: set[str]) -> Cluster:  # fmt: skip
    return Cluster(settings, config, warned)
