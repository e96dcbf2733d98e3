"""pytest plugin: real sshd hosts, a shippable tea and remote settings, for any test directory.

Registered by ``tests/conftest.py`` (``pytest_plugins``), so the remote tests and the
executor contract suite (its ``remote`` backends) share one set of fixtures.

``ssh_cluster`` (one per test session, hence one per xdist worker: each picks its
own free port) starts three OpenSSH hosts (see ``tests/remote/sshd_hosts.py``). A
test that uses it gets ``HOME`` in the cluster's temp dir and no agent, so the
developer's ``~/.ssh`` is never read. ``launcher`` is the basefile most tests ship:
a two-line script that runs this checkout's Python (the frozen binary is built
once, cached, and tested in ``test_remote_bundle.py``). ``remote_settings`` gives
each test its own remote workdir and binary cache, so it can check that nothing is
left behind. Without sshd or root, every test that asks for a host is skipped.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent / "remote"))  # sshd_hosts, shared with the benchmarks

from sshd_hosts import SshCluster, runtime_for_test_user


def sshd_unavailable() -> str | None:
    """Why the sshd test hosts cannot start here, or None when they can."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        return "OpenSSH sshd is not installed (run scripts/test-deps.sh)"
    if os.geteuid() != 0:
        return "the sshd test hosts need root (PID namespaces, a test user)"
    return None


@pytest.fixture(scope="session")
def ssh_cluster() -> Iterator[SshCluster]:
    """Three real sshd hosts on 127.0.0.2-4, with keys, known_hosts and a test user."""
    reason = sshd_unavailable()
    if reason is not None:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="tea-sshd-"))
    (root / "home").mkdir()
    cluster = SshCluster.start(root, 3)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_home(ssh_cluster: SshCluster, monkeypatch: pytest.MonkeyPatch) -> SshCluster:
    """The cluster, with HOME in its temp dir and no agent for this test."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(ssh_cluster.root / "home"))
    return ssh_cluster


@pytest.fixture(autouse=True)
def _private_home_with_hosts(request: pytest.FixtureRequest) -> None:
    """``private_home`` for every test whose fixtures reach ``ssh_cluster``."""
    if "ssh_cluster" in request.fixturenames:
        request.getfixturevalue("private_home")


@pytest.fixture
def fresh_cluster(ssh_cluster: SshCluster) -> Iterator[SshCluster]:
    """Three hosts of this test's own, for tests that kill or freeze them."""
    cluster = SshCluster.start(Path(tempfile.mkdtemp(prefix="tea-sshd-", dir=ssh_cluster.root)), 3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def launcher(ssh_cluster: SshCluster) -> Path:
    """A basefile that runs this checkout's tea (a two-line script instead of the binary)."""
    python, pythonpath = runtime_for_test_user(ssh_cluster.root)
    path = ssh_cluster.root / "tea-launcher"
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={pythonpath} exec {python} -m remote._entry \"$@\"\n"
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def remote_dirs(ssh_cluster: SshCluster, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """A per-test (workdir parent, binary cache) pair owned by the test user."""
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    base = ssh_cluster.user_dir(f"t-{name}-{os.urandom(3).hex()}")
    os.chmod(base, 0o755)
    work = ssh_cluster.user_dir(f"{base.name}/work")
    cache = ssh_cluster.user_dir(f"{base.name}/cache")
    return work, cache


@pytest.fixture
def remote_settings(
    ssh_cluster: SshCluster, launcher: Path, remote_dirs: tuple[Path, Path]
) -> Callable[..., dict[str, Any]]:
    """Build ``settings.parallel.remote`` for the test hosts (keyword overrides)."""
    work, cache = remote_dirs

    def make(**extra: Any) -> dict[str, Any]:
        settings = ssh_cluster.remote_settings(work, cache, basefile=str(launcher))
        settings.update(extra)
        return settings

    return make
