"""The direct SSH transport: one asyncssh connection per host, and its resident worker.

``HostSession.open()`` does, in order, over a single connection kept for the run::

    connect (host key checked against known_hosts; keepalive on)
      └─ one shell round trip: mkdir cache, mktemp -d workdir (mode 700), uname -m,
         sha256 of the cached binary
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
import hashlib
import os
import secrets
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from remote.bundle import default_basefile
from remote.channel import HostDown, RemoteSetupError, WorkerChannel
from remote.config import RemoteSettings
from remote.hosts import HostSpec

__all__ = ["Basefile", "HostSession", "check_key_files", "resolve_basefile"]

_ELF_MACHINES = {0x03: "i686", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64"}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686"}


@dataclass(frozen=True, slots=True)
class Basefile:
    """The local binary to ship, with its SHA-256 and target architecture."""

    path: Path
    sha256: str
    arch: str | None

    @classmethod
    def from_path(cls, path: Path) -> Basefile:
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise RemoteSetupError(
                f"basefile {path} {what}",
                hint="build the binary with `tea bundle -o dist/tea` and set "
                "settings.parallel.remote.basefile to the file",
            )
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            head = handle.read(20)
            digest.update(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        arch = None
        if head[:4] == b"\x7fELF":
            machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
            arch = _ELF_MACHINES.get(machine, "unknown")
        return cls(path, digest.hexdigest(), arch)

    @property
    def remote_name(self) -> str:
        return f"tea-{self.sha256[:16]}"


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


def _q(word: str) -> str:
    return shlex.quote(word)


def check_key_files(settings: RemoteSettings) -> None:
    """``identity_file`` and ``known_hosts`` must be readable files: say so before connecting."""
    for key in ("identity_file", "known_hosts"):
        value = getattr(settings, key)
        if value is None:
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            problem = "is a directory, not a file"
        elif not path.exists():
            problem = "does not exist"
        elif not os.access(path, os.R_OK):
            problem = "cannot be read"
        else:
            continue
        hint = (
            "point it at your private key, or leave it out to use ssh's defaults"
            if key == "identity_file"
            else f"trust each host once, after checking its fingerprint: "
            f"ssh-keyscan -p PORT HOST >> {path}"
        )
        raise RemoteSetupError(f"settings.parallel.remote.{key}: {path} {problem}", hint=hint)


class HostSession:
    """One host for one run: connection, private workdir, binary and resident worker.

    Used from the executor's event loop only. ``dead`` is set once the connection is
    gone; a new session is then needed for that host.
    """

    def __init__(self, spec: HostSpec, settings: RemoteSettings, basefile: Basefile,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.spec = spec
        self.settings = settings
        self.basefile = basefile
        self.env = env
        self.workdir: str | None = None
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
    def binary(self) -> str:
        return f"{self.settings.cache_dir.rstrip('/')}/{self.basefile.remote_name}"

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
        s = self.settings
        binary = _q(self.binary)
        script = (
            f"umask 077; mkdir -p -- {_q(s.workdir)} {_q(s.cache_dir)} || exit 3; "
            f"wd=$(mktemp -d {_q(s.workdir.rstrip('/') + '/tea-run.XXXXXXXXXX')}) || exit 4; "
            'printf "wd=%s\\narch=%s\\n" "$wd" "$(uname -m)"; '
            f"if [ -f {binary} ]; then printf 'sha=%s\\n' "
            f'"$( (sha256sum {binary} 2>/dev/null || shasum -a 256 {binary}) | cut -d" " -f1)"; fi'
        )
        assert self._conn is not None
        done = await self._conn.run(script, check=False, timeout=self._timeout)
        stdout, stderr = str(done.stdout or ""), str(done.stderr or "").strip()
        if done.exit_status != 0:
            what = {3: f"cannot create {s.workdir} or {s.cache_dir}",
                    4: f"cannot create a private workdir under {s.workdir}"}  # fmt: skip
            message = what.get(done.exit_status or 0, f"preparing the host failed "
                               f"(exit {done.exit_status})")  # fmt: skip
            raise HostDown(f"{message}: {stderr}", host=self.name, stderr_tail=stderr)
        facts = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
        self.workdir = facts["wd"]
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
        assert self._conn is not None
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
        command = (
            f"cd {_q(self.workdir)} && exec {_q(self.binary)} worker --slots {self.spec.slots}"
        )
        try:
            worker = await WorkerChannel.start(self._conn, self.name, command,
                                               binary=self.binary, env=self.env,
                                               timeout=self._timeout)  # fmt: skip
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
        if remove and not self.settings.keep_binary:
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
