"""The remote side: ``tea worker``, a resident process that runs branches it is sent.

Protocol (one JSON object per line; the driver is ``remote.channel.WorkerChannel``)::

    driver ─► stdin                                   stdout ─► driver
    {"op": "env", "env": {...}}                       {"op": "hello", "protocol": 3, "version",
    {"op": "load", "key", "kind": "yaml"|"pickle",      "build", "pid", "pgid", "hostname"}
       "files"|"data", "entry", "secrets"}            {"op": "result", "id", "result": BranchResult}
    {"op": "state", "key", "state": {...}}
    {"op": "run", "id", "key", "state", "task": {fields and overrides, no state}}

A program (the branch subset, or a cloudpickled ``BranchProgram``) is loaded once
per key, the first time a task needs it. A fan-out's shared state comes once per
key too; the worker keeps the last ``STATES_KEPT`` (the oldest goes first, which
the driver mirrors, so it knows what to send again) and a task reads it when it
arrives. Each task then costs one short line each way: its overrides out, its
update (a delta) back. Tasks run on ``--slots`` threads. The protocol owns the
real stdout: fd 1 is pointed at stderr so a node's ``print`` cannot corrupt it.
``--once`` runs a single task from a file and writes its result to a file (the
GNU Parallel transport).

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
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import tea
from executors.base import BranchProgram, BranchTask
from executors.results import failed, succeeded
from remote.bundle import build_info
from remote.errors import ProgramLoadError
from remote.payload import task_from_message
from remote.statejson import json_check

__all__ = ["PROGRAM_DIR", "PROTOCOL", "STATES_KEPT", "ResidentWorker", "load_program", "main", "run_task"]

PROTOCOL = 3
PROGRAM_DIR = "programs"
STATES_KEPT = 4
"""Shared states a worker keeps (and the driver assumes it keeps): the last ones sent."""


def load_program(directory: Path, message: Mapping[str, Any]) -> BranchProgram:
    """Materialise a ``load`` message under ``directory`` and return the program;
    raises ``ProgramLoadError`` when it does not load here."""
    try:
        if message.get("kind") == "pickle":
            import cloudpickle  # only programs built in Python need it

            program = cloudpickle.loads(base64.b64decode(message["data"]))
            if not isinstance(program, BranchProgram):
                raise TypeError(f"a {type(program).__name__} is not a BranchProgram")
            return program
        for name, text in (message.get("files") or {}).items():
            target = (directory / name).resolve()
            if directory.resolve() not in target.parents:
                raise ValueError(f"program file {name!r} escapes the program directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        workflow = tea.load(directory / message.get("entry", "workflow.yaml"))
        return workflow.branch_program(message.get("secrets") or None)
    except Exception as exc:
        raise ProgramLoadError(
            f"the workflow sent to {socket.gethostname()} does not load there: {exc}",
            hint="the host loads it with the tea binary it was sent: build that from this tea "
            "(`tea bundle`), and keep the files the workflow names beside it",
        ) from exc


def run_task(program: BranchProgram, task: BranchTask) -> dict[str, Any]:
    """Run one branch and return its ``BranchResult.to_dict()`` (a failure is a result too),
    with where and how long it ran."""
    started = time.perf_counter()
    try:
        # No cancel event: a branch the driver gives up on is stopped by killing its worker.
        update = program.run_branch(task, None)
        json_check(update, f"the update branch {task.branch_id} returned", branch=task.branch_id)
        result = succeeded(task, update)
    except Exception as exc:
        result = failed(task, exc)
    out = result.to_dict()
    out.update(host=socket.gethostname(), pid=os.getpid(), duration_ms=(time.perf_counter() - started) * 1000.0)
    return out


class ResidentWorker:
    """The resident loop: reads messages from ``inp``, writes results to ``out``.

    Messages are read on the calling thread, in order; branches run on ``slots``
    threads, so results go out in completion order.
    """

    def __init__(self, inp: IO[str], out: IO[str], workdir: Path, slots: int) -> None:
        self._inp = inp
        self._out = out
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="tea-worker")
        self._write_lock = threading.Lock()
        self._programs: dict[str, BranchProgram | BaseException] = {}
        self._pending_loads: dict[str, dict[str, Any]] = {}
        self._load_lock = threading.Lock()
        self._states: OrderedDict[str, dict[str, Any]] = OrderedDict()

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
        info = build_info()
        hello = {"op": "hello", "protocol": PROTOCOL, "version": info["version"], "build": info["build"],
                 "pid": os.getpid(), "pgid": os.getpgid(0), "hostname": socket.gethostname()}
        self._send(hello)
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
            # The state is looked up now, in message order: the driver counts on it.
            state = self._states.get(message.get("state", ""))
            self._pool.submit(self._run, message, state)
        elif op == "state":
            self._states[message["key"]] = message["state"]
            while len(self._states) > STATES_KEPT:
                self._states.popitem(last=False)
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
                        self._programs[key] = load_program(self._workdir / PROGRAM_DIR / key, message)
                    except ProgramLoadError as exc:
                        self._programs[key] = exc
            program = self._programs[key]
        if isinstance(program, BaseException):
            raise program
        return program

    def _run(self, message: dict[str, Any], state: dict[str, Any] | None) -> None:
        task = task_from_message(message["task"], state or {})
        try:
            if state is None:
                raise KeyError(f"shared state {message.get('state')} was never sent")
            result = run_task(self._program(message["key"]), task)
        except Exception as exc:
            result = failed(task, exc).to_dict()
            result.update(host=socket.gethostname(), pid=os.getpid())
        self._send({"op": "result", "id": message["id"], "result": result})


def _once(args: argparse.Namespace) -> int:
    """One task from ``--input`` to ``--output`` (exit 0: branch succeeded, 1: it failed).

    The input is ``{"state": key, "task": ...}``; the shared state is the program
    directory's ``state-<key>.json`` (shipped once per host beside the program).
    """
    program_dir = Path(args.program)
    data = json.loads(Path(args.input).read_text(encoding="utf-8"))
    state_file = program_dir / f"state-{data['state']}.json"
    pickled = program_dir / "program.pickle"
    message: dict[str, Any] = {"kind": "pickle", "data": pickled.read_text()} if pickled.exists() else {}
    secrets_file = program_dir / "secrets.json"
    if secrets_file.exists():
        message["secrets"] = json.loads(secrets_file.read_text(encoding="utf-8"))
    task = task_from_message(data["task"], {})
    try:
        task = task_from_message(data["task"], json.loads(state_file.read_text(encoding="utf-8")))
        result = run_task(load_program(program_dir, message), task)
    except Exception as exc:
        result = failed(task, exc).to_dict()
    output = Path(args.output)
    partial = output.with_name(output.name + ".part")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(output)
    return 0 if result["success"] else 1


def main(argv: list[str]) -> int:
    """``tea worker [--slots N] [--once --program DIR --input F --output F]``."""
    parser = argparse.ArgumentParser(prog="tea worker", description="Run the branches a tea driver sends.")
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
    ResidentWorker(sys.stdin, protocol_out, Path.cwd(), max(1, args.slots)).serve()
    # stdin ended: nobody will read a result. Nothing this worker started may outlive it.
    group = os.getpgid(0)
    if group == os.getpid():  # never a group that is not ours (setsid cannot fail otherwise)
        os.killpg(group, signal.SIGKILL)
    os._exit(0)
