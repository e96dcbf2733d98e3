"""The direct SSH transport: one asyncssh connection per host, and its resident worker.

``HostSession.open()`` does, in order, over a single connection kept for the run::

    connect   (OpenSSH's defaults and ~/.ssh/config: User, Port, IdentityFile,
      │        ProxyJump, known hosts files; ``identity_file``/``known_hosts`` when set)
      └─ prepare: one shell round trip (``remote.scripts.prepare_script``): cache dir,
         │        dead runs swept, this run's earlier directory removed if the host was
         │        lost, a private ``mktemp -d`` workdir, ``uname -m``, the cached binaries'
         │        SHA-256; the binary for that architecture is chosen (``Deployment``)
         └─ start: SFTP upload only when that hash differs (temp name, then rename)
                   └─ exec <binary or command> worker  ◄─ hello line (protocol, pgid, slots)

``prepare`` is what a preflight waits for; ``start`` may go on in the background.
``worker()`` hands out the running ``WorkerChannel`` (``remote.channel``). A worker
stopped because a branch on it timed out or was cancelled (``stop_worker``) has its
process group killed over the same connection, and the next ``worker()`` starts a
fresh one in the same workdir. ``close()`` kills every worker's group and removes the
workdir in one round trip (unless ``cleanup: false``), so nothing a branch started
outlives the run.

Errors are translated here: ``RemoteSetupError`` (authentication, host key, no binary
for the host's architecture: the fan-out fails fast), ``HostDown`` (refused,
unresolvable, timed out, lost: the branch moves to another host).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from remote.channel import WorkerChannel
from remote.config import HostSpec, RemoteSettings
from remote.errors import HostDown, RemoteSetupError
from remote.local_files import Basefile, Deployment
from remote.payload import Traffic
from remote.scripts import prepare_script, q, worker_command

__all__ = ["HostSession", "connect"]

_OPENSSH_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts",
                        "/etc/ssh/ssh_known_hosts2")


async def connect(spec: HostSpec, settings: RemoteSettings) -> asyncssh.SSHClientConnection:
    """A connection to ``spec`` as OpenSSH would make it; raises ``RemoteSetupError``
    (host key, authentication) or ``HostDown`` (cannot reach it)."""
    s = settings
    options: dict[str, Any] = {
        "connect_timeout": s.connect_timeout,
        "login_timeout": s.connect_timeout,
        "keepalive_interval": s.keepalive_seconds,
        "keepalive_count_max": 3,
    }
    if spec.user:
        options["username"] = spec.user
    if s.known_hosts:
        options["known_hosts"] = str(Path(s.known_hosts).expanduser())
    key = str(Path(s.identity_file).expanduser()) if s.identity_file else None
    if key:
        options["client_keys"] = [key]
        options["agent_path"] = None
    try:
        built = await asyncssh.SSHClientConnectionOptions.construct(host=spec.hostname, port=spec.port or (),
                                                                    **options)
        if built.known_hosts == []:  # neither the settings nor ~/.ssh/config say: OpenSSH's files
            found = [p for p in map(os.path.expanduser, _OPENSSH_KNOWN_HOSTS) if os.access(p, os.R_OK)]
            if found:
                built = await asyncssh.SSHClientConnectionOptions.construct(built, known_hosts=found)
        return await asyncssh.connect(spec.hostname, spec.port or (), options=built)
    except asyncssh.HostKeyNotVerifiable as exc:
        known = s.known_hosts or "~/.ssh/known_hosts"
        raise RemoteSetupError(
            f"the host key of {spec.name} is not trusted: it is unknown or has changed "
            f"since it was recorded in {known} ({exc.reason})",
            host=spec.name,
            hint=f"check the key with the host's owner, then trust it: "
            f"ssh-keyscan -p {spec.port or 22} {spec.hostname} >> {known}",
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise RemoteSetupError(
            f"authentication failed on {spec.name} as {spec.user or 'the default user'} "
            f"with key {key or 'from ~/.ssh, ~/.ssh/config or the agent'}",
            host=spec.name,
            hint="check identity_file (or IdentityFile in ~/.ssh/config) and the host's authorized_keys",
        ) from exc
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise HostDown(f"cannot connect: {why(exc, spec, settings)}", host=spec.name) from exc


def why(exc: BaseException, spec: HostSpec, settings: RemoteSettings) -> str:
    """A connect failure in words a user can act on."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name {spec.hostname!r} ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused on port {spec.port or 22}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {settings.connect_timeout:g}s"
    return str(exc) or type(exc).__name__


