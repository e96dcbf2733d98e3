"""The GNU Parallel command builder and joblog parser (pure; the transport runs in test_remote_transports)."""

from __future__ import annotations

from pathlib import Path

from remote.config import parse_host
from remote.gnu_parallel import (
    ParallelCommand,
    build_cleanup_command,
    build_command,
    build_prepare_command,
    parse_joblog,
    ssh_login,
)


def _command(tmp_path: Path, **changes) -> ParallelCommand:
    values = {
        "hosts": [parse_host("alice@10.0.0.5:2222", 4), parse_host("node2", 2)],
        "basefile": tmp_path / "dist" / "tea",
        "program_files": ["program/workflow.yaml"],
        "input_files": ["task-0.json", "task-1.json"],
        "stage": tmp_path,
        "workdir": "/tmp/tea-run.abc",
        "identity_file": "/keys/id ed25519",
        "known_hosts": "/keys/known_hosts",
        "timeout_seconds": 30.0,
        "retries": 3,
    }
    values.update(changes)
    return ParallelCommand(**values)


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


def test_sshlogin_carries_slots_port_and_strict_host_keys(tmp_path):
    cmd = _command(tmp_path)
    login = ssh_login(cmd.hosts[0], cmd)
    assert login.startswith("4/ssh ")
    assert login.endswith(" -p 2222 alice@10.0.0.5")
    assert "StrictHostKeyChecking=yes" in login
    assert "BatchMode=yes" in login
    assert "UserKnownHostsFile=/keys/known_hosts" in login
    assert "-i '/keys/id ed25519'" in login  # quoted: parallel hands it to a shell
    assert ssh_login(cmd.hosts[1], cmd).endswith(" node2")


def test_commas_are_doubled_because_parallel_splits_sshlogins_on_them(tmp_path):
    cmd = _command(tmp_path, known_hosts="/keys/a,b")
    assert "/keys/a,,b" in ssh_login(cmd.hosts[0], cmd)


def test_command_has_every_transfer_option_and_no_control_master(tmp_path):
    argv = build_command(_command(tmp_path))
    assert argv[0] == "parallel"
    assert len(_option_values(argv, "--sshlogin")) == 2
    assert _option_values(argv, "--basefile") == [
        f"{(tmp_path / 'dist').resolve()}/./tea",
        f"{tmp_path.resolve()}/./program/workflow.yaml",
    ]
    assert _option_values(argv, "--transferfile") == ["{}"]
    assert _option_values(argv, "--return") == ["{.}.result.json", "{.}.err"]
    assert _option_values(argv, "--workdir") == ["/tmp/tea-run.abc"]
    assert _option_values(argv, "--joblog") == ["joblog"]
    assert _option_values(argv, "--timeout") == ["30"]
    assert _option_values(argv, "--retries") == ["3"]
    # Its rmdir of every parent directory would delete the user's workdir; tea cleans up.
    assert "--cleanup" not in argv
    assert "-M" not in argv and "--controlmaster" not in argv
    separator = argv.index(":::")
    assert argv[separator + 1 :] == ["task-0.json", "task-1.json"]
    job = argv[separator - 1]
    assert job.startswith("./tea worker --once --program program --input {}")
    assert "--output {.}.result.json 2> {.}.err" in job


def test_optional_parts_are_left_out(tmp_path):
    argv = build_command(_command(tmp_path, timeout_seconds=None, retries=1, env=["API_KEY"]))
    assert "--timeout" not in argv and "--retries" not in argv
    assert _option_values(argv, "--env") == ["API_KEY"]


def test_cleanup_removes_only_the_private_workdir_on_every_host(tmp_path):
    cmd = _command(tmp_path, workdir="/srv/my jobs/tea-run.abc")
    argv = build_cleanup_command(cmd)
    assert argv[:3] == ["parallel", "--will-cite", "--nonall"]
    assert _option_values(argv, "--sshlogin") == [ssh_login(h, cmd) for h in cmd.hosts]
    assert argv[-1] == "rm -rf -- '/srv/my jobs/tea-run.abc'"


def test_the_workdir_is_made_private_on_every_host_before_any_state_lands(tmp_path):
    cmd = _command(tmp_path, workdir="/srv/my jobs/tea-run.abc")
    argv = build_prepare_command(cmd)
    assert argv[:3] == ["parallel", "--will-cite", "--nonall"]
    assert _option_values(argv, "--sshlogin") == [ssh_login(h, cmd) for h in cmd.hosts]
    assert argv[-1] == (
        "umask 077 && mkdir -p -- '/srv/my jobs/tea-run.abc' && chmod 700 -- '/srv/my jobs/tea-run.abc'"
    )


JOBLOG = (
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    "2\t2/ssh -o BatchMode=yes -p 2222 alice@10.0.0.5\t1700000000.1\t0.250\t10\t20\t1\t0\t./tea w\n"
    "1\tnode2\t1700000000.0\t0.120\t10\t20\t0\t0\t./tea worker ...\n"
    "2\tnode2\t1700000001.0\t0.100\t10\t20\t0\t0\t./tea worker ...\n"
    "garbage line\n"
    "9\tnode2\t1700000001.0\t0.100\t10\t20\t0\t0\tout of range\n"
)


def test_joblog_rows_map_back_to_inputs_and_last_attempt_wins():
    rows = parse_joblog(JOBLOG, ["task-0.json", "task-1.json"])
    assert set(rows) == {"task-0.json", "task-1.json"}
    assert rows["task-0.json"].host == "node2"
    assert rows["task-0.json"].exit_status == 0
    retried = rows["task-1.json"]
    assert (retried.seq, retried.host, retried.exit_status) == (2, "node2", 0)


def test_joblog_host_of_an_ssh_command_login():
    rows = parse_joblog("\n".join(JOBLOG.splitlines()[:2]), ["a", "b"])
    assert rows["b"].host == "alice@10.0.0.5:2222"
    assert rows["b"].exit_status == 1
