"""ssh_execute against a real OpenSSH server on loopback (the remote tests' sshd hosts)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mission_helpers import RunMission

from tea.mission.steps.ssh import parse_target, remote_command

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
from sshd_hosts import SshCluster


def test_targets_and_command_lines() -> None:
    """Pure parts: user@host:port parsing and the quoting of an argument list."""
    assert parse_target("deploy@build1:2222", None, None) == ("deploy", "build1", 2222)
    assert parse_target("[::1]:2200", "me", None) == ("me", "::1", 2200)
    assert parse_target("box", None, 23) == (None, "box", 23)
    assert remote_command(["echo", "a b", "$HOME"]) == "echo 'a b' '$HOME'"
    assert remote_command("ls | wc -l") == "ls | wc -l"


@pytest.fixture(scope="module")
def host() -> Iterator[SshCluster]:
    """One sshd host with generated keys and known_hosts; HOME points into its temp dir."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH sshd is not installed (run scripts/test-deps.sh)")
    if os.geteuid() != 0:
        pytest.skip("the sshd test hosts need root (PID namespaces, a test user)")
    root = Path(tempfile.mkdtemp(prefix="tea-mission-sshd-"))
    cluster = SshCluster.start(root, 1)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    if "host" in request.fixturenames:
        monkeypatch.setenv("HOME", str(request.getfixturevalue("host").root))


def mission(cluster: SshCluster, steps: str) -> str:
    return f"""
        settings:
          shell: {{enabled: true}}
          parallel:
            remote: {{identity_file: "{cluster.client_key}", known_hosts: "{cluster.known_hosts}"}}
        config: {{fail_fast: false}}
        steps:
{steps}"""


def test_ssh_execute_runs_on_the_host(run: RunMission, host: SshCluster) -> None:
    target = host.hosts[0].login
    result = run(mission(host, f"""
          - {{id: who, step_type: ssh_execute,
             parameters: {{host: "{target}", command: [sh, -c, 'id -un; echo "$0"', 'a b']}}}}
          - {{id: fail, step_type: ssh_execute, parameters: {{host: "{target}", command: "echo oops >&2; exit 5"}}}}
          - {{id: read, step_type: ssh_execute, parameters: {{host: "{target}", command: [cat], input: piped}}}}
    """))
    assert result.step_results["who"].output == {"stdout": "teatest\na b\n", "stderr": "", "exit_code": 0,
                                                 "host": target}
    fail = result.step_results["fail"]
    assert fail.status == "failed" and fail.error == (
        f"step 'fail' (ssh_execute): the command on {target} exited with status 5\nstderr (last lines):\noops")
    assert result.step_results["read"].output["stdout"] == "piped"


def test_an_unknown_host_key_is_refused(run: RunMission, host: SshCluster, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = run(mission(host, f"""
          - id: s
            step_type: ssh_execute
            retry_attempts: 3
            parameters: {{host: "{host.hosts[0].login}", command: ["true"], known_hosts: "{empty}"}}
    """))
    step = result.step_results["s"]
    assert step.status == "failed" and step.attempts == 1 and "is not trusted" in (step.error or "")


def test_a_timed_out_remote_command_is_stopped(run: RunMission, host: SshCluster) -> None:
    result = run(mission(host, f"""
          - id: slow
            step_type: ssh_execute
            timeout_seconds: 1
            parameters: {{host: "{host.hosts[0].login}", command: [sleep, "37"]}}
    """))
    assert "timed out after 1s" in (result.step_results["slow"].error or "")
    for _ in range(100):  # the session ends once sshd sees the channel closed
        if not any("sleep 37" in line for line in host.hosts[0].session_processes()):
            break
        time.sleep(0.1)
    assert not any("sleep 37" in line for line in host.hosts[0].session_processes())
