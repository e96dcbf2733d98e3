"""Preflight: a run's hosts checked before its first node (RemoteExecutor.preflight, and the engine's call)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from toy_program import ToyProgram

import tea
from executors.base import BranchTask, ParallelConfig
from remote.errors import AllHostsDown, RemoteSetupError
from remote.executor import RemoteExecutor

pytestmark = pytest.mark.timeout(90)


def _config(settings: dict) -> ParallelConfig:
    return ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))


def _down(ssh_cluster, count: int = 2) -> list[str]:
    port = ssh_cluster.hosts[0].port
    return [f"teatest@127.0.0.{9 + i}:{port}" for i in range(count)]


@pytest.mark.parametrize("transport", ["ssh", "gnu_parallel"])
def test_no_usable_host_fails_the_preflight_naming_each(ssh_cluster, remote_settings, transport):
    if transport == "gnu_parallel" and shutil.which("parallel") is None:
        pytest.skip("GNU Parallel not installed")
    hosts = _down(ssh_cluster)
    with RemoteExecutor() as executor, pytest.raises(AllHostsDown) as caught:
        executor.preflight([_config(remote_settings(hosts=hosts, transport=transport))])
    for host in hosts:
        assert host in caught.value.message
    assert caught.value.category == "setup"  # never retried


def test_a_partly_usable_fleet_warns_and_keeps_its_connections(ssh_cluster, remote_settings, caplog):
    good = ssh_cluster.hosts[0].login
    config = _config(remote_settings(hosts=[*_down(ssh_cluster, 1), good]))
    with RemoteExecutor() as executor:
        with caplog.at_level(logging.WARNING, logger="tea.remote"):
            executor.preflight([config, config])  # the same settings twice: checked once
        warnings = [r.getMessage() for r in caplog.records if r.name == "tea.remote"]
        assert len(warnings) == 1 and "127.0.0.9" in warnings[0] and "connection refused" in warnings[0]
        (cluster,) = executor._clusters.values()
        # Its connection stays for the first fan-out (its worker may still be starting).
        assert set(cluster.sessions) | set(cluster.opening) == {good}
        tasks = [BranchTask(f"f[{i}]", f"n{i}", None, {}, index=i) for i in range(4)]
        results = list(executor.run(ToyProgram(), tasks, config))
    assert all(r.success and r.host == good for r in results)


def test_a_host_key_problem_stops_the_run_before_it_starts(ssh_cluster, remote_settings, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with RemoteExecutor() as executor, pytest.raises(RemoteSetupError, match="not trusted"):
        executor.preflight([_config(remote_settings(known_hosts=str(empty)))])


def test_a_run_with_no_usable_host_runs_no_node(ssh_cluster, remote_settings, tmp_path):
    """The engine calls the preflight before the first node: its marker file never appears."""
    marker = tmp_path / "first-node-ran"
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "preflight",
        "settings": {"parallel": {"strategy": "remote", "remote": remote_settings(hosts=_down(ssh_cluster))}},
        "nodes": [
            {"name": "start", "run": f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nreturn {{}}"},
            {"name": "b", "run": "return {'b': 1}"},
            {"name": "join", "run": "return {}"},
        ],
        "edges": [{"from": "start", "to": ["b"], "parallel": True, "fan_in": "join"}],
    }, sort_keys=False))
    with pytest.raises(tea.RunError, match="no host can be used"):
        tea.load(flow).invoke({}, checkpoint_dir=str(tmp_path / "ckpt"))
    assert not Path(marker).exists()
