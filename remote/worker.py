"""The remote side: ``tea worker``, a resident process that runs the branches it is sent.

Protocol (one JSON object per line; the driver is ``remote.channel.WorkerChannel``)::

    driver ─► stdin                                   stdout ─► driver
    {"op": "env", "env": {...}}                       {"op": "hello", "protocol", "version",
    {"op": "load", "key", "kind": "yaml"|"pickle",      "build", "pid", "pgid", "hostname",
       "files"|"data", "entry", "secrets"}              "slots"}
    {"op": "state", "key", "state": {...}}            {"op": "result", "id", "result": BranchResult}
    {"op": "run", "id", "key", "state", "task": {fields and overrides, no state}}

The worker runs its branches in ``--slots`` processes forked from it
(``remote.pool``): a host with ``slots: N`` runs N CPU-bound branches at once, on N
cores. Each process gets a program (the branch subset, or a cloudpickled
``BranchProgram``) and a fan-out's shared state once, the first time one of its
tasks needs them, and keeps the last ``STATES_KEPT`` states, as the driver assumes.
Each task then costs one short line each way: its overrides out, its update (a
delta) back. The protocol owns the real stdout: fd 1 is pointed at stderr so a
node's ``print`` cannot corrupt it. ``--serve DIR`` runs the GNU Parallel
transport's per-host server instead (``remote.server``).

Nothing a worker runs may outlive the driver's interest in it. The resident worker
leads a process group of its own (``pgid`` in the hello), so the driver stops a
branch that timed out or was cancelled by killing that group (``kill -KILL -pgid``)
and starting a fresh worker; and when stdin ends (the driver closed it, the
channel closed, the link is gone) the worker kills its group at once: itself, its
branch processes and whatever processes they started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import IO

import tea
from remote.branches import PROGRAM_DIR, PROTOCOL, STATES_KEPT, decode, load_program, run_task
from remote.bundle import build_info
from remote.pool import ProcessPool
from remote.server import serve

__all__ = ["PROGRAM_DIR", "PROTOCOL", "STATES_KEPT", "ResidentWorker", "load_program", "main", "run_task"]

# The driver writes these fields first (remote.channel, remote.payload): a line is routed by
# its head alone (a program or state may be large; a task comes for every branch).
_HEAD = re.compile(rb'^\{"op":"(load|state)","key":"([^"]*)"')
_RUN = re.compile(rb'^\{"op":"run","id":"([^"]*)","key":"([^"]*)","state":"([^"]*)"')


def preload() -> None:
    """Import what loading a workflow needs, once, before the branch processes are forked
    (they share it instead of each importing it)."""
    _ = tea.load


class ResidentWorker:
    """The resident loop: reads messages from ``inp``, writes results to ``out``.

    Messages are read in order on one thread; branches run in ``slots`` processes, so
    results go out in completion order.
    """

    def __init__(self, inp: int, out: IO[bytes], workdir: Path, slots: int) -> None:
        self._inp = inp
        self._out = out
        self._slots = slots
        self._buffer = bytearray()
        self._open = True
        self._pool = ProcessPool(slots, workdir, self._result, inherited=[inp, out.fileno()])

    def _send(self, line: bytes) -> None:
        try:
            self._out.write(line)
            self._out.flush()
        except OSError:
            pass  # the channel is gone; stdin ends with it, and serve() returns

    def _result(self, task_id: str, line: bytes) -> None:
        self._send(line)

    def serve(self) -> int:
        """Answer until stdin ends (the driver is done, or the link is gone); then return
        at once, leaving running branches to the caller (``main`` kills them)."""
        info = build_info()
        hello = {"op": "hello", "protocol": PROTOCOL, "version": info["version"], "build": info["build"],
                 "pid": os.getpid(), "pgid": os.getpgid(0), "hostname": socket.gethostname(),
                 "slots": self._slots}
        self._send((json.dumps(hello) + "\n").encode())
        preload()
        self._pool.start()
        self._pool.watch(self._inp, self._readable)
        while self._open:
            self._pool.pump(None)
        return 0

    def _readable(self) -> None:
        data = os.read(self._inp, 1 << 20)
        if not data:
            self._open = False
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if line.strip():
                self._dispatch(line)

    def _dispatch(self, line: bytes) -> None:
        run = _RUN.match(line)
        if run is not None:
            task_id, key, state = (part.decode() for part in run.groups())
            self._pool.run(task_id, key, state, line)
            return
        head = _HEAD.match(line)
        message = {} if head is not None else decode(line)
        if head is not None:
            op, key = head.group(1).decode(), head.group(2).decode()
        else:
            op, key = str(message.get("op")), str(message.get("key"))
        if op == "load":
            self._pool.load(key, line)
        elif op == "state":
            self._pool.state(key, line)
        elif op == "env":
            self._pool.env(line)
        elif op == "run":
            self._pool.run(str(message.get("id")), key, str(message.get("state")), line)


def main(argv: list[str]) -> int:
    """``tea worker [--slots N] [--serve DIR [--idle-exit SECONDS]]``."""
    parser = argparse.ArgumentParser(prog="tea worker", description="Run the branches a tea driver sends.")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--serve", metavar="DIR", help="run the GNU Parallel transport's server in DIR")
    parser.add_argument("--idle-exit", type=float, default=300.0, help="(--serve) stop after this long idle")
    args = parser.parse_args(argv)
    # The protocol keeps the real stdout; anything else printing goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args.serve:
        protocol_out.close()
        return serve(Path(args.serve), max(1, args.slots), args.idle_exit, preload)
    # Lead a process group of our own (under sshd we already do: setsid then fails),
    # so that killing the group reaches every branch and everything they started.
    with contextlib.suppress(OSError):
        os.setsid()
    ResidentWorker(0, protocol_out, Path.cwd(), max(1, args.slots)).serve()
    # stdin ended: nobody will read a result. Nothing this worker started may outlive it.
    group = os.getpgid(0)
    if group == os.getpid():  # never a group that is not ours (setsid cannot fail otherwise)
        os.killpg(group, signal.SIGKILL)
    os._exit(0)
