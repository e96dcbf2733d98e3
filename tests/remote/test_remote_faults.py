"""Real faults on real hosts: a host killed or cut off mid fan-out, bad host keys, bad keys.

Each test that breaks a host gets hosts of its own (``fresh_cluster``). A killed
host is real (its PID namespace dies with every session); a cut link is emulated
by stopping the host's processes (see ``sshd_hosts``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sshd_hosts import SshCluster
from toy_program import ToyProgram

from executors.base import BranchTask, ParallelConfig
from remote.executor import RemoteExecutor

pytestmark = pytest.mark.timeout(120)


def _tasks(count: int, **state) -> list[BranchTask]:
    return [
        BranchTask(f"fan[{i}]", f"n{i}", "join", {"i": i, **state}, index=i, target=f"n{i}")
        for i in range(count)
    ]


def _settings(cluster: SshCluster, launcher: Path, **extra) -> dict:
    work, cache = cluster.user_dir("work"), cluster.user_dir("cache")
    settings = cluster.remote_settings(work, cache, basefile=str(launcher))
    settings.update(extra)
    return settings


def _run_while(settings: dict, tasks: list[BranchTask], fault, after: int = 2) -> list:
    """Run ``tasks``; call ``fault()`` once ``after`` results are in (branches still running)."""
    results = []
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        for result in executor.run(ToyProgram(), tasks, cfg):
            results.append(result)
            if len(results) == after:
                fault()
    return sorted(results, key=lambda r: r.index)


def _comparable(results: list) -> list:
    return [(r.branch_id, r.success, {k: v for k, v in r.state.items() if k != "pid"}) for r in results]


def _victim_is_busy(cluster: SshCluster, victim_index: int) -> None:
    # The victim must hold branches when it dies: it has a worker child under its sshd.
    deadline = time.monotonic() + 10
    while len(cluster.hosts[victim_index]._namespace_pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_host_killed_mid_fanout_the_run_completes_on_the_others(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=2)
    tasks = [*_tasks(2), *_tasks(10, sleep=0.6)[2:]]
    victim = fresh_cluster.hosts[1]

    def kill() -> None:
        _victim_is_busy(fresh_cluster, 1)
        victim.kill()

    results = _run_while(settings, tasks, kill)
    assert not victim.alive
    assert all(r.success for r in results), [r.error for r in results if r.error]
    reference = _run_while(_settings(fresh_cluster, launcher, hosts=[fresh_cluster.hosts[0].login]),
                           tasks, lambda: None)
    assert _comparable(results) == _comparable(reference)


def test_link_cut_mid_fanout_the_run_completes_on_the_others(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=2, keepalive_seconds=0.5,
                         connect_timeout=2)
    tasks = [*_tasks(2), *_tasks(10, sleep=0.6)[2:]]
    victim = fresh_cluster.hosts[2]

    def cut() -> None:
        _victim_is_busy(fresh_cluster, 2)
        victim.freeze()

    try:
        results = _run_while(settings, tasks, cut)
    finally:
        victim.thaw()
    assert all(r.success for r in results), [r.error for r in results if r.error]
    assert [r.state["seen"] for r in results] == [[f"n{i}"] for i in range(10)]


def test_every_host_down_names_each_host_and_why(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=1)

    def kill_all() -> None:
        for host in fresh_cluster.hosts:
            host.kill()

    results = _run_while(settings, _tasks(8, sleep=0.3), kill_all, after=1)
    failed = [r for r in results if not r.success]
    assert failed
    for result in failed:
        assert result.error.type == "AllHostsDown"
        for host in fresh_cluster.hosts:
            assert host.login in result.error.message
        assert "cannot connect" in result.error.message or "lost" in result.error.message


def _settings_with(cluster: SshCluster, launcher: Path, tmp_path: Path, **extra) -> dict:
    return _settings(cluster, launcher, hosts=[cluster.hosts[0].login], **extra)


def test_changed_host_key_is_refused_with_how_to_trust_it(ssh_cluster, launcher, tmp_path):
    known = tmp_path / "known_hosts"
    other = ssh_cluster.hosts[1].dir / "host_key.pub"
    host = ssh_cluster.hosts[0]
    key_type, key = other.read_text().split()[:2]
    known.write_text(f"[{host.address}]:{host.port} {key_type} {key}\n")
    settings = _settings_with(ssh_cluster, launcher, tmp_path, known_hosts=str(known))
    started = time.monotonic()
    results = _run_while(settings, _tasks(3), lambda: None)
    assert time.monotonic() - started < 30
    for result in results:
        assert result.error is not None and result.error.type == "RemoteSetupError"
        assert "host key" in result.error.message and "not trusted" in result.error.message
        assert f"ssh-keyscan -p {host.port} {host.address} >> {known}" in result.error.message


def test_unknown_host_is_never_accepted_silently(ssh_cluster, launcher, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    settings = _settings_with(ssh_cluster, launcher, tmp_path, known_hosts=str(empty))
    (result,) = _run_while(settings, _tasks(1), lambda: None)
    assert result.error is not None and "ssh-keyscan" in result.error.message


def test_authentication_failure_fails_fast_naming_host_and_key(ssh_cluster, launcher, tmp_path):
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True, timeout=30)
    settings = _settings(ssh_cluster, launcher, identity_file=str(stranger))
    started = time.monotonic()
    results = _run_while(settings, _tasks(6), lambda: None)
    assert time.monotonic() - started < 30
    for result in results:
        assert result.error is not None and result.error.type == "RemoteSetupError"
        assert "authentication failed" in result.error.message
        assert str(stranger) in result.error.message


def test_a_fan_out_waits_for_no_host_that_hangs(fresh_cluster, launcher):
    fresh_cluster.hosts[0].freeze()
    try:
        settings = _settings(fresh_cluster, launcher, connect_timeout=1)
        done = threading.Event()
        results = []

        def go() -> None:
            results.extend(_run_while(settings, _tasks(6), lambda: None))
            done.set()

        threading.Thread(target=go, daemon=True).start()
        assert done.wait(60)
    finally:
        fresh_cluster.hosts[0].thaw()
    assert all(r.success for r in results)
    assert fresh_cluster.hosts[0].login not in {r.host for r in results}


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU Parallel not installed")
def test_gnu_parallel_transport_end_to_end(ssh_cluster, launcher):
    # A workdir whose parent the login user may write to: an empty directory there
    # could be removed, and it must not be.
    own = ssh_cluster.user_dir(f"gnu-{os.urandom(3).hex()}")
    work = ssh_cluster.user_dir(f"{own.name}/jobs")
    settings = _settings(ssh_cluster, launcher, transport="gnu_parallel", slots=2,
                         workdir=str(work))
    shared = {"blob": "x" * 50_000}
    tasks = [BranchTask(f"fan[{i}]", f"n{i}", "join", shared, index=i, overrides={"i": i}) for i in range(5)]
    tasks.append(BranchTask("fan[5]", "n0", "join", shared, index=5, overrides={"i": 5, "fail": "n0"}))
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        results = sorted(executor.run(ToyProgram(), tasks, cfg), key=lambda r: r.index)
        sent = executor.traffic()
    assert [r.success for r in results] == [True] * 5 + [False]
    assert [r.update["seen"] for r in results[:5]] == [[f"n{i}"] for i in range(5)]
    # The shared state is a basefile: once to every host, not once per job.
    assert set(sent) == {h.login for h in ssh_cluster.hosts}
    assert all(50_000 < count < 50_000 + 20_000 for count in sent.values()), sent
    assert {r.host for r in results} <= {f"teatest@{h.address}:{h.port}" for h in ssh_cluster.hosts}
    assert "was told to fail" in results[5].error.message
    assert "about to fail n0" in results[5].error.traceback
    # The run's directory is gone; the user's workdir itself stays, empty.
    assert work.is_dir() and sorted(p.name for p in work.rglob("*")) == []