class HostSession:
    """One host for one run: connection, private workdir, binary and resident worker.

    Used from the executor's event loop only. ``dead`` is set once the connection is
    gone; a new session is then needed for that host (``old`` names the directories
    of the earlier ones, removed when it comes back).
    """

    def __init__(
        self,
        spec: HostSpec,
        settings: RemoteSettings,
        deployment: Deployment,
        env: dict[str, str],
        traffic: Traffic,
        old: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.deployment = deployment
        self.env = env
        self.traffic = traffic
        self.old = tuple(old)
        self.workdir: str | None = None
        """The run's private directory on the host (absolute), once prepared."""
        self.binary: str | None = None
        """Where the tea binary sits on the host (absolute), once prepared (none with a command)."""
        self.basefile: Basefile | None = None
        self.arch: str | None = None
        self.uploaded = False
        self.dead: HostDown | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._cached_sha: str | None = None
        self._worker: WorkerChannel | None = None
        self._workers: list[WorkerChannel] = []
        self._starting: asyncio.Future[WorkerChannel] | None = None
        self._kills: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def _timeout(self) -> float:
        """How long a shell round trip or a worker start may take before the host is down."""
        return max(30.0, self.settings.connect_timeout * 3)

    async def open(self) -> None:
        """Connect, prepare the workdir and binary, start the worker (raises on failure)."""
        await self.prepare()
        await self.start()

    async def prepare(self) -> None:
        """Connect and ready the host (what a preflight checks); closes it on failure."""
        self._conn = await connect(self.spec, self.settings)
        try:
            await self._prepare()
        except BaseException:
            await self.close(remove=True)
            raise

    async def start(self) -> None:
        """Ship the binary if the host lacks it, start the worker; closes it on failure."""
        try:
            if self.basefile is not None and self._cached_sha != self.basefile.sha256:
                await self._upload_binary()
            self._worker = await self._start_worker()
        except BaseException:
            await self.close(remove=True)
            raise

    async def _prepare(self) -> None:
        """Create the directories and learn the host's facts; choose its binary."""
        s, shipping = self.settings, not self.deployment.command
        script = prepare_script(s.workdir, s.cache_dir if shipping else None, self.deployment.remote_names(),
                                keep=not s.cleanup, old=self.old)
        assert self._conn is not None
        done = await self._conn.run(script, check=False, timeout=self._timeout)
        stdout, stderr = str(done.stdout or ""), str(done.stderr or "").strip()
        if done.exit_status != 0:
            what = {3: f"cannot create {s.workdir} or {s.cache_dir}",
                    4: f"cannot create a private workdir under {s.workdir}"}
            message = what.get(done.exit_status or 0, f"preparing the host failed (exit {done.exit_status})")
            # A directory that cannot be created will not appear later in the run.
            raise HostDown(f"{message}: {stderr}", host=self.name, stderr_tail=stderr,
                           permanent=done.exit_status in what)
        facts = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
        self.workdir, self.arch = facts["wd"], facts.get("arch", "")
        self.basefile = self.deployment.binary_for(self.arch, self.name)
        if self.basefile is not None:
            self.binary = f"{facts['cache']}/{self.basefile.remote_name}"
            self._cached_sha = facts.get(f"sha:{self.basefile.remote_name}")

    async def _upload_binary(self) -> None:
        assert self._conn is not None and self.binary is not None and self.basefile is not None
        final = self.binary
        partial = f"{final}.{secrets.token_hex(4)}.part"
        async with self._conn.start_sftp_client() as sftp:
            try:
                await sftp.put(str(self.basefile.path), partial)
                await sftp.chmod(partial, 0o700)
                # Rename is atomic: hosts sharing a home never see a half-written binary.
                await sftp.posix_rename(partial, final)
            except BaseException:
                with contextlib.suppress(Exception):
                    await sftp.remove(partial)
                raise
        self.uploaded = True

    async def _start_worker(self) -> WorkerChannel:
        assert self._conn is not None and self.workdir is not None
        program = [self.binary] if self.binary is not None else list(self.deployment.command)
        try:
            worker = await WorkerChannel.start(
                self._conn,
                self.name,
                worker_command(self.workdir, program, self.spec.slots),
                binary=" ".join(program),
                env=self.env,
                timeout=self._timeout,
                traffic=self.traffic,
            )
        except (OSError, asyncssh.Error) as exc:
            raise HostDown(f"cannot start the worker: {why(exc, self.spec, self.settings)}", host=self.name) from exc
        self._workers.append(worker)
        return worker

    async def worker(self) -> WorkerChannel:
        """The running worker; a fresh one when the last was stopped or died (started once,
        shared by concurrent callers). Raises ``HostDown`` when the host is gone."""
        if self.dead is not None:
            raise self.dead
        current = self._worker
        if current is not None and current.dead is None:
            return current
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._restart())
        starting = self._starting
        try:
            return await asyncio.shield(starting)
        finally:
            if starting.done() and self._starting is starting:
                self._starting = None

    async def _restart(self) -> WorkerChannel:
        assert self._conn is not None
        try:
            if self._conn.is_closed():
                # One loss, one fault: the dead worker's own report of it, if it made one.
                last = self._worker.dead if self._worker is not None else None
                raise last or HostDown("connection lost", host=self.name)
            self._worker = await self._start_worker()
        except HostDown as exc:
            self.dead = exc
            raise
        return self._worker

    def stop_worker(self, worker: WorkerChannel, reason: str) -> None:
        """Stop ``worker`` now: its tasks fail with ``WorkerStopped`` (to be sent again) and
        its process group is killed in the background (``close`` waits for that)."""
        if self._worker is worker:
            self._worker = None
        worker.stop(reason)
        kill = asyncio.ensure_future(self._kill(worker))
        self._kills.add(kill)
        kill.add_done_callback(self._kills.discard)

    async def _kill(self, worker: WorkerChannel) -> None:
        command = worker.kill_command()
        conn = self._conn
        if command is not None and conn is not None and not conn.is_closed():
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.run(command, check=False), self._timeout)
                worker.killed = True
        worker.close()

    async def close(self, remove: bool | None = None) -> None:
        """Kill every worker's process group, then remove the workdir (and the binary unless
        kept) in the same round trip; close the connection."""
        remove = self.settings.cleanup if remove is None else remove
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._kills:
            await asyncio.gather(*self._kills, return_exceptions=True)
        for worker in self._workers:
            worker.stop("the run is over")
        words = []
        if remove and self.workdir:
            words.append(q(self.workdir))
        if remove and not self.settings.keep_binary and self.binary:
            words.append(q(self.binary))
        commands = [c for c in (w.kill_command() for w in self._workers) if c is not None]
        if words:
            commands.append(f"rm -rf -- {' '.join(words)}")
        if commands and not conn.is_closed():
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.run("; ".join(commands), check=False), 10)
        for worker in self._workers:
            worker.close()
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 5)
