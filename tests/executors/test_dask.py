"""The dask backend beyond the contract, on the session's in-process LocalCluster: chunks, task
keys, the cap on tasks in flight, stopping branches on the workers, and setup errors."""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import distributed
import pytest

from executors import BranchTask, ParallelConfig
from executors.dask import DaskExecutor, DaskOptions, DaskSetupError, SchedulerUnreachable
from tea.errors import SerializationError

pytestmark = pytest.mark.timeout(60)

SHARED: dict[str, Any] = {"base": 10}


class Probe:
    """A ``BranchProgram`` whose branches do what their overrides say, and report the Dask
    task they ran in. Its workers run in the test process, so a class attribute is shared."""

    key = "dask-probe"
    running = 0
    most = 0
    lock = threading.Lock()

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        own = task.overrides
        with Probe.lock:
            Probe.running += 1
            Probe.most = max(Probe.most, Probe.running)
        try:
            if "ticks" in own:  # 20 ms ticks, one line each in a file, stopping when cancelled
                for _ in range(own["ticks"]):
                    if cancel is not None and cancel.is_set():
                        break
                    with open(own["log"], "a") as handle:
                        handle.write("tick\n")
                    time.sleep(0.02)
            if "nested" in own:
                return {"nested": _nested(own["nested"])}
            if own.get("touch"):
                Path(own["touch"]).write_text("ran")
            if own.get("hold"):
                time.sleep(own["hold"])
        finally:
            with Probe.lock:
                Probe.running -= 1
        worker = distributed.get_worker()
        return {"y": own["x"] + task.state["base"], "key": str(worker.get_current_task())}


def _nested(count: int) -> list[int]:
    """A fan-out started inside a Dask branch, with no address: it joins the same cluster."""
    tasks = [branch(i) for i in range(count)]
    with DaskExecutor() as inner:
        return sorted(r.update["y"] for r in inner.run(Probe(), tasks, ParallelConfig(strategy="dask")))


def branch(index: int, shared: dict[str, Any] = SHARED, **own: Any) -> BranchTask:
    return BranchTask(
        f"fan[{index}]", "work", None, shared, index=index, target="fan",
        overrides={"x": index, **own},
    )


@pytest.fixture
def config(dask_address: str) -> ParallelConfig:
    return ParallelConfig(strategy="dask", options=DaskOptions(address=dask_address))


@pytest.fixture
def executor():
    with DaskExecutor() as made:
        yield made


