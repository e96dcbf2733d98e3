"""``tea hosts check`` (remote.check) on real sshd hosts: usable hosts, an untrusted key, an unreachable host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tea
from remote.check import check_hosts, check_workflow, render_json, render_text
from remote.executor import RemoteExecutor
from tea import overrides

pytestmark = pytest.mark.timeout(60)


def test_every_host_usable(ssh_cluster, remote_settings):
    reports = check_hosts(RemoteExecutor.parse_options(remote_settings(slots=3)))
    assert [r.host for r in reports] == [h.login for h in ssh_cluster.hosts]
    for report in reports:
        assert report.ok and report.error is None
        assert report.reachable and report.key_trusted and report.workdir_writable
        assert report.arch and report.slots == 3 and report.rtt_ms is not None
        assert report.binary_present is False  # this test's cache is empty: sent on the first run
    assert render_text(reports).splitlines()[-1] == "3 of 3 hosts usable"


def test_an_untrusted_key_and_an_unreachable_host_are_told_apart(ssh_cluster, remote_settings, tmp_path):
    known = tmp_path / "known_hosts"
    first, second = ssh_cluster.hosts[:2]
    lines = ssh_cluster.known_hosts.read_text().splitlines()
    known.write_text("\n".join(line for line in lines if not line.startswith(f"[{second.address}]")) + "\n")
    dead = f"teatest@127.0.0.9:{first.port}"
    settings = remote_settings(known_hosts=str(known), hosts=[first.login, second.login, dead])
    good, untrusted, down = check_hosts(RemoteExecutor.parse_options(settings))
    assert good.ok
    assert not untrusted.ok and untrusted.reachable and untrusted.key_trusted is False
    assert "not trusted" in (untrusted.error or "")
    assert f"ssh-keyscan -p {second.port} {second.address} >> {known}" in (untrusted.hint or "")
    assert not down.ok and not down.reachable and down.key_trusted is None
    assert "connection refused" in (down.error or "")
    data = json.loads(render_json([good, untrusted, down]))
    assert [(d["host"], d["ok"]) for d in data] == [(first.login, True), (second.login, False), (dead, False)]
    assert all({"host", "ok", "error", "hint", "arch", "rtt_ms"} <= set(d) for d in data)
    text = render_text([good, untrusted, down])
    assert f"{second.login}: the host key of {second.login} is not trusted" in text
    assert text.splitlines()[-1] == "1 of 3 hosts usable"


def test_a_workflow_checked_with_a_hosts_file(ssh_cluster, remote_settings, tmp_path):
    settings = remote_settings()
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: fleet\nsettings:\n  parallel:\n    strategy: remote\n"
        f"    remote: {json.dumps({k: v for k, v in settings.items() if k != 'hosts'} | {'hosts': ['x']})}\n"
        "nodes:\n  - name: s\n  - name: b\n  - name: j\n"
        "edges:\n  - {from: s, to: [b], parallel: true, fan_in: j}\n"
    )
    hosts_file = tmp_path / "hosts.txt"
    hosts_file.write_text("# two of the three\n" + "".join(f"2/{h.login}\n" for h in ssh_cluster.hosts[1:]))
    workflow = tea.load(flow, overrides=[overrides.hosts(f"@{hosts_file}")])
    reports = check_workflow(workflow)
    assert [(r.host, r.slots, r.ok) for r in reports] == [(h.login, 2, True) for h in ssh_cluster.hosts[1:]]


def test_installed_tea_is_found_by_its_command(ssh_cluster, remote_settings, launcher):
    settings = remote_settings(command=str(launcher))
    del settings["basefile"]
    reports = check_hosts(RemoteExecutor.parse_options(settings))
    assert all(r.ok and r.binary_present for r in reports), reports
    broken = remote_settings(command="/nonexistent/tea")
    del broken["basefile"]
    report = check_hosts(RemoteExecutor.parse_options(broken))[0]
    assert not report.ok and "/nonexistent/tea --version failed there" in (report.error or "")


def test_a_missing_basefile_makes_every_host_unusable(ssh_cluster, remote_settings, tmp_path):
    reports = check_hosts(RemoteExecutor.parse_options(remote_settings(basefile=str(tmp_path / "nope"))))
    assert all(not r.ok and "does not exist" in (r.error or "") for r in reports)


def test_a_workflow_with_no_remote_hosts_is_a_load_error(tmp_path):
    flow = tmp_path / "local.yaml"
    flow.write_text("name: local\nnodes:\n  - name: a\n")
    with pytest.raises(tea.LoadError, match="has no remote hosts to check"):
        check_workflow(tea.load(Path(flow)))


def _tea(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tea", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_command_exits_0_when_every_host_is_usable_and_1_otherwise(ssh_cluster, remote_settings, tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: fleet\nsettings:\n  parallel:\n    strategy: remote\n"
        f"    remote: {json.dumps(remote_settings())}\n"
        "nodes:\n  - name: s\n  - name: b\n  - name: j\n"
        "edges:\n  - {from: s, to: [b], parallel: true, fan_in: j}\n"
    )
    good = _tea("hosts", "check", str(flow), "--format", "json", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert [(d["host"], d["ok"]) for d in json.loads(good.stdout)] == [(h.login, True) for h in ssh_cluster.hosts]
    dead = f"teatest@127.0.0.9:{ssh_cluster.hosts[0].port}"
    bad = _tea("hosts", "check", str(flow), "--hosts", f"{ssh_cluster.hosts[0].login},{dead}", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-1] == "1 of 2 hosts usable"
    missing = _tea("hosts", "check", str(flow), "--hosts", "@nope.txt", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.txt" in missing.stderr and "Traceback" not in missing.stderr
