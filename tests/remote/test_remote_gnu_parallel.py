"""The GNU Parallel transport's pure half: ssh words, sshlogins, scripts, the jobs command, the joblog."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from remote.config import RemoteSettings, parse_host
from remote.gnu_parallel import (
    CLIENT,
    SKIPPED,
    jobs_command,
    login_line,
    parse_joblog,
    remove_script,
    setup_script,
    ship_script,
    ssh_command,
    stop_script,
)


def _settings(**extra) -> RemoteSettings:
    return RemoteSettings.parse({"hosts": ["alice@10.0.0.5:2222", "2/node2"], **extra})


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]


def test_ssh_words_pass_key_and_known_hosts_only_when_set(tmp_path):
    bare = ssh_command(_settings(), tmp_path)
    assert "StrictHostKeyChecking=yes" in bare and "BatchMode=yes" in bare
    assert not any(w.startswith("UserKnownHostsFile") for w in bare) and "-i" not in bare
    assert f"ControlPath={tmp_path}/%C" in bare and "ControlMaster=auto" in bare
    full = ssh_command(_settings(identity_file="/keys/id ed25519", known_hosts="/keys/known"), tmp_path)
    assert "UserKnownHostsFile=/keys/known" in full
    assert full[full.index("-i") + 1] == "/keys/id ed25519"


def test_sshlogin_carries_slots_port_and_quoted_words(tmp_path):
    settings = _settings(identity_file="/keys/id ed25519")
    ssh = ssh_command(settings, tmp_path)
    alice, node2 = settings.hosts
    assert login_line(alice, ssh).startswith("4/ssh ")
    assert login_line(alice, ssh).endswith(" -p 2222 alice@10.0.0.5")
    assert "-i '/keys/id ed25519'" in login_line(alice, ssh)  # quoted: parallel hands it to a shell
    assert login_line(node2, ssh, 1).startswith("1/") and login_line(node2, ssh).startswith("2/")


def test_commas_are_doubled_because_parallel_splits_sshlogins_on_them(tmp_path):
    ssh = ssh_command(_settings(known_hosts="/keys/a,b"), tmp_path)
    assert "/keys/a,,b" in login_line(parse_host("h"), ssh)


def test_jobs_command_reads_ids_and_tasks_and_never_cleans_up(tmp_path):
    argv = jobs_command(tmp_path / "logins", "/tmp/tea-run.abc", "run-1-0", 30.0)
    assert argv[:2] == ["parallel", "--will-cite"]
    assert _option_values(argv, "--workdir") == ["/tmp/tea-run.abc"]
    assert _option_values(argv, "--colsep") == ["\t"]
    assert _option_values(argv, "--tagstring") == ["{#}"]
    assert _option_values(argv, "--filter") == ['! -e "run-1-0.skip/{#}"']
    assert _option_values(argv, "--joblog") == ["run-1-0.joblog"]
    assert _option_values(argv, "--timeout") == ["30"]
    assert argv[-3:] == [f"sh {CLIENT} {{1}} {{2}}", "::::", "run-1-0.inputs"]
    # Its rmdir of every parent directory would delete the user's workdir; tea cleans up.
    assert "--cleanup" not in argv and "-M" not in argv and "--retries" not in argv
    assert "--timeout" not in jobs_command(tmp_path / "logins", "/w", "run", None)


def test_setup_makes_a_private_run_dir_and_keeps_it_when_asked(tmp_path):
    run = tmp_path / "work" / "tea-run.x"
    settings = _settings(workdir=str(tmp_path / "work"), cleanup=False)
    done = subprocess.run(["sh", "-c", setup_script(settings, str(run))], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    assert oct(run.stat().st_mode & 0o777) == "0o700"
    assert (run / ".keep").exists() and (run / "jobs").is_dir() and (run / "tasks").is_dir()
    assert (run / ".owners").read_text().split()[0]  # the host's name and the session's pid


def test_ship_unpacks_beside_then_renames_into_place(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tea-serve.sh").write_text('echo "started $PARALLEL_SSHLOGIN $*"\n')
    source = tmp_path / "src"
    (source / "programs" / "k").mkdir(parents=True)
    (source / "programs" / "k" / "workflow.yaml").write_text("name: x\n")
    tar = subprocess.run(["tar", "cf", "-", "-C", str(source), "programs"], capture_output=True, check=True).stdout
    script = ship_script(str(run), "ssh -p 22 me@host", 3, ["./bin/tea-abc"])
    done = subprocess.run(["sh", "-c", script], input=tar, capture_output=True, check=True)
    assert done.stdout.decode().strip() == "started ssh -p 22 me@host 3 ./bin/tea-abc"
    assert (run / "programs" / "k" / "workflow.yaml").read_text() == "name: x\n"
    assert not list(run.glob(".ship.*"))  # the side directory is gone


def test_stop_and_remove_touch_only_the_run_dir(tmp_path):
    run = tmp_path / "my jobs" / "tea-run.abc"
    assert shlex.quote(str(run)) in stop_script(str(run), "ssh h")
    assert remove_script(str(run)) == f"rm -rf -- {shlex.quote(str(run))}"
    # Nothing to stop (the directory is gone): not a failure.
    assert subprocess.run(["sh", "-c", stop_script(str(run), "ssh h")], check=False).returncode == 0


JOBLOG = (
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    "2\tssh -p 2222 alice@10.0.0.5\t1700000000.1\t0.250\t10\t20\t1\t0\tsh tea-client.sh a b\n"
    "1\tssh node2\t1700000000.0\t0.120\t10\t20\t0\t0\tsh tea-client.sh c d\n"
    f"3\tssh node2\t1700000001.0\t0.000\t0\t0\t{SKIPPED}\t0\tsh tea-client.sh e f\n"
    "garbage line\n"
    "4\tssh node2\t1700000001.0\t0.1"
)


def test_joblog_rows_say_which_job_ended_where_and_how():
    rows = parse_joblog(JOBLOG)
    assert [(r.seq, r.login, r.exit_status) for r in rows] == [
        (2, "ssh -p 2222 alice@10.0.0.5", 1), (1, "ssh node2", 0), (3, "ssh node2", SKIPPED)
    ]  # the header, garbage and the half-written last row are left out


def test_an_unknown_workdir_parent_is_made(tmp_path):
    run = tmp_path / "deep" / "er" / "tea-run.1"
    settings = _settings(workdir=str(run.parent))
    subprocess.run(["sh", "-c", setup_script(settings, str(run))], capture_output=True, check=True)
    assert Path(run).is_dir()