def ticks(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def stops_ticking(log: Path) -> bool:
    """Whether the branch writing ``log`` stopped: no new tick for half a second."""
    for _ in range(20):
        before = ticks(log)
        time.sleep(0.5)
        if ticks(log) == before:
            return True
    return False


def test_a_wide_fan_out_goes_in_chunks_with_results_per_branch(executor, config):
    options = DaskOptions(address=config.options.address, chunk_size=7)
    tasks = [branch(i) for i in range(60)]
    results = list(executor.run(Probe(), tasks, ParallelConfig(strategy="dask", options=options)))
    assert sorted(r.index for r in results) == list(range(60))
    assert all(r.success and r.update["y"] == r.index + 10 for r in results)
    chunks: dict[str, set[str]] = defaultdict(set)
    for result in results:
        chunks[result.update["key"]].add(result.branch_id)
    assert max(len(members) for members in chunks.values()) <= 7
    assert math.ceil(60 / 7) <= len(chunks) < 60  # a chunk may go out part-full when a slot is free
    for key, members in chunks.items():
        # Task keys name the fan-out and the chunk's first and last branch, for the dashboard.
        named = re.fullmatch(r"tea:fan-[0-9a-f]{32}-(fan\[\d+\])(?:\.\.(fan\[\d+\]))?", key)
        assert named is not None, key
        assert {named[1], named[2] or named[1]} <= members
    first = results[0]
    with distributed.Client(config.options.address, set_as_default=False) as client:
        assert first.host in client.nthreads()


def test_each_branch_reads_its_own_shared_input_whatever_the_chunks(executor, config):
    options = DaskOptions(address=config.options.address, chunk_size=4)
    inputs = [{"base": 100}, {"base": 200}]
    tasks = [branch(i, inputs[i % 2]) for i in range(12)]
    results = list(executor.run(Probe(), tasks, ParallelConfig(strategy="dask", options=options)))
    assert {r.index: r.update["y"] for r in results} == {i: i + inputs[i % 2]["base"] for i in range(12)}


def test_max_workers_caps_the_tasks_in_flight(executor, config):
    options = DaskOptions(address=config.options.address, chunk_size=1)
    Probe.most = 0
    tasks = [branch(i, hold=0.05) for i in range(8)]
    capped = ParallelConfig(strategy="dask", options=options, max_workers=2)
    assert all(r.success for r in executor.run(Probe(), tasks, capped))
    assert Probe.most == 2


def test_an_unpicklable_shared_input_is_refused_before_any_branch_starts(executor, config, tmp_path):
    marker = tmp_path / "ran"
    shared = {"base": 1, "db": {"conn": threading.Lock()}}
    with pytest.raises(SerializationError, match=r"state key 'db.conn' of the fan-out's shared input"):
        executor.run(Probe(), [branch(0, shared, touch=str(marker))], config)
    assert not marker.exists()


def test_unpicklable_overrides_are_refused_naming_the_branch(executor, config):
    with pytest.raises(SerializationError) as caught:
        executor.run(Probe(), [branch(0), branch(1, lock=threading.Lock())], config)
    assert caught.value.branch == "fan[1]"
    assert "state key 'lock' of the branch's own input" in caught.value.message


def test_a_timed_out_branch_has_its_task_cancelled_and_stops_on_the_worker(executor, config, tmp_path):
    log = tmp_path / "ticks"
    tasks = [branch(0, ticks=1000, log=str(log)), branch(1)]
    results = {r.index: r for r in executor.run(Probe(), tasks, ParallelConfig(
        strategy="dask", options=config.options, timeout_seconds=0.5))}
    assert results[0].error is not None and results[0].error.category == "timeout"
    assert results[1].success
    assert stops_ticking(log)
    assert ticks(log) < 1000


def test_a_cancel_stops_the_branches_running_on_the_workers(executor, config, tmp_path):
    logs = [tmp_path / f"ticks-{i}" for i in range(2)]
    tasks = [branch(0), *(branch(i + 1, ticks=1000, log=str(log)) for i, log in enumerate(logs))]
    cancel = threading.Event()
    results = []
    for result in executor.run(Probe(), tasks, config, cancel):
        results.append(result)
        cancel.set()
    assert [r.error.category for r in results[1:] if r.error] == ["cancelled", "cancelled"]
    assert all(stops_ticking(log) for log in logs)


def test_nested_fan_outs_join_the_cluster_they_run_on(executor, config, dask_address, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with distributed.Client(dask_address, set_as_default=False) as client:
        threads = sum(client.nthreads().values())
    # As many outer branches as worker threads: each waits for inner ones, which need threads.
    results = list(executor.run(Probe(), [branch(i, nested=2) for i in range(threads)], config))
    assert all(r.success for r in results), [r.error for r in results]
    assert all(r.update["nested"] == [10, 11] for r in results)


def test_the_scheduler_variable_names_the_cluster(executor, dask_address, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_address)
    (result,) = executor.run(Probe(), [branch(0)], ParallelConfig(strategy="dask"))
    assert result.success and result.pid == os.getpid()  # the in-process cluster ran it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_scheduler_is_a_setup_error_naming_the_address(executor):
    address = f"tcp://127.0.0.1:{free_port()}"
    config = ParallelConfig(strategy="dask", options=DaskOptions(address=address, connect_timeout=1))
    with pytest.raises(SchedulerUnreachable) as caught:
        executor.run(Probe(), [branch(0)], config)
    error = caught.value
    assert f"no Dask scheduler answered at {address} (settings.parallel.dask.address) within 1s" in (
        error.message
    )
    assert (error.category, error.exit_code, error.branch) == ("setup", 1, "fan[0]")


def test_a_cluster_without_workers_is_a_setup_error():
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", dashboard_address="127.0.0.1:0"
    ) as empty, DaskExecutor() as executor:
        options = DaskOptions(address=empty.scheduler_address, connect_timeout=1)
        with pytest.raises(DaskSetupError, match="has no running worker"):
            executor.run(Probe(), [branch(0)], ParallelConfig(strategy="dask", options=options))
