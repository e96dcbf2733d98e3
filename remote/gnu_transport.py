"""The GNU Parallel transport's hosts: the run's directory, files and servers on each.

For users who already reach their machines through GNU Parallel. A ``GnuRun`` is one
``settings.parallel.remote`` for a run (the executor keeps one per distinct record).
tea prepares each host over ssh itself (the sshlogins' own ssh command, through one
master connection per host), and GNU Parallel runs the branches (``remote.gnu_batch``)::

    first batch:  setup, on every host at once: private run dir, dead runs swept, uname -m
    each batch:   ship what each host lacks (binary, scripts, program, shared state,
                  large tasks) as one tar stream, and start its server unless it runs
    close():      every server killed, then the run dir removed (unless cleanup: false),
                  the ssh masters ended, the local stage removed

A host that cannot be reached is out for the batch, with one WARNING per run (logger
``tea.remote``); it is tried again at the next batch. ``traffic`` counts what each
host is sent for branches (not the binary).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from remote.config import HostSpec, RemoteSettings, forwarded_env
from remote.errors import AllHostsDown, RemoteSetupError
from remote.gnu_parallel import (
    CLIENT,
    CLIENT_SCRIPT,
    SERVE,
    SERVE_SCRIPT,
    cancel_script,
    host_words,
    login_line,
    remove_script,
    setup_script,
    ship_script,
    ssh_command,
    stop_script,
)
from remote.local_files import Basefile, Deployment, check_key_files, resolve_deployment
from remote.payload import Batch, Traffic
from remote.scripts import from_home

__all__ = ["GnuRun"]

log = logging.getLogger("tea.remote")
_T = TypeVar("_T")
_SSH_FAILED = 255
_FRESH = 60.0
"""Seconds a server found running is trusted to run still (it leaves after 300 s idle)."""
_SETUP_PROBLEMS = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                   "Permission denied", "No ECDSA host key", "No ED25519 host key", "host key for")
"""What OpenSSH says when no other host can help: a key to trust, a login that fails."""


class GnuRun:
    """The hosts of one ``RemoteSettings`` under GNU Parallel, for the executor's run.

    Thread-safe: batches (nested fan-outs) may prepare and run at once."""

    def __init__(self, settings: RemoteSettings, warned: set[str], traffic: Traffic) -> None:
        if shutil.which("parallel") is None:
            raise RemoteSetupError("transport gnu_parallel needs GNU Parallel on this machine",
                                   hint="install it (apt-get install parallel) or use transport: ssh")
        check_key_files(settings)
        self.settings = settings
        self.deployment: Deployment = resolve_deployment(settings)
        self.traffic = traffic
        self.env = forwarded_env(settings.env)
        self.stage = Path(tempfile.mkdtemp(prefix="tea-gnu-"))
        # Short: a ControlPath must fit a socket address (about 100 bytes).
        self.control = Path(tempfile.mkdtemp(prefix="tea-cm-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.ssh = ssh_command(settings, self.control)
        self.run_dir = f"{from_home(settings.workdir).rstrip('/') or '/'}/tea-run.{secrets.token_hex(6)}"
        self.arch: dict[str, str] = {}
        """Hosts set up for the run, by name: their architecture."""
        self.lost: dict[str, str] = {}
        """Hosts out of the current batches, by name: why."""
        self.counter = itertools.count(1)
        self._shipped: set[tuple[str, str]] = set()
        self._served: dict[str, float] = {}
        """When each host's server was last found running (``time.monotonic``)."""
        self._warned = warned
        self._lock = threading.Lock()
        self._warn_lock = threading.Lock()  # warnings come from host threads while _lock is held
        self._files_lock = threading.RLock()  # two lost hosts may rewrite one sshloginfile at once

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        return self.settings.hosts

    def live(self) -> list[HostSpec]:
        """The hosts branches may go to now."""
        return [h for h in self.hosts if h.name in self.arch and h.name not in self.lost]

    def login_key(self, host: HostSpec) -> str:
        """How GNU Parallel names ``host`` (joblog, ``$PARALLEL_SSHLOGIN``): its sshlogin, no slots."""
        return login_line(host, self.ssh).split("/", 1)[1].replace(",,", ",")

    def loginfile(self, hosts: list[HostSpec], name: str, cap: int | None = None) -> Path:
        """Write (or rewrite: GNU Parallel re-reads it) the sshloginfile ``name``."""
        path = self.stage / name
        slots = _scaled([h.slots for h in hosts], cap)
        lines = [login_line(h, self.ssh, n) for h, n in zip(hosts, slots, strict=True) if n > 0]
        partial = path.with_name(path.name + ".part")
        with self._files_lock:
            partial.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            partial.replace(path)  # never half a file
        return path

    def refresh(self, files: list[tuple[str, int | None]]) -> None:
        """Rewrite the sshloginfiles ``files`` (name, slot cap) for the hosts still live;
        one writer at a time, so the last file written names the last live set."""
        with self._files_lock:
            hosts = self.live()
            for name, cap in files:
                self.loginfile(hosts, name, cap)

    def warn(self, host: str, what: str) -> None:
        """Say on the log, once per host per run, why a host does not take branches."""
        with self._warn_lock:
            if host in self._warned:
                return
            self._warned.add(host)
        log.warning("remote host %s %s", host, what)

    def lose(self, host: str, why: str, verb: str = "was lost") -> None:
        self.lost[host] = why
        self._served.pop(host, None)  # its server is to be found (or started) again
        self.warn(host, f"{verb}: {why}; its branches run on the other hosts")

    def preflight(self) -> None:
        """Set every host up now (connect, private run dir, architecture): raises
        ``AllHostsDown`` when none answers, ``RemoteSetupError`` when one cannot be used."""
        with self._lock:
            self.lost.clear()
            self._setup()
            for host in self.live():
                self.deployment.binary_for(self.arch[host.name], host.name)
            if not self.live():
                raise AllHostsDown(f"no host can be used:\n{self._report()}")

    def prepare(self, batch: Batch, big: dict[str, str]) -> None:
        """Ready every host for ``batch`` (``big``: task files too large for a command line,
        by id): set up hosts new to the run (or lost before), ship what they lack, start
        servers. Raises ``AllHostsDown`` or ``RemoteSetupError``."""
        with self._lock:
            self.lost.clear()
            self._setup()
            files = {**self._batch_files(batch), **{f"tasks/{i}.json": text for i, text in big.items()}}
            _each(self.live(), lambda host: self._ship(host, files))
            if not self.live():
                raise AllHostsDown(f"no host left to run the branches; every host is down:\n{self._report()}")

    def _report(self) -> str:
        return "\n".join(f"  {h.name}: {self.lost.get(h.name, 'not set up')}" for h in self.hosts)

    def _ssh(self, host: HostSpec, script: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run([*self.ssh, *host_words(host), script], input=data, capture_output=True,
                                  timeout=max(60.0, self.settings.connect_timeout * 6), check=False)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, _SSH_FAILED, b"", f"no answer within {exc.timeout:g}s".encode())

    def _failed(self, host: HostSpec, done: subprocess.CompletedProcess[bytes], what: str) -> None:
        """Say why ``host`` failed: fatal (``RemoteSetupError``) when no other host can help."""
        said = done.stderr.decode(errors="replace").strip()
        last = said.splitlines()[-1] if said else f"exit {done.returncode}"
        if done.returncode == _SSH_FAILED and any(p in said for p in _SETUP_PROBLEMS):
            raise RemoteSetupError(f"{host.name}: {last}", host=host.name,
                                   hint="trust the host's key (ssh-keyscan, after checking it) and check the "
                                   "login: ssh " + " ".join(host_words(host)) + " true")
        self.lose(host.name, f"{what}: {last}", verb="is unavailable")

    def _setup(self) -> None:
        todo = [h for h in self.hosts if h.name not in self.arch]
        script = setup_script(self.settings, self.run_dir)
        for host, done in zip(todo, _each(todo, lambda h: self._ssh(h, script)), strict=True):
            if done.returncode == 0 and done.stdout.strip():
                self.arch[host.name] = done.stdout.decode().split()[-1]
            else:
                self._failed(host, done, "cannot connect")

    def _batch_files(self, batch: Batch) -> dict[str, str]:
        """The batch's program, secrets, shared states and environment, by path in the run dir."""
        key, payload = batch.program
        files: dict[str, str] = {}
        if payload.get("kind") == "pickle":
            files[f"programs/{key}/program.pickle"] = payload["data"]
        else:
            files.update({f"programs/{key}/{n}": text for n, text in payload.get("files", {}).items()})
        if payload.get("secrets"):
            files[f"programs/{key}/secrets.json"] = json.dumps(payload["secrets"])
        for state in batch.shared_states():
            files[f"states/{state.key}.json"] = state.text
        if self.env:
            files["env.json"] = json.dumps(self.env)
        return files

    def _ship(self, host: HostSpec, files: dict[str, str]) -> None:
        """Send ``host`` what it lacks of ``files`` (and the binary, scripts), start its server."""
        binary = self.deployment.binary_for(self.arch[host.name], host.name)
        wanted = {CLIENT: CLIENT_SCRIPT, SERVE: SERVE_SCRIPT, **files}
        new = {name: text for name, text in wanted.items() if (host.name, name) not in self._shipped}
        tea = list(self.deployment.command) or [f"./bin/{binary.remote_name if binary else ''}"]
        send_binary = binary is not None and (host.name, "bin") not in self._shipped
        if not new and not send_binary and time.monotonic() - self._served.get(host.name, -_FRESH) < _FRESH:
            return  # nothing to send, and its server answered a moment ago: no round trip
        stream, size = _tar(new, binary if send_binary else None)
        done = self._ssh(host, ship_script(self.run_dir, self.login_key(host), host.slots, tea), stream)
        if done.returncode != 0:
            self._failed(host, done, "cannot start tea there")
            return
        self.traffic.add(host.name, size)
        self._served[host.name] = time.monotonic()
        self._shipped.update((host.name, name) for name in [*new, *(["bin"] if send_binary else [])])

    def cancel(self, idents: list[str], hosts: list[str] | None = None) -> None:
        """Kill the branches of jobs ``idents`` on ``hosts`` (every host reached when ``None``)."""
        if not idents:
            return
        targets = [h for h in self.hosts if h.name in self.arch and (hosts is None or h.name in hosts)]
        _each(targets, lambda h: self._ssh(h, cancel_script(self.run_dir, self.login_key(h), idents)))

    def close(self) -> None:
        """Kill every server, remove the run's directory (unless ``cleanup: false``), end the
        ssh masters, remove the stage."""
        try:
            reached = [h for h in self.hosts if h.name in self.arch]
            _each(reached, lambda h: self._ssh(h, stop_script(self.run_dir, self.login_key(h))))
            if self.settings.cleanup:  # after every host's stop: a shared file system holds all
                _each(reached, lambda h: self._ssh(h, remove_script(self.run_dir)))
            _each(reached, lambda h: subprocess.run([*self.ssh, "-O", "exit", *host_words(h)],
                                                    capture_output=True, timeout=10, check=False))
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)
            shutil.rmtree(self.control, ignore_errors=True)


def _each(hosts: list[HostSpec], work: Callable[[HostSpec], _T]) -> list[_T]:
    """``work`` on every host at once; the answers in order."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(hosts)), thread_name_prefix="tea-gnu-host") as pool:
        return list(pool.map(work, hosts))


def _tar(files: dict[str, str], binary: Basefile | None) -> tuple[bytes, int]:
    """A tar stream of ``files`` (text) and ``binary`` (as bin/NAME); its size without the binary."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        size = buffer.tell()
        if binary is not None:
            info = tar.gettarinfo(str(binary.path), arcname=f"bin/{binary.remote_name}")
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o700, 0, 0, "", ""
            with binary.path.open("rb") as handle:
                tar.addfile(info, handle)
    stream = buffer.getvalue()
    return stream, size


def _scaled(slots: list[int], cap: int | None) -> list[int]:
    """Each host's jobs at once, so that together they are at most ``cap``."""
    total = sum(slots)
    if cap is None or cap >= total:
        return slots
    out, left = [], cap
    for n in slots:
        share = min(left, max(1, n * cap // total))
        out.append(share)
        left -= share
    return out
