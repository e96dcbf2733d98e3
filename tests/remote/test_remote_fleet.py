"""A fleet as users set it up, on real sshd hosts: ~/.ssh/config only, installed tea, binaries per
architecture, every core of a host, and the directories of dead runs and lost hosts cleaned."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sshd_hosts import TEST_USER, SshCluster
from toy_program import ToyProgram

from executors.base import BranchTask, BreakerPolicy, ParallelConfig
from remote.config import STALE_AFTER_MINUTES
from remote.errors import RemoteSetupError
from remote.executor import RemoteExecutor

pytestmark = pytest.mark.timeout(120)


def _tasks(count: int, **state) -> list[BranchTask]:
    return [BranchTask(f"fan[{i}]", f"n{i}", "join", {"i": i, **state}, index=i, target=f"n{i}")
            for i in range(count)]


def _run(settings: dict, tasks: list[BranchTask], **config) -> list:
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings), **config)
        return sorted(executor.run(ToyProgram(), tasks, cfg), key=lambda r: r.index)


def _ssh_config(cluster: SshCluster, text: str) -> Path:
    config = Path(os.environ["HOME"]) / ".ssh" / "config"
    config.parent.mkdir(exist_ok=True)
    config.write_text(text)
    return config


def test_hosts_known_only_from_ssh_config(ssh_cluster, launcher, remote_dirs):
    """No identity_file, no known_hosts, no user or port: ~/.ssh/config says it all, per host."""
    work, _ = remote_dirs
    entries = "".join(
        f"Host fleet-{i}\n  HostName {h.address}\n  Port {h.port}\n  User {TEST_USER}\n"
        f"  IdentityFile {ssh_cluster.client_key}\n  UserKnownHostsFile {ssh_cluster.known_hosts}\n"
        for i, h in enumerate(ssh_cluster.hosts)
    )
    config = _ssh_config(ssh_cluster, entries)
    try:
        settings = {"hosts": [f"fleet-{i}" for i in range(3)], "basefile": str(launcher), "workdir": str(work)}
        results = _run(settings, _tasks(6))
    finally:
        config.unlink()
    assert all(r.success for r in results), [r.error for r in results if r.error]
    assert {r.host for r in results} == {"fleet-0", "fleet-1", "fleet-2"}


def test_the_default_known_hosts_file_is_read_and_its_absence_explained(ssh_cluster, launcher, remote_dirs):
    work, _ = remote_dirs
    settings = {"hosts": [ssh_cluster.hosts[0].login], "basefile": str(launcher), "workdir": str(work),
                "identity_file": str(ssh_cluster.client_key)}
    (result,) = _run(settings, _tasks(1))
    assert result.error is not None and "not trusted" in result.error.message
    assert "ssh-keyscan" in result.error.message and "~/.ssh/known_hosts" in result.error.message
    known = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    known.parent.mkdir(exist_ok=True)
    shutil.copy(ssh_cluster.known_hosts, known)
    try:
        (result,) = _run(settings, _tasks(1))
    finally:
        known.unlink()
    assert result.success, result.error


def test_tea_installed_on_the_hosts_runs_without_shipping_a_binary(ssh_cluster, launcher, remote_dirs):
    work, cache = remote_dirs
    settings = ssh_cluster.remote_settings(work, cache, command=str(launcher))
    results = _run(settings, _tasks(4))
    assert all(r.success for r in results), [r.error for r in results if r.error]
    assert list(cache.iterdir()) == []  # nothing was shipped


def test_a_stray_line_on_the_workers_stdout_is_not_a_reply_and_breaks_nothing(ssh_cluster, launcher, remote_dirs):
    """A host command whose wrapper prints besides tea (a background job, a login
    script): the line is kept with stderr, the branches still get their replies."""
    work, cache = remote_dirs
    wrapper = launcher.with_name("tea-noisy-launcher")
    wrapper.write_text(f"#!/bin/sh\n(sleep 0.3; echo 'not a reply') &\nexec {launcher} \"$@\"\n")
    wrapper.chmod(0o755)
    settings = ssh_cluster.remote_settings(work, cache, command=str(wrapper), hosts=[ssh_cluster.hosts[0].login])
    results = _run(settings, _tasks(3, sleep=1))
    assert all(r.success for r in results), [r.error for r in results if r.error]


def test_a_basefile_per_architecture(ssh_cluster, launcher, remote_dirs):
    work, cache = remote_dirs
    here = platform.machine()
    settings = ssh_cluster.remote_settings(work, cache, basefile={here: str(launcher)})
    assert all(r.success for r in _run(settings, _tasks(3)))
    other = ssh_cluster.remote_settings(work, cache, basefile={"riscv64": str(launcher)})
    results = _run(other, _tasks(2))
    for result in results:
        assert result.error is not None and result.error.type == "RemoteSetupError"
        assert f"no basefile for {result.error.host}, whose architecture is {here}" in result.error.message
        assert f"basefile: {{{here}: PATH}}" in result.error.message


def test_cpu_bound_branches_use_every_slot_of_a_host(ssh_cluster, remote_settings):
    settings = remote_settings(hosts=[ssh_cluster.hosts[0].login], slots=2)
    first, second = _run(settings, _tasks(2, spin=1.0))
    assert first.success and second.success
    assert first.state["pid"] != second.state["pid"]
    (a_start, a_end), (b_start, b_end) = first.state["spun"], second.state["spun"]
    assert a_start < b_end and b_start < a_end  # at the same time, in two processes


def _dead_run(work: Path, name: str, owner_pid: int, *, keep: bool = False) -> Path:
    path = work / f"tea-run.{name}"
    path.mkdir()
    (path / ".owners").write_text(f"{socket.gethostname()} {owner_pid}\n")
    if keep:
        (path / ".keep").touch()
    subprocess.run(["chown", "-R", TEST_USER, str(path)], check=True)
    then = time.time() - (STALE_AFTER_MINUTES + 5) * 60
    os.utime(path, (then, then))
    return path


@pytest.mark.parametrize("transport", ["ssh", "gnu_parallel"])
def test_dead_runs_are_swept_when_tea_connects(remote_settings, remote_dirs, transport):
    if transport == "gnu_parallel" and shutil.which("parallel") is None:
        pytest.skip("GNU Parallel not installed")
    work, _ = remote_dirs
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = _dead_run(work, "dead", gone.pid)
    kept = _dead_run(work, "kept", gone.pid, keep=True)
    alive = _dead_run(work, "alive", 1)  # the host's first process (each host has its own pids)
    assert all(r.success for r in _run(remote_settings(transport=transport), _tasks(3)))
    assert not dead.exists() and kept.exists() and alive.exists()


def test_a_lost_host_has_its_directory_removed_when_it_comes_back(fresh_cluster, launcher):
    work, cache = fresh_cluster.user_dir("work"), fresh_cluster.user_dir("cache")
    hosts = fresh_cluster.hosts[:2]
    settings = fresh_cluster.remote_settings(work, cache, basefile=str(launcher), slots=1,
                                             hosts=[h.login for h in hosts])
    config = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings),
                            circuit_breaker=BreakerPolicy(failure_threshold=50))
    with RemoteExecutor() as executor:
        assert all(r.success for r in executor.run(ToyProgram(), _tasks(4), config))
        before = {p.name for p in work.iterdir()}
        assert len(before) == 2  # one directory per host
        hosts[0].kill()
        hosts[0].start(fresh_cluster.root / "authorized_keys")  # back, with nothing of the old run
        results = list(executor.run(ToyProgram(), _tasks(8), config))
        assert all(r.success for r in results), [r.error for r in results if r.error]
        assert hosts[0].login in {r.host for r in results}  # it took branches again
        after = {p.name for p in work.iterdir()}
        assert len(after) == 2 and len(after & before) == 1  # its lost directory is gone
    assert list(work.iterdir()) == []


def test_a_missing_basefile_of_a_mapping_is_named(ssh_cluster, remote_dirs, tmp_path):
    work, cache = remote_dirs
    settings = ssh_cluster.remote_settings(work, cache, basefile={"x86_64": str(tmp_path / "nope")})
    with pytest.raises(RemoteSetupError, match="does not exist"):
        _run(settings, _tasks(1))
