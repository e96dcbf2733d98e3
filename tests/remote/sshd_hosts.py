"""Real OpenSSH test hosts for the remote backend's tests and benchmarks.

``SshCluster.start(root, n)`` starts ``n`` sshd processes on 127.0.0.2, 127.0.0.3 ...
(one free port shared by all), each with its own generated host key, plus one
client key, a generated ``known_hosts`` and a test user whose shell is ``/bin/sh``.
Each sshd is the first process of its own PID namespace
(``unshare --pid --fork --kill-child --mount-proc``), so killing it ends every
session it spawned, like a host going down.

Faults and how real they are:
- ``kill(host)``: real. The namespace dies; open connections reset, new ones are refused.
- ``freeze(host)``/``thaw(host)``: a cut link, emulated. Every process of the host
  gets SIGSTOP: TCP stays up (the kernel still ACKs) but nothing answers, which is
  what a black-holed link looks like once a connection exists; new connections
  complete the TCP handshake and then time out waiting for the SSH banner.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TEST_USER", "SshCluster", "SshHost", "ensure_test_user", "runtime_for_test_user"]

TEST_USER = "teatest"
TEST_HOME = Path("/var/lib/tea-test-home")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[2]


def ensure_test_user() -> pwd.struct_passwd:
    """Create the unprivileged test user (shell /bin/sh, unlocked for key logins) once."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    # '*' (not '!') as password: no password login, but sshd does not treat it as locked.
    result = subprocess.run(
        ["useradd", "--system", "--home-dir", str(TEST_HOME), "--create-home",
         "--shell", "/bin/sh", "--password", "*", TEST_USER],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if result.returncode not in (0, 9):  # 9: created meanwhile by a parallel test worker
        raise RuntimeError(f"useradd {TEST_USER} failed: {result.stderr.strip()}")
    return pwd.getpwnam(TEST_USER)


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, timeout=30, capture_output=True,
    )


