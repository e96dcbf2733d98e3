"""The GNU Parallel transport's per-host server: ``tea worker --serve DIR``.

Started once per run on each host (by ``tea-serve.sh``, see ``remote.gnu_parallel``)
in the run's directory, it takes over the branch work that each GNU Parallel job
used to do by starting tea: a job is a few lines of ``sh`` that hand their task
file to this server and print its result::

    job (tea-client.sh TASK)                        server (this module)
      printf "PID TASK" > DIR/requests  ──FIFO──►   read TASK: {"program", "state", "task"}
                                                     program: programs/KEY/ (a workflow
                                                       directory, or program.pickle)
                                                     state:   states/KEY.json
                                                     run it on the process pool
      waits; SIGUSR1 wakes it           ◄────────   TASK.PID.res written (atomically), then
      cat TASK.PID.res  ─► GNU Parallel's stdout      kill -USR1 PID

The server leads a session of its own, so the job that started it can end. A job the
driver gives up on (its timeout, fail_fast, a stop) is cancelled by a ``cancel ID ...``
line on the FIFO (GNU Parallel's own kill does not reach the host through a shared ssh
connection); a job whose script dies is noticed within half a second. Either way the
process running its branch is killed with all it started, and replaced. SIGTERM stops
the server the same way, every branch with it. With no
request and nothing running for ``idle_exit`` seconds the server leaves (the driver
starts it again when it needs it). Files: ``DIR/pid`` (its process group),
``DIR/requests`` (the FIFO), ``DIR/ready`` (it listens), ``DIR/log`` (its stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from remote.pool import ProcessPool

__all__ = ["REQUESTS", "serve"]

REQUESTS = "requests"
_CHECK_SECONDS = 0.5


class _Server:
    """The FIFO, the pool and the jobs waiting on it; everything on one thread."""

    def __init__(self, directory: Path, slots: int, idle_exit: float) -> None:
        self.dir = directory
        self.run_dir = Path.cwd()
        self.idle_exit = idle_exit
        self.fifo = os.open(directory / REQUESTS, os.O_RDWR | os.O_NONBLOCK)
        self.pool = ProcessPool(slots, self.run_dir, self._result, inherited=[self.fifo], own_groups=True)
        self.owners: dict[str, int] = {}
        self.loaded: set[str] = set()
        self.buffer = bytearray()
        self.last_seen = time.monotonic()
        self.stopping = False

    def loop(self) -> None:
        self.pool.start()
        self.pool.watch(self.fifo, self._readable)
        (self.dir / "ready").touch()
        while not self.stopping:
            self.pool.pump(_CHECK_SECONDS)
            self._check_clients()
            idle = not self.owners and time.monotonic() - self.last_seen > self.idle_exit
            self.stopping = self.stopping or idle

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.buffer += os.read(self.fifo, 1 << 16)
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end]).decode(errors="replace")
            del self.buffer[: end + 1]
            self.last_seen = time.monotonic()
            first, _, rest = line.partition(" ")
            if first == "cancel":
                self._cancel(rest.split())
            elif first.isdigit() and rest:
                self._request(int(first), rest)

    def _request(self, owner: int, path: str) -> None:
        """One job's task file: ready its program and state, queue it."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            key, state_key = str(data["program"]), str(data["state"])
            self._ready(key, state_key)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._write(f"{path}.{owner}", owner, _unreadable(path, exc))
            return
        task_id = f"{path}.{owner}"  # a result is its job's: never one of an earlier job of the task
        self.owners[task_id] = owner
        line = json.dumps({"op": "run", "id": task_id, "key": key, "state": state_key, "task": data["task"]},
                          separators=(",", ":")).encode() + b"\n"
        self.pool.run(task_id, key, state_key, line)

    def _ready(self, key: str, state_key: str) -> None:
        """Hand the pool the program and the shared state, read from the run's files."""
        programs = self.run_dir / "programs" / key
        if key not in self.loaded:
            pickled = programs / "program.pickle"
            message: dict[str, object] = (
                {"kind": "pickle", "data": pickled.read_text()} if pickled.exists()
                else {"kind": "dir", "path": str(programs), "entry": "workflow.yaml"}
            )
            secrets = programs / "secrets.json"
            if secrets.exists():
                message["secrets"] = json.loads(secrets.read_text(encoding="utf-8"))
            self.pool.load(key, _line({"op": "load", "key": key, **message}))
            self.loaded.add(key)
        if not self.pool.has_state(state_key):
            text = (self.run_dir / "states" / f"{state_key}.json").read_text(encoding="utf-8")
            self.pool.state(state_key, f'{{"op":"state","key":"{state_key}","state":{text}}}\n'.encode())

    def _result(self, task_id: str, line: bytes) -> None:
        owner = self.owners.pop(task_id, None)
        if owner is not None:
            message = json.loads(line)
            self._write(task_id, owner, message["result"])

    @staticmethod
    def _write(path: str, owner: int, result: dict[str, object]) -> None:
        partial = f"{path}.res.part"
        with contextlib.suppress(OSError):
            Path(partial).write_text(json.dumps(result, separators=(",", ":")) + "\n", encoding="utf-8")
            os.replace(partial, f"{path}.res")
        with contextlib.suppress(OSError):
            os.kill(owner, signal.SIGUSR1)

    def _cancel(self, idents: list[str]) -> None:
        """The driver gave up on these jobs (their timeout, fail_fast, a stop): kill their
        branches, and their jobs' waiting scripts."""
        names = {f"{ident}.json" for ident in idents}
        for task_id, owner in list(self.owners.items()):
            if Path(task_id.rsplit(".", 1)[0]).name in names:
                del self.owners[task_id]
                self.pool.cancel(task_id)
                with contextlib.suppress(OSError):
                    os.kill(owner, signal.SIGKILL)

    def _check_clients(self) -> None:
        """Kill the branches of jobs that are gone (GNU Parallel's timeout, or a stop)."""
        for task_id, owner in list(self.owners.items()):
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                del self.owners[task_id]
                self.pool.cancel(task_id)
            except PermissionError:
                continue

    def close(self) -> None:
        self.pool.close()
        for name in ("ready", REQUESTS, "pid"):
            with contextlib.suppress(OSError):
                (self.dir / name).unlink()


def _unreadable(path: str, exc: BaseException) -> dict[str, object]:
    error = {"type": "ProgramLoadError", "message": f"the task file {path} cannot be used on "
             f"{socket.gethostname()}: {exc}", "category": "setup", "kinds": ["ProgramLoadError"]}
    return {"branch_id": Path(path).stem, "success": False, "state": {}, "error": error}


def _line(message: dict[str, object]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def serve(directory: Path, slots: int, idle_exit: float, preload: Callable[[], None]) -> int:
    """Run the server in ``directory`` (inside the run's directory, the current one)."""
    with contextlib.suppress(OSError):
        os.setsid()  # its own session: the job that started it ends, the server stays
    directory.mkdir(parents=True, exist_ok=True)
    fifo = directory / REQUESTS
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    os.mkfifo(fifo, 0o600)
    (directory / "pid").write_text(f"{os.getpgid(0)}\n")
    with (Path.cwd() / ".owners").open("a") as owners:
        owners.write(f"{socket.gethostname()} {os.getpid()}\n")
    env = Path.cwd() / "env.json"  # the variables ``env`` forwards (sent with the files)
    if env.exists():
        os.environ.update({str(k): str(v) for k, v in json.loads(env.read_text(encoding="utf-8")).items()})
    preload()
    server = _Server(directory, slots, idle_exit)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "stopping", True))
    try:
        server.loop()
    finally:
        server.close()
    return 0

