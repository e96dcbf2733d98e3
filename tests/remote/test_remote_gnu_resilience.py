"""The GNU Parallel transport through the shared BatchRunner: retries, timeouts, breakers, fail_fast,
results as jobs end, a host lost mid fan-out (real sshd hosts, real GNU Parallel)."""

from __future__ import annotations

import itertools
import shutil
import time

import pytest
from sshd_hosts import SshCluster
from toy_program import ToyProgram

from executors.base import BranchTask, BreakerPolicy, ParallelConfig, RetryPolicy
from remote.executor import RemoteExecutor

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU Parallel not installed"),
]

_QUICK_RETRY = {"backoff_base_ms": 1, "backoff_max_ms": 1, "jitter": False}


def _tasks(count: int, target: str | None = None, **state) -> list[BranchTask]:
    return [BranchTask(f"fan[{i}]", f"n{i}", "join", {"i": i, **state}, index=i, target=target or f"n{i}")
            for i in range(count)]


def _config(settings: dict, **config) -> ParallelConfig:
    return ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings), **config)


def _gnu(remote_settings, ssh_cluster: SshCluster, hosts: int = 3, **extra) -> dict:
    return remote_settings(transport="gnu_parallel", hosts=[h.login for h in ssh_cluster.hosts[:hosts]], **extra)


def _run(settings: dict, tasks: list[BranchTask], **config) -> list:
    with RemoteExecutor() as executor:
        return sorted(executor.run(ToyProgram(), tasks, _config(settings, **config)), key=lambda r: r.index)


def test_a_failed_branch_is_retried(ssh_cluster, remote_settings, remote_dirs):
    work, _ = remote_dirs
    marker = work / "failed-once"
    policy = RetryPolicy(max_attempts=2, retry_on=("ConnectionError",), **_QUICK_RETRY)
    results = _run(_gnu(remote_settings, ssh_cluster), _tasks(2, fail_once=str(marker)), retry=policy)
    assert all(r.success for r in results), [r.error for r in results]
    assert sorted(r.attempts for r in results) == [1, 2]  # one failed first, then passed


def test_a_branch_past_its_timeout_fails_and_its_retry_runs(ssh_cluster, remote_settings, remote_dirs):
    work, _ = remote_dirs
    policy = RetryPolicy(max_attempts=2, retry_on=("TimeoutError",), **_QUICK_RETRY)
    tasks = _tasks(1, hang_once=str(work / "hung-once"))
    (result,) = _run(_gnu(remote_settings, ssh_cluster, hosts=1), tasks, retry=policy, timeout_seconds=2)
    assert result.success and result.attempts == 2
    (late,) = _run(_gnu(remote_settings, ssh_cluster, hosts=1), _tasks(1, hang=30), timeout_seconds=1)
    assert late.error is not None and late.error.type == "BranchTimeout" and late.error.category == "timeout"
    assert late.host == ssh_cluster.hosts[0].login


def test_a_breaker_opens_and_the_rest_never_run(ssh_cluster, remote_settings, remote_dirs):
    work, _ = remote_dirs
    ran = work / "ran"
    ran.mkdir()
    tasks = [
        BranchTask(f"fan[{i}]", "n0", "join", {}, index=i, target="flaky", overrides={"fail": "n0", "ran": str(ran)})
        for i in range(6)
    ]
    settings = _gnu(remote_settings, ssh_cluster, hosts=1, slots=1)
    results = _run(settings, tasks, circuit_breaker=BreakerPolicy(failure_threshold=2, reset_timeout_seconds=60))
    categories = [r.error.category for r in results]
    assert categories[:2] == ["error", "error"]
    assert categories[2:] == ["circuit_open"] * 4
    # GNU Parallel may have started the third before the breaker opened; no later one ran.
    assert len(list(ran.iterdir())) <= 3


