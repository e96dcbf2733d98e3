"""Worker channels on real hosts: a branch the driver gives up on (timeout, fail_fast) is really stopped.

The branches here ignore their cancel event and start a child process, the way
user code does; only killing the worker's process group stops them. Each test has
hosts of its own (``fresh_cluster``) so that "nothing left running on the host" is
about this test alone: the host's PID namespace is inspected after the run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sshd_hosts import SshCluster
from toy_program import ToyProgram

from executors.base import BranchTask, ParallelConfig
from remote.executor import RemoteExecutor

pytestmark = pytest.mark.timeout(120)


def _settings(cluster: SshCluster, launcher: Path, **extra) -> dict:
    work, cache = cluster.user_dir("work"), cluster.user_dir("cache")
    return cluster.remote_settings(work, cache, basefile=str(launcher),
                                   hosts=[cluster.hosts[0].login], **extra)


def _task(index: int, **state) -> BranchTask:
    return BranchTask(f"fan[{index}]", f"n{index}", "join", state, index=index, target=f"n{index}")


def _run(settings: dict, tasks: list[BranchTask], **config) -> list:
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings), **config)
        return sorted(executor.run(ToyProgram(), tasks, cfg), key=lambda r: r.index)


def _left_running(cluster: SshCluster, within: float = 15.0) -> list[str]:
    """What still runs on the hosts once killed processes had ``within`` seconds to go."""
    deadline = time.monotonic() + within
    while True:
        left = [p for host in cluster.hosts for p in host.session_processes()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_a_timed_out_branch_is_killed_and_frees_the_slot(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=1)
    tasks = [_task(0, hang=60, child=True), _task(1)]
    hung, after = _run(settings, tasks, timeout_seconds=2)
    assert hung.error is not None and hung.error.type == "BranchTimeout"
    assert hung.host == hung.error.host == fresh_cluster.hosts[0].login
    # The host's only slot went to the next branch, on a fresh worker: it did not
    # queue behind the hung one and time out in turn.
    assert after.success, after.error
    assert _left_running(fresh_cluster) == []  # neither the branch nor its child survived


def test_fail_fast_kills_the_branches_it_cancels(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=2)
    tasks = [_task(0, hang=60, child=True), _task(1, sleep=0.5, fail="n1")]
    hung, failing = _run(settings, tasks, fail_fast=True)
    assert failing.error is not None and failing.error.type == "ValueError"
    assert hung.error is not None and hung.error.type == "Cancelled"
    assert hung.host == fresh_cluster.hosts[0].login
    assert _left_running(fresh_cluster) == []


def test_other_branches_of_a_stopped_worker_are_sent_again(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=2)
    marker = fresh_cluster.user_dir("markers") / "first-run"
    # Two slots: n0 hangs; n1 takes a second, then n2 starts and hangs on its first
    # run only. n0 times out first, which kills the worker, n2's first run with it.
    tasks = [_task(0, hang=60), _task(1, sleep=1), _task(2, hang_once=str(marker))]
    hung, quick, innocent = _run(settings, tasks, timeout_seconds=3)
    assert hung.error is not None and hung.error.type == "BranchTimeout"
    assert quick.success, quick.error
    assert marker.exists()  # n2 did start on the worker that was killed
    assert innocent.success, innocent.error  # and ran again, with its full time
    assert innocent.state["pid"] != quick.state["pid"]  # on a fresh worker
    assert _left_running(fresh_cluster) == []


def test_closing_the_executor_kills_what_still_runs(fresh_cluster, launcher):
    settings = _settings(fresh_cluster, launcher, slots=2)
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        results = executor.run(ToyProgram(), [_task(0, hang=60, child=True), _task(1)], cfg)
        assert next(results).success  # n1; n0 still runs when the run is abandoned
    assert _left_running(fresh_cluster) == []
