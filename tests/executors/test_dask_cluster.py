"""The dask executor against a real ``dask scheduler`` and two ``dask worker`` processes started
here (and, once, the embedded LocalCluster): what is shipped once, dead workers, same results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import distributed
import pytest

import tea
from executors import BranchTask, ParallelConfig, RetryPolicy
from executors.dask import DaskExecutor, DaskOptions
from tea.overrides import setting, strategy

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
WAIT_SECONDS = 30.0


def note(log: str, what: str) -> None:
    with open(log, "a") as handle:
        handle.write(f"{what} {os.getpid()}\n")


def notes(log: Path, what: str) -> list[int]:
    """The pids that wrote ``what`` to ``log``, one per line written."""
    if not log.exists():
        return []
    return [int(pid) for kind, pid in (line.split() for line in log.read_text().splitlines()) if kind == what]


class Recorder:
    """A ``BranchProgram`` that notes each unpickling of itself; a branch with ``wait`` notes
    that it runs, then waits (its first attempt only) to be killed or cancelled."""

    key = "recorder"

    def __init__(self, log: str) -> None:
        self.log = log

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        note(self.log, "program")

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        own = task.overrides
        if own.get("wait") and task.attempt == 1:
            note(own["wait"], "running")
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline and not (cancel is not None and cancel.is_set()):
                time.sleep(0.02)
        return {"pid": os.getpid(), "y": own["x"] * 2}


class Counted:
    """A value that notes each time it is pickled ("dump") and unpickled ("load")."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.payload = b"x" * 100_000

    def __getstate__(self) -> dict[str, Any]:
        note(self.log, "dump")
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        note(self.log, "load")


cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need no copy of this file


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this module started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Cluster:
    """A scheduler and its workers, each a process of ours (single-threaded, no nanny)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            # Tea's retry policy, not Dask's, decides whether a branch whose worker died runs again.
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
        }
        self.env.pop("DASK_SCHEDULER_ADDRESS", None)
        info = workdir / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_SECONDS
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline and self.scheduler.poll() is None, "no scheduler"
            time.sleep(0.05)
        self.address: str = json.loads(info.read_text())["address"]
        self.workers: list[subprocess.Popen[bytes]] = []
        self.client = distributed.Client(self.address, timeout=WAIT_SECONDS, set_as_default=False)

    def add_worker(self) -> None:
        self.workers.append(subprocess.Popen(
            [BIN / "dask", "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
             "--local-directory", str(self.workdir)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))

    def running(self, count: int = 2) -> set[int]:
        """Start workers until ``count`` run; their PIDs."""
        self.workers = [w for w in self.workers if w.poll() is None]
        while len(self.workers) < count:
            self.add_worker()
        self.client.wait_for_workers(count, timeout=WAIT_SECONDS)
        return {w.pid for w in self.workers}

    def close(self) -> None:
        self.client.close()
        for proc in [*self.workers, self.scheduler]:
            stop(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        made.running()
        yield made
    finally:
        made.close()


def config(cluster: Cluster, **changes: Any) -> ParallelConfig:
    chunk_size = changes.pop("chunk_size", None)
    options = DaskOptions(address=cluster.address, chunk_size=chunk_size)
    return ParallelConfig(strategy="dask", options=options, **changes)


def branch(index: int, shared: dict[str, Any], **own: Any) -> BranchTask:
    return BranchTask(f"fan[{index}]", "work", None, shared, index=index, overrides={"x": index, **own})


def test_the_program_and_the_shared_input_go_to_each_worker_once(cluster, tmp_path):
    pids = cluster.running()
    log = tmp_path / "log"
    shared = {"big": Counted(str(log))}
    with DaskExecutor() as executor:
        for _ in range(2):  # a second fan-out over the same input finds it on the workers
            tasks = [branch(i, shared) for i in range(20)]
            results = list(executor.run(Recorder(str(log)), tasks, config(cluster, chunk_size=1)))
            assert all(r.success for r in results)
    ran = {r.update["pid"] for r in results}
    assert ran <= pids and len(ran) == 2
    assert len(notes(log, "dump")) == 2  # pickled once per fan-out, in the driver
    for what in ("load", "program"):
        loaded = notes(log, what)
        assert set(loaded) <= pids and len(loaded) == len(set(loaded)), what  # once per worker


def comparable(final: dict[str, Any]) -> dict[str, Any]:
    """The final state, with the last fan-out's results reduced to what the branches did."""
    results = final.get("parallel_results") or []
    return {**final, "parallel_results": [(r.branch_id, r.success, r.update) for r in results]}


@pytest.mark.parametrize(
    ("example", "given"),
    [
        ("parallel_fanout.yaml", {"topic": "edge agents"}),  # Python nodes, static fan-out
        ("dynamic_parallel.yaml", {"words": ["tea", "edge", "agent"]}),  # steps, action, subgraph
        ("lua_fanout.yaml", {"numbers": [3, 1, 4, 1, 5, 9, 2, 6]}),  # Lua nodes
    ],
)
def test_the_same_final_state_as_on_threads(cluster, example, given):
    cluster.running()
    on_dask = [strategy("dask"), setting(f"settings.parallel.dask.address={cluster.address}")]
    finals = [
        comparable(tea.load(EXAMPLES / example, overrides=overrides).invoke(dict(given)))
        for overrides in ([strategy("thread")], on_dask)
    ]
    assert finals[0] == finals[1]


def kill_when_running(marker: Path) -> int:
    """SIGKILL the worker process that notes ``running`` in ``marker``; its PID."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not notes(marker, "running"):
        assert time.monotonic() < deadline, "the branch never started"
        time.sleep(0.02)
    (pid,) = notes(marker, "running")
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("attempts", [2, 1])
def test_a_worker_killed_mid_branch_fails_that_attempt_and_the_policy_decides(cluster, tmp_path, attempts):
    cluster.running()
    marker = tmp_path / "running"
    retry = RetryPolicy(max_attempts=attempts, backoff_base_ms=1, backoff_max_ms=1, jitter=False)
    tasks = [branch(0, {}, wait=str(marker))]
    with DaskExecutor() as executor:
        results: list[Any] = []
        runner = threading.Thread(target=lambda: results.extend(
            executor.run(Recorder(str(tmp_path / "log")), tasks, config(cluster, retry=retry))))
        runner.start()
        killed = kill_when_running(marker)
        runner.join(WAIT_SECONDS)
    (result,) = results
    if attempts == 2:
        assert result.success and result.attempts == 2
        assert result.update["pid"] != killed
    else:
        assert not result.success and result.error is not None
        assert (result.error.type, result.error.category) == ("WorkerDied", "worker_died")
        assert "died while running the branch" in result.error.message


def test_the_embedded_cluster_lives_as_long_as_the_executor(tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with DaskExecutor() as executor:
        results = list(executor.run(Recorder(str(tmp_path / "log")), [branch(i, {}) for i in range(4)],
                                    ParallelConfig(strategy="dask")))
    pids = {r.update["pid"] for r in results}
    assert all(r.success for r in results) and os.getpid() not in pids
    deadline = time.monotonic() + WAIT_SECONDS
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "the embedded cluster's workers outlived close()"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
