"""Fixtures for the remote backend: real sshd hosts, a shippable tea, remote settings.

``ssh_cluster`` (per test session) starts three OpenSSH hosts (see ``sshd_hosts``)
and points ``HOME`` at a temp dir so the developer's ``~/.ssh`` is never read.
``launcher`` is the basefile most tests ship: a two-line script that runs this
checkout's Python (the frozen binary is built once, cached, and tested in
``test_remote_bundle.py``). ``remote_settings`` gives each test its own remote
workdir and binary cache, so it can check that nothing is left behind.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The checkout first: pytest puts tests/ on sys.path, where tests/executors and
# tests/remote would otherwise pass for the real packages as namespace packages.
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from sshd_hosts import SshCluster  # noqa: E402


def _needs_sshd() -> None:
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH sshd is not installed (run scripts/test-deps.sh)")
    if os.geteuid() != 0:
        pytest.skip("the sshd test hosts need root (PID namespaces, a test user)")


@pytest.fixture(scope="session")
def ssh_cluster() -> Iterator[SshCluster]:
    """Three real sshd hosts on 127.0.0.2-4, with keys, known_hosts and a test user."""
    _needs_sshd()
    root = Path(tempfile.mkdtemp(prefix="tea-sshd-"))
    (root / "home").mkdir()
    cluster = SshCluster.start(root, 3)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME in the cluster's temp dir and no agent: the developer's ~/.ssh is never read."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    if "ssh_cluster" in request.fixturenames:  # the closure: fresh_cluster, backend too
        cluster: SshCluster = request.getfixturevalue("ssh_cluster")
        monkeypatch.setenv("HOME", str(cluster.root / "home"))


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


def _runtime_for_test_user(root: Path) -> tuple[str, str]:
    """A Python the test user may run, and a PYTHONPATH that gives it this checkout.

    The checkout and the virtualenv may sit where the test user cannot read (under
    /root, or a mode-700 temp dir), so this copies tea's packages and the files of
    the distributions it needs into ``root/runtime``, readable by everyone, and
    uses the system Python of the same version.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None:
        pytest.fail(f"no system {version} for the test user to run (scripts/test-deps.sh installs it)")
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
    python, pythonpath = _runtime_for_test_user(ssh_cluster.root)
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


