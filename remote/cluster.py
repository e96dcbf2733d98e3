"""The hosts of one ``settings.parallel.remote`` for a run, as the event loop sees them.

``Cluster.run(task)`` is one attempt of one branch::

    HostPool.acquire ─► HostSession (opened once per host per run) ─► its worker
      ─► one JSON line out, one back ─► (result, host)
    host lost / refused / timed out: a fault on its breaker, a WARNING once per host
      per run (logger ``tea.remote``), the branch moves to another host
    worker stopped (another branch on it timed out): sent again, no fault
    cancelled (its timeout, fail_fast): the worker running it is killed
    no host left: AllHostsDown naming each host and why

``Dispatch`` is what the driver thread and the coroutine share: the host, and
when the timeout clock runs (only while the branch is on a worker).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from executors.base import ParallelConfig
from remote.channel import HostDown, RemoteSetupError, WorkerStopped
from remote.config import RemoteSettings, forwarded_env
from remote.hosts import HostPool, HostState
from remote.progress import Progress
from remote.ssh import HostSession, check_key_files, resolve_basefile
from tea.errors import BranchError

__all__ = ["AllHostsDown", "Cluster", "Dispatch"]

log = logging.getLogger("tea.remote")


class AllHostsDown(BranchError):
    """No host can take a branch any more; the message names each host and why."""


class Dispatch:
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


class Cluster:
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
        dispatch: Dispatch,
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