def test_fail_fast_stops_the_branches_still_running(ssh_cluster, remote_settings, remote_dirs):
    work, _ = remote_dirs
    slow = [BranchTask(f"fan[{i}]", f"n{i}", "join", {}, index=i,
                       overrides={"sleep": 3, "done": str(work / f"done-{i}")}) for i in range(1, 4)]
    tasks = [BranchTask("fan[0]", "n0", "join", {"fail": "n0"}, index=0), *slow]
    results = _run(_gnu(remote_settings, ssh_cluster, hosts=1, slots=4), tasks, fail_fast=True)
    assert results[0].error is not None and results[0].error.type == "ValueError"
    assert {r.error.category for r in results[1:]} == {"cancelled"}
    time.sleep(4)  # past their sleep: stopped branches never get to their end
    assert not list(work.glob("done-*"))


def test_results_come_back_as_each_job_ends(ssh_cluster, remote_settings, remote_dirs):
    work, _ = remote_dirs
    done = work / "slow-done"
    tasks = [*_tasks(1), BranchTask("fan[1]", "n1", "join", {}, index=1, overrides={"sleep": 4, "done": str(done)})]
    with RemoteExecutor() as executor:
        results = executor.run(ToyProgram(), tasks, _config(_gnu(remote_settings, ssh_cluster, hosts=1, slots=2)))
        first = next(iter(results))
        assert first.index == 0 and first.success and not done.exists()  # before the slow one ended
        assert [r.index for r in results] == [1]


def test_a_host_lost_mid_fan_out_its_branches_run_elsewhere(fresh_cluster, launcher):
    work, cache = fresh_cluster.user_dir("work"), fresh_cluster.user_dir("cache")
    settings = fresh_cluster.remote_settings(work, cache, basefile=str(launcher), transport="gnu_parallel", slots=1)
    tasks = _tasks(9, sleep=0.5)
    victim = fresh_cluster.hosts[1]
    results = []
    with RemoteExecutor() as executor:
        for result in executor.run(ToyProgram(), tasks, _config(settings)):
            results.append(result)
            if len(results) == 2:
                victim.kill()
    assert all(r.success for r in results), [r.error for r in results if r.error]
    assert sorted(r.index for r in results) == list(range(9))
    assert all(r.attempts == 1 for r in results)  # moving to another host used no retry


def test_tea_installed_on_the_hosts_under_gnu_parallel(ssh_cluster, remote_settings, launcher, remote_dirs):
    work, _ = remote_dirs
    settings = _gnu(remote_settings, ssh_cluster, command=str(launcher))
    del settings["basefile"]
    results = _run(settings, _tasks(4))
    assert all(r.success for r in results), [r.error for r in results if r.error]
    assert not list(work.glob("tea-run.*/bin"))  # nothing was shipped... and nothing is left
    assert list(work.iterdir()) == []


def test_nothing_of_the_run_is_left_on_the_hosts(fresh_cluster, launcher):
    """A branch past its timeout (and the child process it started), the servers, the run's
    directory: all gone once the executor is closed."""
    work, cache = fresh_cluster.user_dir("work"), fresh_cluster.user_dir("cache")
    settings = fresh_cluster.remote_settings(work, cache, basefile=str(launcher), transport="gnu_parallel")
    tasks = [*_tasks(2), BranchTask("fan[2]", "n2", "join", {}, index=2, overrides={"hang": 60, "child": True})]
    results = _run(settings, tasks, timeout_seconds=2)
    assert [r.success for r in results] == [True, True, False]
    assert results[2].error is not None and results[2].error.type == "BranchTimeout"
    deadline = time.monotonic() + 15
    while any(host.session_processes() for host in fresh_cluster.hosts) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for host in fresh_cluster.hosts for p in host.session_processes()] == []
    assert list(work.iterdir()) == []


def test_a_task_too_large_for_a_command_line_travels_as_a_file(ssh_cluster, remote_settings):
    big = "y" * 100_000
    tasks = [BranchTask(f"fan[{i}]", f"n{i}", "join", {}, index=i, overrides={"big": big}) for i in range(2)]
    results = _run(_gnu(remote_settings, ssh_cluster), tasks)
    assert all(r.success and r.update["big"] == big for r in results)


def test_max_workers_caps_the_jobs_at_once(ssh_cluster, remote_settings):
    spans = _run(_gnu(remote_settings, ssh_cluster, slots=2), _tasks(4, spin=0.3), max_workers=1)
    starts_ends = sorted(tuple(r.update["spun"]) for r in spans)
    # One at a time: each branch starts after the one before it ended.
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(starts_ends))
