"""The remote strategy on real sshd hosts: results, hosts, cleanup, shipping, env, errors."""

from __future__ import annotations

import json
import logging
import os
import pwd
import threading
from pathlib import Path

import pytest
import yaml
from sshd_hosts import TEST_USER
from toy_program import ToyProgram

import tea
from executors.base import BranchTask, ParallelConfig, RetryPolicy
from remote.errors import RemoteSetupError
from remote.executor import RemoteExecutor
from remote.local_files import Basefile

pytestmark = pytest.mark.timeout(120)


def _tasks(count: int, **state) -> list[BranchTask]:
    return [
        BranchTask(f"fan[{i}]", f"n{i}", "join", {"i": i, **state}, index=i, target=f"n{i}")
        for i in range(count)
    ]


def _run(settings: dict, tasks: list[BranchTask], **config) -> list:
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings), **config)
        return sorted(executor.run(ToyProgram(), tasks, cfg), key=lambda r: r.index)


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_branches_spread_over_three_hosts(remote_settings, ssh_cluster):
    results = _run(remote_settings(slots=2), _tasks(12))
    assert [r.success for r in results] == [True] * 12
    assert [r.state["seen"] for r in results] == [[f"n{i}"] for i in range(12)]
    assert {r.host for r in results} == {h.login for h in ssh_cluster.hosts}


def test_nothing_is_left_on_the_hosts_after_success_or_failure(remote_settings, remote_dirs):
    work, cache = remote_dirs
    results = _run(remote_settings(), _tasks(4) + _tasks(1, fail="n0"))
    assert sum(not r.success for r in results) == 1
    assert _files(work) == []
    # Only the content-addressed binary stays, so the next run skips the upload.
    assert [p.name for p in cache.iterdir()] == [f"tea-{_sha(remote_settings())[:16]}"]
    _run(remote_settings(keep_binary=False), _tasks(2, fail="n1"))
    assert _files(work) == [] and _files(cache) == []


def test_cleanup_false_keeps_the_private_workdirs(remote_settings, remote_dirs):
    work, _ = remote_dirs
    _run(remote_settings(cleanup=False), _tasks(3))
    kept = list(work.iterdir())
    assert kept and all(p.name.startswith("tea-run.") for p in kept)
    assert all(oct(p.stat().st_mode & 0o777) == "0o700" for p in kept)


def _sha(settings: dict) -> str:
    return Basefile.from_path(Path(settings["basefile"])).sha256


def test_binary_is_shipped_once_and_again_when_it_differs(remote_settings, remote_dirs):
    _, cache = remote_dirs
    settings = remote_settings()
    binary = cache / f"tea-{_sha(settings)[:16]}"
    binary.write_text("#!/bin/sh\necho 'an old tea'\n")
    os.chown(binary, cache.stat().st_uid, cache.stat().st_gid)
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        assert all(r.success for r in executor.run(ToyProgram(), _tasks(3), cfg))
        clusters = list(executor._clusters.values())
        assert any(s.uploaded for s in clusters[0].sessions.values())
    assert binary.read_bytes() == Path(settings["basefile"]).read_bytes()
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        assert all(r.success for r in executor.run(ToyProgram(), _tasks(3), cfg))
        sessions = next(iter(executor._clusters.values())).sessions.values()
        assert sessions and not any(s.uploaded for s in sessions)


def test_remote_traceback_and_stderr_come_back(remote_settings):
    (result,) = _run(remote_settings(), _tasks(1, fail="n0"))
    assert not result.success and result.error is not None
    assert result.error.type == "ValueError"
    assert "branch n0 was told to fail" in result.error.message
    # The remote traceback names the frame that raised (cloudpickle names its file
    # "<dynamic-code>", so the test does not rely on the file name).
    assert ", in run_branch\n" in result.error.traceback
    assert "ValueError: branch n0 was told to fail" in result.error.traceback
    assert "about to fail n0" in result.error.traceback  # the worker's stderr tail
    assert result.error.host == result.host


def test_failed_branch_is_retried_on_another_host(remote_settings):
    policy = RetryPolicy(max_attempts=2, backoff_base_ms=1, backoff_max_ms=1, jitter=False)
    (result,) = _run(remote_settings(), _tasks(1, fail="n0"), retry=policy)
    assert result.attempts == 2 and not result.success


