"""The GNU Parallel transport's running half: stage files, run ``parallel``, read results.

For users who already run GNU Parallel across their machines. One ``parallel``
command per fan-out (built by ``remote.gnu_parallel.build_command``); a fresh
``ssh`` per job makes it far slower per branch than the direct transport, and
results arrive together when the command ends. Host faults are GNU Parallel's
business: ``--retries`` moves a failed job to another host. After the command (and
after a cancel) one ``parallel --nonall`` removes the run's private directory from
every host, unless ``cleanup: false``.

What travels: the program and the fan-out's shared state are ``--basefile``s, sent
once to each host (``program/state-<key>.json``); each job's input file holds only
its task (fields and overrides) and the key of its shared state. ``traffic``
counts those files: the basefiles once per host, each input file for the host
that ran it (not the tea binary, nor GNU Parallel's own ssh traffic).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from executors.base import BranchResult, BranchTask, ParallelConfig
from executors.results import cancelled, error_info, failed, with_stderr
from remote.config import RemoteSettings, forwarded_env
from remote.errors import RemoteSetupError
from remote.gnu_parallel import (
    RESULT_SUFFIX,
    STDERR_SUFFIX,
    JobRow,
    ParallelCommand,
    build_cleanup_command,
    build_command,
    build_prepare_command,
    parse_joblog,
)
from remote.local_files import Basefile
from remote.payload import Batch, Traffic, task_message
from tea.errors import BranchTimeout, SerializationError, WorkerDied

__all__ = ["run_batch"]

_POLL_SECONDS = 0.05


def _stage_program(stage: Path, batch: Batch) -> list[str]:
    """Write the program, its secrets and the shared states under ``stage/program``."""
    program = stage / "program"
    program.mkdir()
    names: list[str] = []
    _key, payload = batch.program
    if payload.get("kind") == "pickle":
        (program / "program.pickle").write_text(payload["data"])
        names.append("program/program.pickle")
    else:
        for name, text in payload.get("files", {}).items():
            target = program / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            names.append(f"program/{name}")
    if payload.get("secrets"):
        path = program / "secrets.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(payload["secrets"]), encoding="utf-8")
        names.append("program/secrets.json")
    for state in batch.shared_states():
        (program / f"state-{state.key}.json").write_text(state.text, encoding="utf-8")
        names.append(f"program/state-{state.key}.json")
    return names


def run_batch(
    settings: RemoteSettings,
    basefile: Basefile,
    batch: Batch,
    config: ParallelConfig,
    cancel: threading.Event | None,
    traffic: Traffic,
) -> Iterator[BranchResult]:
    """Run every task of ``batch`` through one ``parallel`` command; yields one result per task."""
    if shutil.which("parallel") is None:
        raise RemoteSetupError(
            "transport gnu_parallel needs GNU Parallel on this machine",
            hint="install it (apt-get install parallel) or use transport: ssh",
        )
    stage = Path(tempfile.mkdtemp(prefix=f"tea-gnu-{batch.program[0][:8]}-"))
    try:
        yield from _run(stage, settings, basefile, batch, config, cancel, traffic)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _stage_tasks(stage: Path, batch: Batch) -> tuple[dict[str, BranchTask], list[BranchResult]]:
    """One input file per task that can travel; a failed result for each that cannot."""
    inputs: dict[str, BranchTask] = {}
    refused: list[BranchResult] = []
    for task in batch.tasks:
        try:
            state = batch.state_of(task)
        except SerializationError as exc:
            refused.append(failed(task, error_info(exc, traceback=False)))
            continue
        name = f"task-{task.index:05d}-{len(inputs):05d}.json"
        data = {"state": state.key, "task": task_message(task)}
        (stage / name).write_text(json.dumps(data), encoding="utf-8")
        inputs[name] = task
    return inputs, refused


def _run(
    stage: Path,
    settings: RemoteSettings,
    basefile: Basefile,
    batch: Batch,
    config: ParallelConfig,
    cancel: threading.Event | None,
    traffic: Traffic,
) -> Iterator[BranchResult]:
    program_files = _stage_program(stage, batch)
    inputs, refused = _stage_tasks(stage, batch)
    yield from refused
    if not inputs:
        return
    command = ParallelCommand(
        hosts=settings.hosts,
        basefile=basefile.path,
        program_files=program_files,
        input_files=list(inputs),
        stage=stage,
        workdir=f"{settings.workdir.rstrip('/')}/tea-run.{secrets.token_hex(6)}",
        identity_file=settings.identity_file,
        known_hosts=str(Path(settings.known_hosts).expanduser()),
        connect_timeout=settings.connect_timeout,
        keepalive_seconds=settings.keepalive_seconds,
        timeout_seconds=config.timeout_seconds,
        retries=max(1, config.retry.max_attempts),
        env=list(forwarded_env(settings.env)),
    )
    started = time.monotonic()
    subprocess.run(
        build_prepare_command(command),
        cwd=stage,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=max(30.0, settings.connect_timeout * 3),
        check=False,
    )
    proc = subprocess.Popen(
        build_command(command),
        cwd=stage,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stopped = _wait(proc, cancel)
        _out, err = proc.communicate()
    finally:
        if settings.cleanup:
            _remove_workdir(command, settings)
    rows = parse_joblog(_read(stage / command.joblog), list(inputs))
    _count(traffic, stage, command, rows)
    for name, task in inputs.items():
        if stopped:
            yield cancelled(task)
            continue
        yield _result(stage, name, task, rows.get(name), err, config, started)


def _count(traffic: Traffic, stage: Path, command: ParallelCommand, rows: dict[str, JobRow]) -> None:
    """Add what GNU Parallel sent for branches: basefiles to every host, inputs to theirs."""
    shipped = sum((stage / name).stat().st_size for name in command.program_files)
    for host in command.hosts:
        traffic.add(host.name, shipped)
    for name, row in rows.items():
        traffic.add(row.host, (stage / name).stat().st_size)


def _wait(proc: subprocess.Popen[str], cancel: threading.Event | None) -> bool:
    """Wait for ``parallel``; on cancel, stop it (SIGTERM twice: GNU Parallel's way)."""
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            for _ in range(2):
                os.killpg(proc.pid, signal.SIGTERM)
                time.sleep(0.2)
            proc.wait(timeout=30)
            return True
        time.sleep(_POLL_SECONDS)
    return False


def _remove_workdir(command: ParallelCommand, settings: RemoteSettings) -> None:
    """Remove the run's directory on every host (a host that is down keeps it)."""
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            build_cleanup_command(command),
            cwd=command.stage,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=max(30.0, settings.connect_timeout * 3),
            check=False,
        )


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _result(
    stage: Path,
    name: str,
    task: BranchTask,
    row: JobRow | None,
    parallel_stderr: str,
    config: ParallelConfig,
    started: float,
) -> BranchResult:
    stem = name[: -len(".json")]
    host = row.host if row is not None else None
    output = stage / (stem + RESULT_SUFFIX)
    stderr_tail = "\n".join(_read(stage / (stem + STDERR_SUFFIX)).strip().splitlines()[-20:])
    if output.exists():
        result = BranchResult.from_dict(json.loads(output.read_text(encoding="utf-8")))
        error = result.error
        if error is not None:
            error = with_stderr(replace(error, host=host), stderr_tail, f"the job on {host}")
        return replace(result, host=host, error=error, attempts=task.attempt)
    status = row.exit_status if row is not None else None
    exc: Exception
    if row is not None and row.signal and config.timeout_seconds is not None:
        exc = BranchTimeout(f"timed out after {config.timeout_seconds:g}s", branch=task.branch_id, host=host)
    else:
        tail = stderr_tail or "\n".join(parallel_stderr.strip().splitlines()[-10:])
        exc = WorkerDied(
            "the job produced no result" + (f" (exit {status})" if status is not None else " (never ran)"),
            branch=task.branch_id,
            host=host,
            exit_status=status,
            stderr_tail=tail or None,
        )
    duration = (time.monotonic() - started) * 1000.0
    return replace(failed(task, error_info(exc, traceback=False), host=host), duration_ms=duration)