def _free_port(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        ok = True
        for address in addresses[1:]:
            with socket.socket() as other:
                try:
                    other.bind((address, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no port free on every test address")


def _wait_banner(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1) as conn:
                conn.settimeout(2)
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"sshd on {address}:{port} did not answer within {timeout}s")


@dataclass
class SshHost:
    """One test host: an sshd in its own PID namespace."""

    address: str
    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    frozen: list[int] = field(default_factory=list)

    @property
    def login(self) -> str:
        return f"{TEST_USER}@{self.address}:{self.port}"

    @property
    def root_login(self) -> str:
        """Root on this host: for tests whose branches write to the driver's (root-only) tmp dirs."""
        return f"root@{self.address}:{self.port}"

    def start(self, authorized_keys: Path) -> None:
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.address}\n"
            f"HostKey {self.dir / 'host_key'}\nPidFile none\n"
            f"AuthorizedKeysFile {authorized_keys}\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            f"AllowUsers {TEST_USER} root\nSubsystem sftp internal-sftp\n"
            "MaxSessions 100\nMaxStartups 100:30:200\nLogLevel ERROR\nUseDNS no\n"
        )
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
             SSHD, "-D", "-e", "-f", str(config)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        _wait_banner(self.address, self.port, timeout=15)

    def _init_pid(self) -> int | None:
        """The sshd listener: the first process of the host's PID namespace."""
        if self.proc is None:
            return None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int(children.read_text().split()[0])
        return None

    def _namespace_pids(self) -> list[int]:
        """Every process in this host's PID namespace (the sshd and its sessions)."""
        init = self._init_pid()
        with contextlib.suppress(OSError, TypeError):
            ns = os.readlink(f"/proc/{init}/ns/pid")
            pids = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    with contextlib.suppress(OSError):
                        if os.readlink(entry / "ns" / "pid") == ns:
                            pids.append(int(entry.name))
            return sorted(pids)
        return []

    def session_processes(self) -> list[str]:
        """``pid command`` of every live process on the host but its sshd listener."""
        init = self._init_pid()
        found = []
        for pid in self._namespace_pids():
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if pid != init and state != "Z":  # a zombie runs nothing
                    found.append(f"{pid} {command.decode(errors='replace').strip()}")
        return found

    def kill(self) -> None:
        """The host dies: SIGKILL its namespace (``--kill-child`` takes the sshd and sessions)."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.proc.kill()
            self.proc.wait(timeout=15)

    def freeze(self) -> None:
        """Cut the link (emulated): stop every process of the host, listener first."""
        for _ in range(2):  # a second pass catches a session forked during the first
            for pid in self._namespace_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    self.frozen.append(pid)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen.clear()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class SshCluster:
    """Several test hosts sharing one client key, known_hosts and test user."""

    root: Path
    hosts: list[SshHost]
    client_key: Path
    known_hosts: Path
    uid: int
    gid: int

    @classmethod
    def start(cls, root: Path, count: int = 3) -> SshCluster:
        user = ensure_test_user()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        client_key = root / "id_ed25519"
        _keygen(client_key, "tea-test-client")
        authorized = root / "authorized_keys"
        shutil.copy(client_key.with_suffix(".pub"), authorized)
        os.chmod(authorized, 0o644)
        addresses = [f"127.0.0.{i + 2}" for i in range(count)]
        port = _free_port(addresses)
        hosts = []
        lines = []
        for address in addresses:
            host_dir = root / f"host-{address}"
            host_dir.mkdir()
            _keygen(host_dir / "host_key", f"host-{address}")
            public = (host_dir / "host_key.pub").read_text().split()
            lines.append(f"[{address}]:{port} {public[0]} {public[1]}\n")
            hosts.append(SshHost(address, port, host_dir))
        known_hosts = root / "known_hosts"
        known_hosts.write_text("".join(lines))
        cluster = cls(root, hosts, client_key, known_hosts, user.pw_uid, user.pw_gid)
        try:
            for host in hosts:
                host.start(authorized)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def stop(self) -> None:
        for host in self.hosts:
            host.kill()

    def user_dir(self, name: str) -> Path:
        """A fresh directory under the cluster root that the test user owns (mode 700)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o700)
        return path

    def remote_settings(self, work: Path, cache: Path, **extra: object) -> dict[str, object]:
        """A ``settings.parallel.remote`` mapping for these hosts."""
        settings: dict[str, object] = {
            "hosts": [h.login for h in self.hosts],
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "workdir": str(work),
            "cache_dir": str(cache),
            "connect_timeout": 3,
            "keepalive_seconds": 1,
        }
        settings.update(extra)
        return settings


def _needed_distributions() -> list[importlib.metadata.Distribution]:
    """tea's runtime dependencies, recursively (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    # The distribution that holds the tea package (its name is the project's, not "tea").
    own = importlib.metadata.packages_distributions().get("tea", ["tea"])[0]
    stack = list(importlib.metadata.requires(own) or [])
    while stack:
        requirement = stack.pop()
        if "extra ==" in requirement:
            continue
        name = re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name in found:
            continue
        try:
            found[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        stack.extend(found[name].requires or [])
    return list(found.values())


def runtime_for_test_user(root: Path) -> tuple[str, str]:
    """A Python the test user may run, and a PYTHONPATH that gives it this checkout.

    The checkout and the virtualenv may sit where the test user cannot read (under
    /root, or a mode-700 temp dir), so this copies tea's packages and the files of
    the distributions it needs into ``root/runtime``, readable by everyone, and
    uses the system Python of the same version.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None:
        raise RuntimeError(f"no system {version} for the test user to run (scripts/test-deps.sh installs it)")
    target = root / "runtime"
    for package in ("tea", "executors", "remote"):
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    for dist in _needed_distributions():
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or "__pycache__" in file.parts or not source.is_file():
                continue
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / file)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return system, str(target)