def test_state_that_json_cannot_carry_names_the_key(remote_settings):
    task = BranchTask("fan[0]", "n0", None, {"ok": 1, "handle": threading.Lock()})
    (result,) = _run(remote_settings(), [task])
    assert result.error is not None and result.error.type == "SerializationError"
    assert "'handle'" in result.error.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({1: "one"}, "state['changed'] has the int key 1"),
        ([1.0, float("nan")], "state['changed'][1] is nan"),
        ({"tags": {"a"}}, "state['changed']['tags'] is a set"),
        (b"raw", "state['changed'] is bytes"),
    ],
)
def test_state_json_would_change_fails_before_dispatch(remote_settings, value, problem):
    tasks = [
        BranchTask("fan[0]", "n0", None, {"changed": value}),
        BranchTask("fan[1]", "n1", None, {}, index=1, overrides={"pair": (1, 2)}),
        BranchTask("fan[2]", "n2", None, {}, index=2, overrides={"changed": value}),
    ]
    refused, sent, refused_item = _run(remote_settings(), tasks, retry=RetryPolicy(max_attempts=3))
    for result in (refused, refused_item):
        assert result.error is not None and result.error.type == "SerializationError"
        assert result.error.category == "setup"
        assert result.error.message.startswith(f"the state of branch {result.branch_id} cannot be sent as JSON")
        assert problem in result.error.message
        assert result.attempts == 1 and result.host is None  # never sent, never retried
    assert sent.success and sent.state["pair"] == [1, 2]  # a tuple arrives as a list


def test_env_is_forwarded_by_name_and_glob(remote_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("TEA_TEST_TOKEN", "s3cret")
    monkeypatch.setenv("TEA_TEST_HIDDEN", "no")
    flow = tmp_path / "env.yaml"
    flow.write_text(
        "name: env\nnodes:\n  - name: start\n  - name: read\n    run: |\n"
        "      import os\n"
        "      return {'token': os.environ.get('TEA_TEST_TOKEN'),"
        " 'hidden': os.environ.get('TEA_TEST_HIDDEN')}\n  - name: done\n"
    )
    program = tea.load(flow).branch_program()
    settings = remote_settings(env=["TEA_TEST_*", "!*HIDDEN"])
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        (result,) = executor.run(program, [BranchTask("s[read]", "read", "done", {})], cfg)
    assert result.success, result.error
    assert result.state == {"token": "s3cret", "hidden": None}


def test_hosts_by_name_from_ssh_config(remote_settings, ssh_cluster):
    host = ssh_cluster.hosts[0]
    config = Path(os.environ["HOME"]) / ".ssh" / "config"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        f"Host tea-alias\n  HostName {host.address}\n  Port {host.port}\n  User teatest\n"
    )
    try:
        results = _run(remote_settings(hosts=["tea-alias"]), _tasks(2))
    finally:
        config.unlink()
    assert all(r.success for r in results) and {r.host for r in results} == {"tea-alias"}


def test_missing_basefile_fails_before_dispatch(remote_settings, tmp_path):
    with pytest.raises(RemoteSetupError, match="does not exist") as caught:
        _run(remote_settings(basefile=str(tmp_path / "nope")), _tasks(1))
    assert "tea bundle" in str(caught.value)


def test_a_basefile_that_is_a_directory_says_so(remote_settings, tmp_path):
    with pytest.raises(RemoteSetupError) as caught:
        _run(remote_settings(basefile=str(tmp_path)), _tasks(1))
    assert caught.value.message == f"basefile {tmp_path} is a directory, not a file"


@pytest.mark.parametrize("key", ["identity_file", "known_hosts"])
@pytest.mark.parametrize("transport", ["ssh", "gnu_parallel"])
def test_a_missing_key_file_is_named_before_connecting(remote_settings, tmp_path, key, transport):
    missing = tmp_path / "not-there"
    settings = remote_settings(**{key: str(missing)}, transport=transport)
    with pytest.raises(RemoteSetupError) as caught:
        _run(settings, _tasks(1))
    assert caught.value.message == f"settings.parallel.remote.{key}: {missing} does not exist"


def test_basefile_for_another_architecture_is_refused(remote_settings, tmp_path):
    fake = tmp_path / "tea-arm64"
    header = bytearray(64)
    header[:4], header[4], header[5] = b"\x7fELF", 2, 1
    header[18:20] = (0xB7).to_bytes(2, "little")  # EM_AARCH64
    fake.write_bytes(bytes(header))
    results = _run(remote_settings(basefile=str(fake)), _tasks(3))
    assert {r.error.type for r in results} == {"RemoteSetupError"}
    assert "built for aarch64" in results[0].error.message


def test_unreachable_and_misspelled_hosts_fail_with_every_reason(remote_settings, ssh_cluster):
    port = ssh_cluster.hosts[0].port
    hosts = [f"teatest@127.0.0.9:{port}", "teatest@no-such-host.invalid"]
    results = _run(remote_settings(hosts=hosts), _tasks(2))
    for result in results:
        assert result.error is not None and result.error.type == "AllHostsDown"
        assert f"teatest@127.0.0.9:{port}: cannot connect" in result.error.message
        assert "teatest@no-such-host.invalid: cannot connect" in result.error.message


