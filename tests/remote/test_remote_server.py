"""The GNU Parallel transport's host side without GNU Parallel: tea-serve.sh, the server, tea-client.sh.

The scripts run in a local run directory as they would on a host; ``PARALLEL_SSHLOGIN``
is set by hand (GNU Parallel sets it for a job).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
from toy_program import ToyProgram

from executors.base import BranchResult, BranchTask
from remote.gnu_parallel import CLIENT, CLIENT_SCRIPT, SERVE, SERVE_SCRIPT, cancel_script
from remote.payload import SharedState, task_message

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PARALLEL_SSHLOGIN": "ssh teatest@host-a"}


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run directory with the scripts, a program and a shared state, and its server running."""
    (tmp_path / CLIENT).write_text(CLIENT_SCRIPT)
    (tmp_path / SERVE).write_text(SERVE_SCRIPT)
    (tmp_path / "jobs").mkdir()
    program = tmp_path / "programs" / "p1"
    program.mkdir(parents=True)
    (program / "program.pickle").write_text(base64.b64encode(cloudpickle.dumps(ToyProgram())).decode())
    shared = SharedState.encode({"seen": ["start"]})
    assert isinstance(shared, SharedState)
    (tmp_path / "states").mkdir()
    (tmp_path / "states" / f"{shared.key}.json").write_text(shared.text)
    (tmp_path / "state.key").write_text(shared.key)
    started = subprocess.run(["sh", SERVE, "2", sys.executable, "-m", "remote._entry"], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=30, check=False)
    assert started.returncode == 0, started.stderr
    try:
        yield tmp_path
    finally:
        for pid_file in tmp_path.glob("h-*/pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)  # it stops its branches' groups


def _job(run_dir: Path, ident: str, entry: str, **overrides: object) -> subprocess.Popen[str]:
    task = task_message(BranchTask(f"f[{entry}]", entry, None, {}, overrides=overrides))
    text = json.dumps({"program": "p1", "state": (run_dir / "state.key").read_text(), "task": task})
    return subprocess.Popen(["sh", CLIENT, ident, text], cwd=run_dir, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_jobs_hand_their_tasks_to_the_server_and_print_the_results(run_dir):
    jobs = [_job(run_dir, f"j{i}", f"n{i}", i=i) for i in range(4)]
    results = []
    for job in jobs:
        out, err = job.communicate(timeout=30)
        assert job.returncode == 0, err
        results.append(BranchResult.from_dict(json.loads(out)))
    assert [r.update["seen"] for r in results] == [["start", f"n{i}"] for i in range(4)]
    (pid_file,) = run_dir.glob("h-*/pid")
    server = int(pid_file.read_text())
    pids = {r.pid for r in results}
    assert len(pids) <= 2 and server not in pids  # the server's branch processes ran them
    assert list((run_dir / "jobs").iterdir()) == []  # each job removed its files


def test_starting_the_server_again_finds_it_running(run_dir):
    (pid_file,) = run_dir.glob("h-*/pid")
    before = pid_file.read_text()
    again = subprocess.run(["sh", SERVE, "2", sys.executable, "-m", "remote._entry"], cwd=run_dir, env=ENV,
                           capture_output=True, text=True, timeout=30, check=False)
    assert again.returncode == 0 and pid_file.read_text() == before


def test_a_job_killed_by_gnu_parallel_has_its_branch_killed(run_dir):
    pidfile = run_dir / "child.pid"
    job = _job(run_dir, "stuck", "s", hang=60, child=True, pidfile=str(pidfile))
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    job.kill()  # what GNU Parallel's --timeout (or a stop) does to the job
    job.communicate(timeout=10)
    assert _gone(child)  # the branch's process died, and what it started with it
    after = _job(run_dir, "next", "n")  # the slot is free again, on a fresh process
    out, err = after.communicate(timeout=30)
    assert after.returncode == 0, err
    assert BranchResult.from_dict(json.loads(out)).success


def test_the_driver_cancels_a_job_it_gave_up_on(run_dir):
    """GNU Parallel's own kill does not reach a host through a shared ssh connection: the
    driver sends "cancel ID" (remote.gnu_parallel.cancel_script), and the branch dies."""
    pidfile = run_dir / "child.pid"
    job = _job(run_dir, "given-up", "g", hang=60, child=True, pidfile=str(pidfile))
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    script = cancel_script(str(run_dir), ENV["PARALLEL_SSHLOGIN"], ["given-up"])
    subprocess.run(["sh", "-c", script], env=ENV, check=True, timeout=30)
    assert _gone(int(pidfile.read_text()))
    job.communicate(timeout=10)
    assert job.returncode != 0  # its waiting script was ended too


def _gone(pid: int, within: float = 10.0) -> bool:
    """``pid`` ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_no_server_is_a_clear_failure(tmp_path):
    (tmp_path / CLIENT).write_text(CLIENT_SCRIPT)
    (tmp_path / "jobs").mkdir()
    done = subprocess.run(["sh", CLIENT, "j1", "{}"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 75
    assert "no tea server runs on this host" in done.stderr
