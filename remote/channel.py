"""One resident ``tea worker`` on a host, seen from the driver: its SSH channel and tasks.

``WorkerChannel.start`` runs the worker on an open connection and reads its hello;
``submit`` writes one task line (after the program and the shared state, when this
worker lacks them) and returns a future for its result line. A worker ends in one
of two ways::

    it dies (exit, signal, lost link) ─► pending futures fail with HostDown
                                          (a host fault: the branches move elsewhere)
    the driver stops it (``stop``)    ─► pending futures fail with WorkerStopped (no
                                          fault), stdin is closed, and the caller kills
                                          the worker's process group (``kill_command``)

The worker leads its own process group (``pgid`` in its hello), so that kill takes
the branches it was running and every process they started. Every byte written to
the worker is counted in the run's ``Traffic``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict, deque
from typing import Any

import asyncssh

from remote.branches import PROTOCOL, STATES_KEPT
from remote.errors import HostDown, RemoteSetupError, WorkerGone, WorkerStopped
from remote.payload import SharedState, Traffic

__all__ = ["WorkerChannel"]

_STDERR_LINES = 20


def _line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class WorkerChannel:
    """A running worker: its process on the connection, tasks in flight and stderr tail.

    Used from the executor's event loop only. ``dead`` is set once it can take no task.
    """

    def __init__(self, host: str, proc: asyncssh.SSHClientProcess[str], traffic: Traffic) -> None:
        self.host = host
        self.hello: dict[str, Any] = {}
        self.dead: WorkerGone | None = None
        self.killed = False
        """Set once its process group was killed: never kill that group id again (reuse)."""
        self._proc = proc
        self._traffic = traffic
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loaded: set[str] = set()
        self._states: OrderedDict[str, None] = OrderedDict()
        """The shared states the worker holds, evicted as the worker evicts them."""
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._readers: list[asyncio.Task[None]] = []
        self._seq = 0

    @classmethod
    async def start(
        cls,
        conn: asyncssh.SSHClientConnection,
        host: str,
        command: str,
        *,
        binary: str,
        env: dict[str, str],
        timeout: float,
        traffic: Traffic,
    ) -> WorkerChannel:
        """Run ``command`` (``binary`` as a worker) and check its hello; raises ``HostDown``
        or ``RemoteSetupError``."""
        proc = await conn.create_process(command, encoding="utf-8")
        worker = cls(host, proc, traffic)
        worker._readers.append(asyncio.create_task(worker._read_stderr()))
        try:
            await worker._greet(binary, timeout)
            if env:
                worker._write(_line({"op": "env", "env": env}))
        except BaseException:
            worker.close()
            raise
        worker._readers.append(asyncio.create_task(worker._read_stdout()))
        return worker

    async def _greet(self, binary: str, timeout: float) -> None:
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
            hello = json.loads(line) if line.strip() else {}
        except (TimeoutError, ValueError, asyncssh.Error) as exc:
            raise HostDown(
                f"the worker did not start ({type(exc).__name__})", host=self.host, stderr_tail=self.stderr_tail()
            ) from exc
        if hello.get("op") != "hello":
            await asyncio.sleep(0.1)  # let the stderr reader catch why it exited
            raise RemoteSetupError(
                f"{binary} on {self.host} is not a working tea binary",
                host=self.host,
                stderr_tail=self.stderr_tail() or line.strip()[:500],
                hint="rebuild it with `tea bundle` and check the hosts can run it",
            )
        if hello.get("protocol") != PROTOCOL:
            raise RemoteSetupError(
                f"tea {hello.get('version')} on {self.host} speaks worker protocol "
                f"{hello.get('protocol')}, this driver speaks {PROTOCOL}",
                host=self.host,
                hint="ship a binary built from the same version (`tea bundle`)",
            )
        self.hello = hello

    @property
    def exited(self) -> bool:
        """Whether its exit (status or signal) came back; its group id may then be reused."""
        return self._proc.exit_status is not None or self._proc.exit_signal is not None

    def kill_command(self) -> str | None:
        """The shell command that kills its process group, unless it is known to be gone."""
        pgid = self.hello.get("pgid")
        if self.killed or self.exited or not isinstance(pgid, int) or pgid <= 1:
            return None
        return f"kill -KILL -{pgid} 2>/dev/null"  # no "--": dash's kill takes none

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def _write(self, line: str) -> None:
        if self.dead is not None:
            raise self.dead
        try:
            self._proc.stdin.write(line + "\n")
        except (OSError, asyncssh.Error) as exc:
            # The channel closed before the reader noticed: the host (or its link) is gone.
            error = HostDown("connection lost", host=self.host, stderr_tail=self.stderr_tail() or None)
            self._fail(error)
            raise error from exc
        # JSON lines are ASCII (json.dumps escapes the rest): characters are bytes.
        self._traffic.add(self.host, len(line) + 1)

    def submit(
        self, key: str, program: dict[str, Any], state: SharedState, task: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        """Send one task (and its program and shared state, if this worker lacks them);
        returns a future for its ``BranchResult`` dict."""
        if key not in self._loaded:
            self._write(_line({"op": "load", "key": key, **program}))
            self._loaded.add(key)
        if state.key not in self._states:
            self._write(state.message())
            self._states[state.key] = None
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
        self._seq += 1
        task_id = str(self._seq)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[task_id] = future
        try:
            self._write(_line({"op": "run", "id": task_id, "key": key, "state": state.key, "task": task}))
        except BaseException:
            self._pending.pop(task_id, None)
            raise
        return future

    def stop(self, reason: str) -> None:
        """Take it out of service: fail what runs on it with ``WorkerStopped``, close stdin
        (the worker then kills its own group). The caller also runs ``kill_command``."""
        if self.dead is None:
            self._fail(WorkerStopped(reason, host=self.host))
        with contextlib.suppress(OSError, asyncssh.Error):
            self._proc.stdin.write_eof()

    def close(self) -> None:
        """Close the channel (the worker sees stdin end) and stop the readers."""
        if self.dead is None:
            self._fail(WorkerStopped("the run is over", host=self.host))
        self._proc.close()
        for reader in self._readers:
            reader.cancel()

    async def _wait_closed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self._proc.wait_closed(), timeout)

    def _fail(self, error: WorkerGone) -> None:
        self.dead = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _read_stderr(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            async for line in self._proc.stderr:
                self._stderr.append(line.rstrip("\n"))

    async def _read_stdout(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            async for line in self._proc.stdout:
                try:
                    message = json.loads(line)
                    key, result = str(message["id"]), message["result"]
                except (ValueError, TypeError, KeyError):
                    # Not a reply: something besides tea wrote it (a wrapper in the host's
                    # command, a login script). Kept with stderr, where errors show it.
                    self._stderr.append(f"[stdout] {line.rstrip()[:500]}")
                    continue
                future = self._pending.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(result)
        await self._lost()

    async def _lost(self) -> None:
        """Its stdout ended: find out how, and fail what was pending on it."""
        await self._wait_closed(2)
        # asyncssh reports no status, not an error, when the connection itself was lost.
        status, signal = self._proc.exit_status, self._proc.exit_signal
        await asyncio.sleep(0)  # let the stderr reader take its last lines
        if self.dead is not None:
            return  # stopped on purpose: what was pending has been told already
        if signal:
            reason = f"worker killed by signal {signal[0]}"
        elif status is None:
            reason = "connection lost"
        else:
            reason = f"worker exited with status {status}"
        self._fail(
            HostDown(f"{reason} mid-branch", host=self.host, exit_status=status, stderr_tail=self.stderr_tail() or None)
        )