def test_a_dead_or_misspelled_host_among_good_ones_is_a_warning(
    remote_settings, ssh_cluster, caplog
):
    port = ssh_cluster.hosts[0].port
    refused, unknown = f"teatest@127.0.0.9:{port}", "teatest@no-such-host.invalid"
    hosts = [refused, unknown, ssh_cluster.hosts[0].login]
    with caplog.at_level(logging.WARNING, logger="tea.remote"):
        results = _run(remote_settings(hosts=hosts, slots=2), _tasks(6))
    assert all(r.success for r in results)  # the run goes on, on the good host
    warnings = [r.getMessage() for r in caplog.records if r.name == "tea.remote"]
    assert len(warnings) == 2, warnings  # once per bad host, however often it was tried
    by_host = {host: [w for w in warnings if host in w] for host in (refused, unknown)}
    assert "connection refused" in by_host[refused][0]
    assert "cannot resolve the host name 'no-such-host.invalid'" in by_host[unknown][0]


def test_workdir_that_cannot_be_created_is_reported(remote_settings):
    results = _run(remote_settings(workdir="/proc/tea-cannot-be-here"), _tasks(2))
    for result in results:
        assert result.error is not None and result.error.type == "AllHostsDown"
        assert "cannot create" in result.error.message


def test_the_documented_minimal_settings_work_as_they_are(ssh_cluster, launcher, remote_dirs, tmp_path):
    """Exactly what the docs require, nothing more: the default cache_dir (``.cache/tea``
    in the remote home) is used from wherever the worker runs."""
    work, _ = remote_dirs
    minimal = {
        "hosts": [h.login for h in ssh_cluster.hosts],
        "basefile": str(launcher),
        "identity_file": str(ssh_cluster.client_key),
        "known_hosts": str(ssh_cluster.known_hosts),
        "workdir": str(work),
    }
    flow = tmp_path / "minimal.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "minimal",
        "settings": {"parallel": {"strategy": "remote", "remote": minimal}},
        "nodes": [
            {"name": "start", "run": "return {}"},
            *({"name": f"b{i}", "run": f"return {{'i{i}': {i}}}"} for i in range(3)),
            {"name": "join", "run": "return {'hosts': sorted({r.host for r in parallel_results}),"
                                    " 'sum': sum(r[f'i{n}'] for n, r in enumerate(parallel_results))}"},
        ],
        "edges": [{"from": "start", "to": ["b0", "b1", "b2"], "parallel": True, "fan_in": "join"}],
    }, sort_keys=False))
    home = Path(pwd.getpwnam(TEST_USER).pw_dir)
    cached = home / ".cache" / "tea" / f"tea-{_sha(minimal)[:16]}"
    try:
        final = tea.load(flow).invoke({})
        assert final["sum"] == 3 and final["hosts"]
        assert cached.is_file()  # shipped to the documented place, relative to the home
    finally:
        cached.unlink(missing_ok=True)
    assert _files(work) == []


def test_the_shared_state_goes_to_each_host_once(remote_settings, ssh_cluster, tmp_path):
    """A dynamic fan-out as the engine makes it: one shared state (the items and a large
    value), each task carrying only its item; the transport counts what each host got."""
    flow = tmp_path / "items.yaml"
    body = 'return {"double": state["item"] * 2, "size": len(state["blob"])}'
    flow.write_text(
        "name: items\nnodes:\n  - name: each\n    type: dynamic_parallel\n    items: '{{ state.items }}'\n"
        f"    fan_in: done\n    steps:\n      - run: '{body}'\n  - name: done\n"
    )
    program = tea.load(flow).branch_program()
    shared = {"items": list(range(60)), "blob": "x" * 200_000}
    tasks = [
        BranchTask(f"each[{i}]", "each", None, shared, index=i, target="each", fanout="each",
                   overrides={"item": i, "index": i})
        for i in range(60)
    ]
    settings = remote_settings(slots=2)
    with RemoteExecutor() as executor:
        cfg = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        results = sorted(executor.run(program, tasks, cfg), key=lambda r: r.index)
        sent = executor.traffic()
    assert [r.update for r in results] == [
        {"item": i, "index": i, "double": i * 2, "size": 200_000} for i in range(60)
    ]  # updates only: the blob never comes back
    hosts = {r.host for r in results}
    assert set(sent) == hosts
    state_bytes = len(json.dumps(shared, separators=(",", ":")))
    for host in hosts:  # the state once, plus the program and a short line per branch
        assert state_bytes < sent[host] < state_bytes + 10_000 + 60 * 500, (host, sent[host])
