"""The remote side: ``tea worker``, a resident process that runs branches it is sent.

Protocol (one JSON object per line; the driver is ``remote.channel.WorkerChannel``)::

    driver ─► stdin                                   stdout ─► driver
    {"op": "env", "env": {...}}                       {"op": "hello", "protocol": 2, "version",
    {"op": "load", "key", "kind": "yaml"|"pickle",      "build", "pid", "pgid", "hostname"}
       "files"|"data", "entry", "secrets"}            {"op": "result", "id", "result": BranchResult}
    {"op": "run", "id", "key", "task": BranchTask}

A program (the branch subset, or a cloudpickled ``BranchProgram``) is loaded once
per key, the first time a task needs it; each task then costs one line each way.
Tasks run on ``--slots`` threads. The protocol owns the real stdout: fd 1 is
pointed at stderr so a node's ``print`` cannot corrupt it. ``--once`` runs a single
task from a file and writes its result to a file (the GNU Parallel transport).

Nothing a worker runs may outlive the driver's interest in it. The resident worker
leads a process group of its own (``pgid`` in the hello), so the driver stops a
branch that timed out or was cancelled by killing that group (``kill -KILL -pgid``)
and starting a fresh worker; and when stdin ends (the driver closed it, the
channel closed, the link is gone) the worker kills its group at once: itself, the
branches still running and whatever processes they started.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from executors.base import BranchProgram, BranchResult, BranchTask, ErrorInfo
from remote.statejson import json_check

__all__ = ["PROTOCOL", "Worker", "load_program", "main"]

PROTOCOL = 2
PROGRAM_DIR = "programs"


def load_program(directory: Path, message: dict[str, Any]) -> BranchProgram:
    """Materialise a ``load`` message under ``directory`` and return the program."""
    directory.mkdir(parents=True, exist_ok=True)
    secrets = message.get("secrets") or {}
    if message.get("kind") == "pickle":
        import cloudpickle

        program: Any = cloudpickle.loads(base64.b64decode(message["data"]))
    else:
        for name, text in (message.get("files") or {}).items():
            target = (directory / name).resolve()
            if directory.resolve() not in target.parents:
                raise ValueError(f"program file {name!r} escapes the program directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        program = _load_yaml(directory / message.get("entry", "workflow.yaml"))
    if secrets and hasattr(program, "with_secrets"):
        program = program.with_secrets(secrets)
    return program  # type: ignore[no-any-return]


def _load_yaml(path: Path) -> BranchProgram:
    import tea

    loaded: Any = tea.load(path)
    graph = getattr(loaded, "graph", loaded)
    return graph  # type: ignore[no-any-return]


def run_task(program: BranchProgram, task: BranchTask) -> dict:
    """Run one branch and return ``BranchResult.to_dict()`` (a failure is a result too)."""
    started = time.perf_counter()
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        # No cancel event: a branch the driver gives up on is stopped by killing its worker.
        state = program.run_branch(task, None)
        json_check(state, f"the state branch {task.branch_id} returned", branch=task.branch_id)
        result = BranchResult(task.branch_id, True, state, index=task.index, attempts=task.attempt)
    except Exception as exc:
        info = ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))
        result = BranchResult(
            task.branch_id, False, task.state, info, index=task.index, attempts=task.attempt
        )
    duration = (time.perf_counter() - started) * 1000.0
    out = result.to_dict()
    out.update(where, duration_ms=duration)
    return out


class Worker:
    """The resident loop: reads tasks from ``inp``, writes results to ``out``."""

    def __init__(self, inp: IO[str], out: IO[str], workdir: Path, slots: int) -> None:
        self._inp = inp
        self._out = out
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="tea-worker")
        self._write_lock = threading.Lock()
        self._programs: dict[str, BranchProgram | BaseException] = {}
        self._pending_loads: dict[str, dict[str, Any]] = {}
        self._load_lock = threading.Lock()

    def _send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":"))
        with self._write_lock:
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except OSError:
                pass  # the channel is gone; stdin ends with it, and serve() returns

    def serve(self) -> int:
        """Answer until stdin ends (the driver is done, or the link is gone); then return
        at once, leaving running branches to the caller (``main`` kills them)."""
        from remote.bundle import build_info

        info = build_info()
        self._send(
            {
                "op": "hello",
                "protocol": PROTOCOL,
                "version": info["version"],
                "build": info["build"],
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "hostname": socket.gethostname(),
            }
        )
        for line in self._inp:
            if line.strip():
                self._dispatch(json.loads(line))
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._write_lock, contextlib.suppress(OSError):
            self._out.flush()
        return 0

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "run":
            self._pool.submit(self._run, message)
        elif op == "load":
            self._pending_loads[message["key"]] = message
        elif op == "env":
            os.environ.update({str(k): str(v) for k, v in (message.get("env") or {}).items()})

    def _program(self, key: str) -> BranchProgram:
        with self._load_lock:
            if key not in self._programs:
                message = self._pending_loads.pop(key, None)
                if message is None:
                    self._programs[key] = KeyError(f"program {key} was never sent")
                else:
                    try:
                        directory = self._workdir / PROGRAM_DIR / key
                        self._programs[key] = load_program(directory, message)
                    except Exception as exc:
                        self._programs[key] = exc
            program = self._programs[key]
        if isinstance(program, BaseException):
            raise program
        return program

    def _run(self, message: dict[str, Any]) -> None:
        task = BranchTask(**message["task"])
        try:
            result = run_task(self._program(message["key"]), task)
        except Exception as exc:
            info = ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))
            failed = BranchResult(task.branch_id, False, task.state, info, index=task.index)
            result = failed.to_dict()
            result.update(host=socket.gethostname(), pid=os.getpid())
        self._send({"op": "result", "id": message["id"], "result": result})


def _once(args: argparse.Namespace) -> int:
    """One task from ``--input`` to ``--output`` (exit 0: branch succeeded, 1: it failed)."""
    program_dir = Path(args.program)
    task = BranchTask(**json.loads(Path(args.input).read_text(encoding="utf-8")))
    pickled = program_dir / "program.pickle"
    if pickled.exists():
        message: dict[str, Any] = {"kind": "pickle", "data": pickled.read_text()}
    else:
        message = {"kind": "yaml", "entry": "workflow.yaml"}
    secrets_file = program_dir / "secrets.json"
    if secrets_file.exists():
        message["secrets"] = json.loads(secrets_file.read_text(encoding="utf-8"))
    try:
        result = run_task(load_program(program_dir, message), task)
    except Exception as exc:
        info = ErrorInfo.from_exception(exc, "".join(traceback.format_exception(exc)))
        result = BranchResult(task.branch_id, False, task.state, info, index=task.index).to_dict()
    output = Path(args.output)
    partial = output.with_name(output.name + ".part")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(output)
    return 0 if result["success"] else 1


def main(argv: list[str]) -> int:
    """``tea worker [--slots N] [--once --program DIR --input F --output F]``."""
    parser = argparse.ArgumentParser(prog="tea worker", description=__doc__.split("\n")[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--program")
    parser.add_argument("--input")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if args.once and not (args.program and args.input and args.output):
        parser.error("--once needs --program, --input and --output")
    # The protocol keeps the real stdout; anything else printing goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.once:
        protocol_out.close()
        return _once(args)
    # Lead a process group of our own (under sshd we already do: setsid then fails),
    # so that killing the group reaches every branch and everything they started.
    with contextlib.suppress(OSError):
        os.setsid()
    Worker(sys.stdin, protocol_out, Path.cwd(), max(1, args.slots)).serve()
    # stdin ended: nobody will read a result. Nothing this worker started may outlive it.
    group = os.getpgid(0)
    if group == os.getpid():  # never a group that is not ours (setsid cannot fail otherwise)
        os.killpg(group, signal.SIGKILL)
    os._exit(0)
