"""A mission on the remote strategy: its steps run as branches on real sshd hosts (loopback)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tea.mission import load_mission, run_mission

REMOTE_TESTS = Path(__file__).resolve().parents[1] / "remote"
sys.path.insert(0, str(REMOTE_TESTS))
from sshd_hosts import SshCluster, runtime_for_test_user  # noqa: E402


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[SshCluster, Path]]:
    """Two sshd hosts and a launcher that runs this checkout's tea as their test user."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH sshd is not installed (run scripts/test-deps.sh)")
    if os.geteuid() != 0:
        pytest.skip("the sshd test hosts need root (PID namespaces, a test user)")
    root = Path(tempfile.mkdtemp(prefix="tea-mission-remote-"))
    (root / "home").mkdir()
    cluster = SshCluster.start(root, 2)
    try:
        python, pythonpath = runtime_for_test_user(root)
        launcher = root / "tea-launcher"
        launcher.write_text(f'#!/bin/sh\nPYTHONPATH={pythonpath} exec {python} -m remote._entry "$@"\n')
        launcher.chmod(0o755)
        yield cluster, launcher
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_steps_run_on_the_hosts(hosts: tuple[SshCluster, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, launcher = hosts
    monkeypatch.setenv("HOME", str(cluster.root / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # The steps' files root is the mission's directory: the hosts' test user must reach it.
    directory = Path(tempfile.mkdtemp(prefix="tea-mission-", dir=cluster.root))
    directory.chmod(0o755)
    settings = cluster.remote_settings(cluster.user_dir("work"), cluster.user_dir("cache"), basefile=str(launcher))
    path = directory / "mission.yaml"
    path.write_text(f"""
settings:
  shell: {{enabled: true}}
  parallel: {{strategy: remote, remote: {json.dumps(settings)}}}
steps:
  - {{id: who, step_type: command, parameters: {{command: [id, -un]}}}}
  - id: parse
    step_type: parse_json
    depends_on: [who]
    parameters: {{content: '{{"user": "{{{{ who.output.stdout | trim }}}}"}}'}}
""")
    result = run_mission(load_mission(path), autosave=False, progress=False)
    assert result.status == "completed", result.to_json()
    assert result.step_results["parse"].output == {"data": {"user": "teatest"}}
