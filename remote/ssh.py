"""The direct SSH transport: one asyncssh connection per host, and its resident worker.

``HostSession.open()`` does, in order, over a single connection kept for the run::

    connect (host key checked against known_hosts; keepalive on)
      └─ one shell round trip: mkdir cache, mktemp -d workdir (mode 700), uname -m,
         sha256 of the cached binary; both directories made absolute (a relative
         ``cache_dir`` or ``workdir`` is relative to the remote home, where the
         session starts, not to the workdir the worker later runs in)
           └─ SFTP upload of the binary only when that hash differs (temp name, then rename)
                └─ exec <binary> worker  ◄─ hello line (protocol, version, build, pgid)

then ``worker()`` hands out the running ``WorkerChannel`` (``remote.channel``). A
worker stopped because a branch on it timed out or was cancelled
(``stop_worker``) has its process group killed over the same connection, and the
next ``worker()`` starts a fresh one in the same workdir. ``close()`` kills every
worker's group and removes the workdir in one round trip (unless ``cleanup:
false``), so nothing a branch started outlives the run.

Errors are translated here: ``RemoteSetupError`` (authentication, host key, basefile,
architecture, a missing key file: the fan-out fails fast), ``HostDown`` (refused,
unresolvable, timed out, lost: the branch moves to another host). Every word sent
to a shell goes through ``shlex.quote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import socket
from pathlib import Path
from typing import Any

import asyncssh

from remote.channel import WorkerChannel
from remote.config import HostSpec, RemoteSettings
from remote.errors import HostDown, RemoteSetupError
from remote.local_files import Basefile
from remote.payload import Traffic

__all__ = ["HostSession"]

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686"}


def _q(word: str) -> str:
    return shlex.quote(word)


def _from_home(path: str) -> str:
    """``path`` for a shell started in the remote home: ``~/x`` is ``x`` (quoting would
    keep the tilde from expanding)."""
    if path == "~":
        return "."
    return (path[2:] or ".") if path.startswith("~/") else path


class HostSession:
    """One host for one run: connection, private workdir, binary and resident worker.

    Used from the executor's event loop only. ``dead`` is set once the connection is
    gone; a new session is then needed for that host.
    """

    def __init__(
        self, spec: HostSpec, settings: RemoteSettings, basefile: Basefile, env: dict[str, str], traffic: Traffic
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.basefile = basefile
        self.env = env
        self.traffic = traffic
        self.workdir: str | None = None
        """The run's private directory on the host (absolute), once prepared."""
        self.binary: str | None = None
        """Where the tea binary sits on the host (absolute), once prepared."""
        self.uploaded = False
        self.dead: HostDown | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
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
        self._conn = await self._connect()
        try:
            facts = await self._prepare()
            self._check_arch(facts.get("arch", ""))
            if facts.get("sha") != self.basefile.sha256:
                await self._upload_binary()
            self._worker = await self._start_worker()
        except BaseException:
            await self.close(remove=True)
            raise

    async def _connect(self) -> asyncssh.SSHClientConnection:
        s = self.settings
        known_hosts = str(Path(s.known_hosts).expanduser())
        options: dict[str, Any] = {
            "known_hosts": known_hosts,
            "connect_timeout": s.connect_timeout,
            "login_timeout": s.connect_timeout,
            "keepalive_interval": s.keepalive_seconds,
            "keepalive_count_max": 3,
        }
        if self.spec.port:
            options["port"] = self.spec.port
        if self.spec.user:
            options["username"] = self.spec.user
        key = str(Path(s.identity_file).expanduser()) if s.identity_file else None
        if key:
            options["client_keys"] = [key]
            options["agent_path"] = None
        try:
            return await asyncssh.connect(self.spec.hostname, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            port = self.spec.port or 22
            raise RemoteSetupError(
                f"the host key of {self.name} is not trusted: it is unknown or has changed "
                f"since it was recorded in {known_hosts} ({exc.reason})",
                host=self.name,
                hint=f"check the key with the host's owner, then trust it: "
                f"ssh-keyscan -p {port} {self.spec.hostname} >> {known_hosts}",
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise RemoteSetupError(
                f"authentication failed on {self.name} as {self.spec.user or 'the default user'} "
                f"with key {key or 'from ~/.ssh or the agent'}",
                host=self.name,
                hint="check identity_file and the host's authorized_keys",
            ) from exc
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise HostDown(f"cannot connect: {self._why(exc)}", host=self.name) from exc

    def _why(self, exc: BaseException) -> str:
        """A connect failure in words a user can act on."""
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve the host name {self.spec.hostname!r} ({exc.strerror})"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused on port {self.spec.port or 22}"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.settings.connect_timeout:g}s"
        return str(exc) or type(exc).__name__

    async def _prepare(self) -> dict[str, str]:
        """Create the directories and learn the host's facts (``wd``, ``bin``, ``arch``, ``sha``)."""
        workdir, cache = _from_home(self.settings.workdir), _from_home(self.settings.cache_dir)
        script = (
            f"umask 077; mkdir -p -- {_q(workdir)} {_q(cache)} || exit 3; "
            f"cache=$(cd -- {_q(cache)} && pwd -P) || exit 3; "
            f"wd=$(mktemp -d {_q(workdir.rstrip('/') + '/tea-run.XXXXXXXXXX')}) && "
            'wd=$(cd -- "$wd" && pwd -P) || exit 4; '
            f'bin="$cache"/{_q(self.basefile.remote_name)}; '
            'printf "wd=%s\\nbin=%s\\narch=%s\\n" "$wd" "$bin" "$(uname -m)"; '
            """if [ -f "$bin" ]; then printf 'sha=%s\\n' """
            """"$( (sha256sum "$bin" 2>/dev/null || shasum -a 256 "$bin") | cut -d" " -f1)"; fi"""
        )
        assert self._conn is not None
        done = await self._conn.run(script, check=False, timeout=self._timeout)
        stdout, stderr = str(done.stdout or ""), str(done.stderr or "").strip()
        if done.exit_status != 0:
            s = self.settings
            what = {
                3: f"cannot create {s.workdir} or {s.cache_dir}",
                4: f"cannot create a private workdir under {s.workdir}",
            }
            message = what.get(done.exit_status or 0, f"preparing the host failed (exit {done.exit_status})")
            # A directory that cannot be created will not appear later in the run.
            permanent = done.exit_status in what
            raise HostDown(f"{message}: {stderr}", host=self.name, stderr_tail=stderr, permanent=permanent)
        facts = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
        self.workdir, self.binary = facts["wd"], facts["bin"]
        return facts

    def _check_arch(self, remote: str) -> None:
        remote = _ARCH_ALIASES.get(remote, remote)
        if self.basefile.arch and remote and self.basefile.arch != remote:
            raise RemoteSetupError(
                f"basefile {self.basefile.path} is built for {self.basefile.arch}, "
                f"but {self.name} is {remote}",
                host=self.name,
                hint="build the binary on (or for) the hosts' architecture with `tea bundle`",
            )

    async def _upload_binary(self) -> None:
        assert self._conn is not None and self.binary is not None
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
        assert self._conn is not None and self.workdir is not None and self.binary is not None
        command = f"cd {_q(self.workdir)} && exec {_q(self.binary)} worker --slots {self.spec.slots}"
        try:
            worker = await WorkerChannel.start(
                self._conn,
                self.name,
                command,
                binary=self.binary,
                env=self.env,
                timeout=self._timeout,
                traffic=self.traffic,
            )
        except (OSError, asyncssh.Error) as exc:
            raise HostDown(f"cannot start the worker: {self._why(exc)}", host=self.name) from exc
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
            words.append(_q(self.workdir))
        if remove and not self.settings.keep_binary and self.binary:
            words.append(_q(self.binary))
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
