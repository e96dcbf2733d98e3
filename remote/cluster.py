"""The hosts of one ``settings.parallel.remote`` for a run, as the event loop sees them.

``Cluster.run(task)`` is one attempt of one branch::

    HostPool.acquire ─► HostSession (opened once per host per run) ─► its worker
      ─► one JSON line out, one back ─► (result, host)
    host lost / refused / timed out: one fault on its breaker per loss, a WARNING once
      per host per run (logger ``tea.remote``), the branch moves to another host
    worker stopped (another branch on it timed out): sent again, no fault
    cancelled (its timeout, fail_fast): the worker running it is killed
    no host left: AllHostsDown naming each host and why

``preflight()`` opens every host at once and returns when each is ready for work or
known to be unusable: an unreachable host is warned about and its breaker opened
(it gets a trial after ``reset_timeout_seconds``); a setup problem (host key,
login, no binary for its architecture) is fatal, as it would be at the fan-out.

``RemoteAttempt`` is what the driver thread and the coroutine share: the host, and
when the timeout clock runs (only while the branch is on a worker). ``traffic``
counts the bytes each host is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from executors.base import ParallelConfig
from remote.config import RemoteSettings, forwarded_env
from remote.errors import AllHostsDown, HostDown, RemoteSetupError, WorkerStopped
from remote.hosts import HostPool, HostState, Lease
from remote.local_files import check_key_files, resolve_deployment
from remote.payload import SharedState, Traffic
from remote.progress import Progress
from remote.ssh import HostSession

__all__ = ["Cluster", "RemoteAttempt"]

log = logging.getLogger("tea.remote")


class RemoteAttempt:
    """Where one attempt stands, shared by its driver thread and its coroutine.

    The timeout clock runs only while the branch is on a worker, from each submit:
    a branch sent again (its host lost, its worker stopped) gets its full time there.
    """

    def __init__(self, on_submit: Callable[[str], None] | None = None) -> None:
        self.host: str | None = None
        self.abandoned = False
        self._on_submit = on_submit
        self._since: float | None = None
        self._finished = False
        self._changed = threading.Condition()

    def submitted(self, host: str) -> None:
        """The attempt is on a worker of ``host`` (told to ``on_submit``: the branch started)."""
        with self._changed:
            self.host, self._since = host, time.monotonic()
            self._changed.notify_all()
        if self._on_submit is not None:
            self._on_submit(host)

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

    def __init__(self, settings: RemoteSettings, config: ParallelConfig, warned: set[str], traffic: Traffic) -> None:
        """Made on the loop that will run it (``start`` schedules there)."""
        check_key_files(settings)
        self.settings = settings
        self.deployment = resolve_deployment(settings)
        self.env = forwarded_env(settings.env)
        self.pool = HostPool(settings.hosts, config.circuit_breaker)
        self.sessions: dict[str, HostSession] = {}
        self.retired: list[HostSession] = []
        self.opening: dict[str, asyncio.Future[HostSession]] = {}
        self.lost_workdirs: dict[str, list[str]] = {}
        """Per host, the directories of its sessions that were lost (removed when it is back)."""
        self.fatal: RemoteSetupError | None = None
        self.progress = Progress.for_terminal([h.name for h in self.pool.hosts])
        self.closed = False
        self.traffic = traffic
        self._warned = warned
        self._loop = asyncio.get_running_loop()

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

    async def _open(self, host: HostState, prepared: asyncio.Future[None] | None = None) -> HostSession:
        previous = self.sessions.pop(host.name, None)
        if previous is not None:  # it was lost: its directory goes once the host is back
            self.retired.append(previous)  # closed with the others at the end of the run
            if previous.workdir:
                self.lost_workdirs.setdefault(host.name, []).append(previous.workdir)
        old = self.lost_workdirs.pop(host.name, [])
        session = HostSession(host.spec, self.settings, self.deployment, self.env, self.traffic, old)
        try:
            await _ready(session, prepared)
        except RemoteSetupError as exc:
            self.fatal = self.fatal or exc
            self._warn(host.name, f"is unusable: {exc.message}")
            await self.pool.mark_down(host, exc.message, permanent=True)
            raise
        except HostDown as exc:
            self.lost_workdirs[host.name] = old  # not removed yet: next time
            # Counted on the host's breaker by the first attempt that sees it (in run).
            self._warn(host.name, f"is unavailable: {exc.message}; its branches run on the other hosts")
            raise
        if self.closed:  # the run ended while it connected: nobody will close it later
            await session.close()
            raise asyncio.CancelledError
        self.sessions[host.name] = session
        return session

    async def preflight(self) -> dict[str, BaseException | None]:
        """Open every host not yet open, at once; return when each is prepared (``None``)
        or failed (its error). Unreachable hosts get their breaker opened."""
        loop = asyncio.get_running_loop()
        waits: dict[str, asyncio.Future[None]] = {}
        for host in self.pool.hosts:
            if host.name in self.sessions or host.name in self.opening:
                continue
            waits[host.name] = prepared = loop.create_future()
            self.opening[host.name] = asyncio.ensure_future(self._open(host, prepared))
        outcomes = dict(zip(waits, await asyncio.gather(*waits.values(), return_exceptions=True), strict=True))
        found: dict[str, BaseException | None] = {}
        for host in self.pool.hosts:
            outcome = outcomes.get(host.name)
            found[host.name] = outcome if isinstance(outcome, BaseException) else None
            if isinstance(outcome, BaseException):
                # Its opening ends with the same error: collect it, the next branch opens afresh.
                opening = self.opening.pop(host.name)
                await asyncio.wait([opening])
                if not opening.cancelled():
                    opening.exception()
            if isinstance(outcome, HostDown):
                await self.pool.trip(host, self._describe(outcome))
        return found

    def _warn(self, host: str, what: str) -> None:
        """Say on the log, once per host per run, why a host does not take branches."""
        if host not in self._warned:
            self._warned.add(host)
            log.warning("remote host %s %s", host, what)

    def start(
        self, program: tuple[str, dict[str, Any]], state: SharedState, task: dict[str, Any], avoid: set[str],
        on_submit: Callable[[str], None] | None = None,
    ) -> tuple[RemoteAttempt, concurrent.futures.Future[tuple[dict[str, Any], str]]]:
        """Schedule one attempt of ``task`` (``run``) on the cluster's loop; from any thread.
        ``on_submit(host)`` hears when a worker of ``host`` takes it."""
        attempt = RemoteAttempt(on_submit)
        future = asyncio.run_coroutine_threadsafe(self.run(program, state, task, avoid, attempt), self._loop)
        future.add_done_callback(lambda _: attempt.finished())
        return attempt, future

    async def run(
        self,
        program: tuple[str, dict[str, Any]],
        state: SharedState,
        task: dict[str, Any],
        avoid: set[str],
        attempt: RemoteAttempt,
    ) -> tuple[dict[str, Any], str]:
        """Run ``task`` on some host until one answers; returns (result dict, host name).

        ``program`` is ``(key, load message)``; ``state`` the task's shared input."""
        forbid: set[str] = set()
        while True:
            if self.fatal is not None:
                raise self.fatal
            if attempt.abandoned or self.closed:  # nobody waits for it: start nothing
                raise asyncio.CancelledError
            lease = await self._acquire(avoid, forbid, task["branch_id"])
            host = lease.host
            healthy: bool | None = None
            self.progress.update(host.name, "running")
            try:
                found = await self._run_on(host, program, state, task, attempt)
                healthy = True
                return found
            except WorkerStopped:
                self.progress.update(host.name, "lost")  # sent again; the host is fine
            except HostDown as exc:
                forbid.add(host.name)
                self.progress.update(host.name, "lost")
                if not exc.counted:  # one fault per loss, not one per branch that was on it
                    exc.counted, healthy = True, False
                    self._warn(host.name, f"was lost: {self._describe(exc)}; its branches run again on the other hosts")
                    await self.pool.mark_down(host, self._describe(exc), permanent=exc.permanent)
            except BaseException:
                self.progress.update(host.name, "failed")
                raise
            finally:
                await self.pool.release(lease, healthy)

    async def _acquire(self, avoid: set[str], forbid: set[str], branch: str) -> Lease:
        self.progress.waiting(1)
        try:
            lease = await self.pool.acquire(avoid, forbid)
        finally:
            self.progress.waiting(-1)
        if lease is None:
            raise AllHostsDown(
                f"no host left to run the branch; every host is down:\n{self.pool.down_report(forbid)}",
                branch=branch,
            )
        return lease

    async def _run_on(
        self,
        host: HostState,
        program: tuple[str, dict[str, Any]],
        state: SharedState,
        task: dict[str, Any],
        attempt: RemoteAttempt,
    ) -> tuple[dict[str, Any], str]:
        session = await self.session(host)
        worker = await session.worker()
        future = worker.submit(program[0], program[1], state, task)
        attempt.submitted(host.name)
        try:
            result = await future
        except asyncio.CancelledError:
            if worker.dead is None:  # timed out or cancelled: stop what it runs
                session.stop_worker(worker, f"branch {task['branch_id']} on it was stopped (timeout or cancel)")
            raise
        finally:
            attempt.off_worker()
        self.progress.update(host.name, "done" if result["success"] else "failed")
        if not result["success"] and not result.get("stderr_tail"):
            # The branch's own output is in its result; a process that died has none: the
            # worker's stderr (travelling beside stdout: let it catch up) says why.
            await asyncio.sleep(0.01)
            result["stderr_tail"] = worker.stderr_tail()
        return result, host.name

    @staticmethod
    def _describe(exc: HostDown) -> str:
        text = exc.message
        if exc.stderr_tail:
            text += f" (stderr: {exc.stderr_tail.strip().splitlines()[-1]})"
        return text

    async def close(self) -> None:
        """Close every session, those still opening included (each after at most its
        connect timeout): no connection is left for the garbage collector."""
        self.closed = True
        opening = list(self.opening.values())
        if opening:
            _, late = await asyncio.wait(opening, timeout=self.settings.connect_timeout + 1)
            for future in late:
                future.cancel()
            await asyncio.gather(*opening, return_exceptions=True)
        sessions, self.sessions = [*self.sessions.values(), *self.retired], {}
        self.retired = []
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        self.progress.close()


async def _ready(session: HostSession, prepared: asyncio.Future[None] | None) -> None:
    """Open ``session``, telling ``prepared`` (a preflight's) once the host is prepared or
    failed to be."""
    try:
        await session.prepare()
    except BaseException as exc:
        if prepared is not None and not prepared.done():
            if isinstance(exc, asyncio.CancelledError):
                prepared.cancel()
            else:
                prepared.set_exception(exc)
        raise
    if prepared is not None and not prepared.done():
        prepared.set_result(None)
    await session.start()
