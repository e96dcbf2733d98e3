"""The host shell scripts, run by a real /bin/sh on this machine: the sweep of dead runs, prepare, probe."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

from remote.config import STALE_AFTER_MINUTES
from remote.scripts import prepare_script, probe_script, sweep, worker_command


def _sh(script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=cwd, check=False)


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _run_dir(work: Path, name: str, *, owner: str | None, age_minutes: float, keep: bool = False) -> Path:
    path = work / f"tea-run.{name}"
    path.mkdir(parents=True)
    (path / "file").write_text("x")
    if owner is not None:
        (path / ".owners").write_text(owner + "\n")
    if keep:
        (path / ".keep").touch()
    then = time.time() - age_minutes * 60
    os.utime(path, (then, then))
    return path


def test_sweep_removes_only_old_runs_whose_processes_are_gone(tmp_path):
    me = socket.gethostname()
    old = STALE_AFTER_MINUTES + 30
    dead = _run_dir(tmp_path, "dead", owner=f"{me} {_dead_pid()}", age_minutes=old)
    orphan = _run_dir(tmp_path, "orphan", owner=None, age_minutes=old)
    young = _run_dir(tmp_path, "young", owner=f"{me} {_dead_pid()}", age_minutes=1)
    alive = _run_dir(tmp_path, "alive", owner=f"{me} {os.getpid()}", age_minutes=old)
    kept = _run_dir(tmp_path, "kept", owner=f"{me} {_dead_pid()}", age_minutes=old, keep=True)
    elsewhere = _run_dir(tmp_path, "elsewhere", owner=f"another-host {_dead_pid()}", age_minutes=old)
    other = tmp_path / "not-ours"
    other.mkdir()
    assert _sh(sweep(str(tmp_path))).returncode == 0
    assert not dead.exists() and not orphan.exists()
    # Too young, still running, kept on purpose, owned on a host this one cannot judge.
    assert young.exists() and alive.exists() and kept.exists() and elsewhere.exists()
    assert other.exists()


def test_prepare_makes_a_private_run_dir_and_finds_cached_binaries(tmp_path):
    work, cache = tmp_path / "work", tmp_path / "cache"
    cache.mkdir()
    (cache / "tea-aaa").write_bytes(b"binary")
    lost = _run_dir(work, "lost", owner=f"{socket.gethostname()} {os.getpid()}", age_minutes=1)
    done = _sh(prepare_script(str(work), str(cache), ["tea-aaa", "tea-bbb"], keep=True, old=[str(lost)]))
    assert done.returncode == 0, done.stderr
    facts = dict(line.split("=", 1) for line in done.stdout.splitlines())
    run = Path(facts["wd"])
    assert run.parent == work.resolve() and oct(run.stat().st_mode & 0o777) == "0o700"
    assert (run / ".keep").exists() and (run / ".owners").read_text().split()[0] == socket.gethostname()
    assert facts["cache"] == str(cache.resolve())
    assert facts["sha:tea-aaa"] == hashlib.sha256(b"binary").hexdigest() and "sha:tea-bbb" not in facts
    assert not lost.exists()  # a lost host's earlier directory goes when it is back


def test_relative_dirs_are_relative_to_the_home(tmp_path):
    done = _sh(prepare_script("~/work", ".cache/tea", [], keep=False), cwd=tmp_path)
    facts = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert Path(facts["wd"]).parent == (tmp_path / "work").resolve()
    assert facts["cache"] == str((tmp_path / ".cache" / "tea").resolve())


def test_probe_leaves_nothing_but_the_workdir(tmp_path):
    work = tmp_path / "work"
    done = _sh(probe_script(str(work), None, [], ["sh", "-c", "echo tea 9.9"]))
    facts = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert facts["writable"] == "1" and facts["command"] == "0" and facts["version"] == "tea 9.9"
    assert list(work.iterdir()) == []


def test_the_worker_command_quotes_every_word():
    command = worker_command("/tmp/my run", ["python3", "-m", "tea"], 3)
    assert command == "cd '/tmp/my run' && exec python3 -m tea worker --slots 3"
