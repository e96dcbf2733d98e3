"""The GNU Parallel transport's pure half: the command line and the joblog parser.

Data flow of one fan-out (``remote.executor`` does the running)::

    stage/ (local temp dir, parallel's cwd)
      task-0000.json ... task-NNNN.json      one input file per branch (--transferfile {}):
                                             its task and overrides, its state's key
      program/<files>                        the branch subset or pickle, and each shared
                                             state-<key>.json (--basefile, once per host)
    basefile                                 the frozen tea binary (--basefile, once per host)
        │  parallel --sshlogin N/ssh ... --workdir WD --joblog stage/joblog ...
        ▼
    host:WD/  ./tea worker --once ... > {.}.result.json 2> {.}.err
        │  --return {.}.result.json --return {.}.err
        ▼
    stage/task-NNNN.result.json + joblog row (Seq ↔ input order ↔ branch, Exitval, Signal)
        │  then, once: parallel --nonall ... rm -rf -- WD   (build_cleanup_command)

``-M`` (ControlMaster) is never used: with it, version 20221122 loses basefiles.
``--cleanup`` is not used either: after removing a job's files it runs ``rmdir`` on
every prefix of their path, which deletes the user's ``workdir`` (and any empty
parent of it) once the run's directory is gone. The private directory ``WD`` is
removed by ``rm -rf`` instead, and nothing above it is touched.
Every path that reaches a remote shell is quoted with ``shlex.quote``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from remote.config import HostSpec

__all__ = [
    "JobRow",
    "ParallelCommand",
    "build_cleanup_command",
    "build_command",
    "build_prepare_command",
    "parse_joblog",
    "ssh_login",
]

RESULT_SUFFIX = ".result.json"
STDERR_SUFFIX = ".err"


@dataclass(frozen=True, slots=True)
class ParallelCommand:
    """What one GNU Parallel invocation needs; ``build_command`` turns it into argv."""

    hosts: Sequence[HostSpec]
    basefile: Path
    program_files: Sequence[str]
    """Subset files, relative to the stage dir (``program/workflow.yaml`` ...)."""
    input_files: Sequence[str]
    """One JSON task file per branch, relative to the stage dir, in branch order."""
    stage: Path
    workdir: str
    """The run's private directory on each host (created by parallel; removed by tea)."""
    joblog: str = "joblog"
    identity_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    keepalive_seconds: float = 15.0
    timeout_seconds: float | None = None
    retries: int = 1
    env: Sequence[str] = ()


def ssh_login(host: HostSpec, cmd: ParallelCommand) -> str:
    """The ``--sshlogin`` entry for one host: ``slots/ssh <options> [-p port] [user@]host``.

    GNU Parallel runs the ssh part through a shell and splits sshlogins on commas,
    so paths are shell-quoted and commas doubled.
    """
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if cmd.known_hosts:
        ssh += ["-o", f"UserKnownHostsFile={cmd.known_hosts}"]
    if cmd.identity_file:
        ssh += ["-o", "IdentitiesOnly=yes", "-i", cmd.identity_file]
    ssh += [
        "-o", f"ConnectTimeout={max(1, round(cmd.connect_timeout))}",
        "-o", f"ServerAliveInterval={max(1, round(cmd.keepalive_seconds))}",
        "-o", "ServerAliveCountMax=3",
    ]
    if host.port:
        ssh += ["-p", str(host.port)]
    target = f"{host.user}@{host.hostname}" if host.user else host.hostname
    ssh.append(target)
    login = " ".join(shlex.quote(part) for part in ssh)
    return f"{host.slots}/{login}".replace(",", ",,")


def _anchored(stage: Path, relative: str) -> str:
    # "/abs/stage/./rel" makes rsync (under parallel) recreate only "rel" in the workdir.
    return f"{stage.resolve()}/./{relative}"


def build_command(cmd: ParallelCommand) -> list[str]:
    """The argv to run (no shell on the local side); the job runs ``./tea worker --once``."""
    if not cmd.hosts:
        raise ValueError("GNU Parallel needs at least one host")
    argv = ["parallel", "--will-cite", "--halt", "never"]
    for host in cmd.hosts:
        argv += ["--sshlogin", ssh_login(host, cmd)]
    basefile = cmd.basefile.resolve()
    argv += ["--basefile", f"{basefile.parent}/./{basefile.name}"]
    for name in cmd.program_files:
        argv += ["--basefile", _anchored(cmd.stage, name)]
    argv += [
        "--workdir", cmd.workdir,
        "--transferfile", "{}",
        "--return", "{.}" + RESULT_SUFFIX,
        "--return", "{.}" + STDERR_SUFFIX,
        "--joblog", cmd.joblog,
    ]
    if cmd.timeout_seconds is not None:
        argv += ["--timeout", f"{cmd.timeout_seconds:g}"]
    if cmd.retries > 1:
        argv += ["--retries", str(cmd.retries)]
    for name in cmd.env:
        argv += ["--env", name]
    job = (
        f"./{shlex.quote(basefile.name)} worker --once --program program "
        f"--input {{}} --output {{.}}{RESULT_SUFFIX} 2> {{.}}{STDERR_SUFFIX}"
    )
    argv.append(job)
    argv.append(":::")
    argv.extend(cmd.input_files)
    return argv


def build_prepare_command(cmd: ParallelCommand) -> list[str]:
    """The argv that creates the run's workdir on every host, private (mode 700) before
    any branch state lands in it (GNU Parallel itself would create it with the umask)."""
    argv = ["parallel", "--will-cite", "--nonall"]
    for host in cmd.hosts:
        argv += ["--sshlogin", ssh_login(host, cmd)]
    argv.append(f"umask 077 && mkdir -p -- {shlex.quote(cmd.workdir)} && chmod 700 -- {shlex.quote(cmd.workdir)}")
    return argv


def build_cleanup_command(cmd: ParallelCommand) -> list[str]:
    """The argv that removes the run's private workdir from every host, and nothing above it."""
    argv = ["parallel", "--will-cite", "--nonall"]
    for host in cmd.hosts:
        argv += ["--sshlogin", ssh_login(host, cmd)]
    argv.append(f"rm -rf -- {shlex.quote(cmd.workdir)}")
    return argv


@dataclass(frozen=True, slots=True)
class JobRow:
    """One joblog row, tied back to its input file (and so to its branch)."""

    seq: int
    host: str
    runtime: float
    exit_status: int
    signal: int
    input_file: str


def parse_joblog(text: str, input_files: Sequence[str]) -> dict[str, JobRow]:
    """Map each input file to its final joblog row (the last attempt when retried).

    Columns: Seq Host Starttime JobRuntime Send Receive Exitval Signal Command.
    ``Seq`` is the 1-based position of the input, which is how rows find branches.
    """
    rows: dict[str, JobRow] = {}
    for line in text.splitlines()[1:]:
        parts = line.split("\t", 8)
        if len(parts) < 9 or not parts[0].isdigit():
            continue
        seq = int(parts[0])
        if not 0 < seq <= len(input_files):
            continue
        input_file = input_files[seq - 1]
        rows[input_file] = JobRow(
            seq=seq,
            host=_host_of_login(parts[1]),
            runtime=float(parts[3]),
            exit_status=int(parts[6]),
            signal=int(parts[7]),
            input_file=input_file,
        )
    return rows


def _host_of_login(login: str) -> str:
    """The ``user@host`` at the end of an sshlogin (the joblog prints the whole ssh command)."""
    words = login.split()
    if not words:
        return login
    target = words[-1]
    if "-p" in words:
        port = words[words.index("-p") + 1]
        return f"{target}:{port}"
    return target
