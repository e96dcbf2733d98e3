"""The direct SSH transport: one asyncssh connection and one resident worker per host.

``HostSession.open()`` does, in order, over a single connection kept for the run::

    connect (host key checked against known_hosts; keepalive on)
      └─ one shell round trip: mkdir cache, mktemp -d workdir (mode 700), uname -m,
         sha256 of the cached binary
           └─ SFTP upload of the binary only when that hash differs (temp name, then rename)
                └─ exec <binary> worker  ◄─ hello line (protocol, version, build)

then ``run()`` writes one JSON task line and awaits its result line; ``close()``
ends the worker and removes the workdir (unless ``cleanup: false``).

Errors are translated here: ``RemoteSetupError`` (authentication, host key, basefile,
architecture: the fan-out fails fast), ``HostDown`` (refused, timed out, lost: the
branch moves to another host). Every word sent to a shell goes through ``shlex.quote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import shlex
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from remote.config import RemoteSettings
from remote.hosts import HostSpec
from remote.worker import PROTOCOL
from tea.errors import BranchError, WorkerDied

__all__ = ["Basefile", "HostDown", "HostSession", "RemoteSetupError"]

_STDERR_LINES = 20
_ELF_MACHINES = {0x03: "i686", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64"}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686"}


class RemoteSetupError(BranchError):
    """A configuration problem no other host can fix (auth, host key, basefile): fail fast."""


class HostDown(WorkerDied):
    """A host that cannot be reached or was lost; its branches go to other hosts."""


@dataclass(frozen=True, slots=True)
class Basefile:
    """The local binary to ship, with its SHA-256 and target architecture."""

    path: Path
    sha256: str
    arch: str | None

    @classmethod
    def from_path(cls, path: Path) -> Basefile:
        if not path.is_file():
            raise RemoteSetupError(
                f"basefile {path} does not exist",
                hint="build it with `tea bundle -o dist/tea` and set "
                "settings.parallel.remote.basefile",
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


def _q(word: str) -> str:
    return shlex.quote(word)


class HostSession:
    """One host for one run: connection, private workdir, binary and resident worker.

    Used from the executor's event loop only. ``dead`` is set once the worker or
    connection is gone; a new session is then needed for that host.
    """

    def __init__(self, spec: HostSpec, settings: RemoteSettings, basefile: Basefile,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.spec = spec
        self.settings = settings
        self.basefile = basefile
        self.env = env
        self.workdir: str | None = None
        self.hello: dict[str, Any] = {}
        self.uploaded = False
        self.dead: HostDown | None = None
        self.fault_recorded = False
        self._conn: asyncssh.SSHClientConnection | None = None
        self._proc: asyncssh.SSHClientProcess[str] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loaded: set[str] = set()
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._readers: list[asyncio.Task[None]] = []
        self._seq = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def binary(self) -> str:
        return f"{self.settings.cache_dir.rstrip('/')}/{self.basefile.remote_name}"

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    async def open(self) -> None:
        """Connect, prepare the workdir and binary, start the worker (raises on failure)."""
        self._conn = await self._connect()
        try:
            facts = await self._prepare()
            self._check_arch(facts.get("arch", ""))
            if facts.get("sha") != self.basefile.sha256:
                await self._upload_binary()
            await self._start_worker()
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
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, asyncio.TimeoutError):
                reason = f"no answer within {s.connect_timeout:g}s"
            raise HostDown(f"cannot connect: {reason}", host=self.name) from exc

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
        done = await self._conn.run(script, check=False, timeout=max(30, s.connect_timeout * 3))
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

    async def _start_worker(self) -> None:
        assert self._conn is not None and self.workdir is not None
        command = (
            f"cd {_q(self.workdir)} && exec {_q(self.binary)} worker --slots {self.spec.slots}"
        )
        self._proc = await self._conn.create_process(command, encoding="utf-8")
        self._readers.append(asyncio.create_task(self._read_stderr()))
        timeout = max(30.0, self.settings.connect_timeout * 3)
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
            hello = json.loads(line) if line.strip() else {}
        except (TimeoutError, ValueError, asyncssh.Error) as exc:
            raise HostDown(
                f"the worker did not start ({type(exc).__name__})",
                host=self.name, stderr_tail=self.stderr_tail(),
            ) from exc  # fmt: skip
        if hello.get("op") != "hello":
            await asyncio.sleep(0.1)  # let the stderr reader catch why it exited
            raise RemoteSetupError(
                f"{self.binary} on {self.name} is not a working tea binary",
                host=self.name,
                stderr_tail=self.stderr_tail() or line.strip()[:500],
                hint="rebuild it with `tea bundle` and check the hosts can run it",
            )
        if hello.get("protocol") != PROTOCOL:
            raise RemoteSetupError(
                f"tea {hello.get('version')} on {self.name} speaks worker protocol "
                f"{hello.get('protocol')}, this driver speaks {PROTOCOL}",
                host=self.name,
                hint="ship a binary built from the same version (`tea bundle`)",
            )
        self.hello = hello
        if self.env:
            self._write({"op": "env", "env": self.env})
        self._readers.append(asyncio.create_task(self._read_stdout()))

    def _write(self, message: dict[str, Any]) -> None:
        if self._proc is None or self.dead is not None:
            raise self.dead or HostDown("the worker is not running", host=self.name)
        try:
            self._proc.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
        except (OSError, asyncssh.Error) as exc:
            # The channel closed before the reader noticed: the host (or its link) is gone.
            self.dead = HostDown("connection lost", host=self.name, stderr_tail=self.stderr_tail() or None)
            raise self.dead from exc

    async def _read_stderr(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(asyncssh.Error, OSError):
            async for line in self._proc.stderr:
                self._stderr.append(line.rstrip("\n"))

    async def _read_stdout(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(asyncssh.Error, OSError):
            async for line in self._proc.stdout:
                message = json.loads(line)
                future = self._pending.pop(str(message.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(message["result"])
        await self._lost()

    async def _lost(self) -> None:
        """The worker's stdout ended: find out how, and fail what was pending on it."""
        status = None
        if self._proc is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(self._proc.wait_closed(), 2)
            # asyncssh reports None, not an error, when the connection itself was lost.
            status = self._proc.exit_status
            if self._proc.exit_signal:
                status = None
        await asyncio.sleep(0)  # let the stderr reader take its last lines
        reason = "connection lost" if status is None else f"worker exited with status {status}"
        self.dead = HostDown(
            f"{reason} mid-branch", host=self.name, exit_status=status,
            stderr_tail=self.stderr_tail() or None,
        )  # fmt: skip
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self.dead)
        self._pending.clear()

    def load(self, key: str, message: dict[str, Any]) -> None:
        """Send a program to the worker once (it materialises it on first use)."""
        if key not in self._loaded:
            self._write({"op": "load", "key": key, **message})
            self._loaded.add(key)

    def submit(self, key: str, task: dict[str, Any]) -> tuple[str, asyncio.Future[dict]]:
        """Send one task; returns its id and a future for its ``BranchResult`` dict."""
        self._seq += 1
        task_id = str(self._seq)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[task_id] = future
        try:
            self._write({"op": "run", "id": task_id, "key": key, "task": task})
        except BaseException:
            self._pending.pop(task_id, None)
            raise
        return task_id, future

    def cancel(self, task_id: str) -> None:
        """Ask the worker to stop a task at its next node boundary; forget its result."""
        future = self._pending.pop(task_id, None)
        if future is not None and not future.done():
            future.cancel()
        with contextlib.suppress(HostDown, asyncssh.Error, OSError):
            self._write({"op": "cancel", "id": task_id})

    async def close(self, remove: bool | None = None) -> None:
        """End the worker, then remove the workdir (and the binary unless kept)."""
        remove = self.settings.cleanup if remove is None else remove
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._proc is not None and self.dead is None:
            with contextlib.suppress(asyncssh.Error, OSError, asyncio.TimeoutError):
                self._proc.stdin.write_eof()
                await asyncio.wait_for(self._proc.wait_closed(), 10)
        words = []
        if remove and self.workdir:
            words.append(_q(self.workdir))
        if remove and not self.settings.keep_binary:
            words.append(_q(self.binary))
        if words:
            with contextlib.suppress(asyncssh.Error, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(conn.run(f"rm -rf -- {' '.join(words)}"), 10)
        for reader in self._readers:
            reader.cancel()
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), 5)
