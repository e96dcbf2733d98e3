"""Fixtures for the executor tests: one ``backend`` per strategy that the contract suite covers.

A new backend joins the contract suite by adding a builder to ``BACKENDS``: a
function taking pytest's ``request`` (so it can ask for its own fixtures, such as
a real sshd) and returning a ``Backend``. The suite then runs against it unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from contract_program import ContractProgram
from sshd_hosts import SshCluster
from sshd_plugin import sshd_unavailable

from executors import (
    BranchProgram,
    BranchTask,
    ParallelConfig,
    ParallelExecutor,
    get_executor,
    register_executor,
)
from executors.testing import InlineExecutor
from remote.executor import RemoteExecutor

SHARED: Mapping[str, Any] = {"ticks": 0, "slow_ticks": 0}
"""The shared input of the tasks ``make_task`` builds (the same object for all)."""


@dataclass
class Backend:
    """A strategy under test: how to build its executors and its base ``ParallelConfig``.

    ``concurrent`` is false for a backend that runs branches one after the other
    (the inline test double): tests about concurrency skip it.
    """

    strategy: str
    config: ParallelConfig
    build: Callable[[], ParallelExecutor]
    concurrent: bool = True
    made: list[ParallelExecutor] = field(default_factory=list)

    def executor(self) -> ParallelExecutor:
        """A new executor, closed at the end of the test."""
        executor = self.build()
        self.made.append(executor)
        return executor

    def configure(self, **changes: Any) -> ParallelConfig:
        """The backend's base config with ``changes`` applied."""
        return replace(self.config, **changes)

    def require_concurrency(self) -> None:
        if not self.concurrent:
            pytest.skip(f"the {self.strategy} backend runs branches one at a time")


def _local(strategy: str) -> Callable[[pytest.FixtureRequest], Backend]:
    def build(request: pytest.FixtureRequest) -> Backend:
        return Backend(strategy, ParallelConfig(strategy=strategy), lambda: get_executor(strategy))

    return build


def _inline(request: pytest.FixtureRequest) -> Backend:
    register_executor("inline", InlineExecutor)
    return Backend(
        "inline", ParallelConfig(strategy="inline"), lambda: get_executor("inline"),
        concurrent=False,
    )


def _dask(request: pytest.FixtureRequest) -> Backend:
    """The dask strategy on a LocalCluster inside the test process (threads, real TCP)."""
    from executors.dask import DaskOptions

    options = DaskOptions(address=request.getfixturevalue("dask_address"))
    return Backend("dask", ParallelConfig(strategy="dask", options=options), lambda: get_executor("dask"))


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """The scheduler address of one in-process LocalCluster (2 workers of 2 threads) per session."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, protocol="tcp",
        dashboard_address="127.0.0.1:0",
    ) as cluster:
        yield cluster.scheduler_address


def _remote(transport: str) -> Callable[[pytest.FixtureRequest], Backend]:
    """The remote strategy over ``transport`` on the three sshd test hosts (tests/sshd_plugin.py).

    The hosts are reached as root because the suite's branches write counters into
    the driver's private ``tmp_path``; ``ContractProgram`` travels by value
    (cloudpickle), as a program built in Python does.
    """

    def build(request: pytest.FixtureRequest) -> Backend:
        reason = sshd_unavailable()
        if reason is None and transport == "gnu_parallel" and shutil.which("parallel") is None:
            reason = "GNU Parallel is not installed (run scripts/test-deps.sh)"
        if reason is not None:
            pytest.skip(reason)
        cluster: SshCluster = request.getfixturevalue("private_home")
        work, cache = request.getfixturevalue("remote_dirs")
        launcher: Path = request.getfixturevalue("launcher")
        settings = cluster.remote_settings(work, cache, basefile=str(launcher), transport=transport)
        settings["hosts"] = [host.root_login for host in cluster.hosts]
        config = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        return Backend("remote", config, lambda: get_executor("remote"))

    return build


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "thread": _local("thread"),
    "process": _local("process"),
    "inline": _inline,
    "dask": _dask,
    "remote": _remote("ssh"),
    "remote_gnu_parallel": _remote("gnu_parallel"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each contract test runs once per entry of ``BACKENDS``."""
    chosen = BACKENDS[request.param](request)
    yield chosen
    for executor in chosen.made:
        executor.close()


@pytest.fixture(scope="session")
def contract_program() -> BranchProgram:
    """The program of the contract suite (``contract_program.ContractProgram``)."""
    return ContractProgram()


def _make_task(
    index: int, *, target: str | None = None, shared: Mapping[str, Any] = SHARED, **overrides: Any
) -> BranchTask:
    name = target or f"b{index}"
    return BranchTask(
        branch_id=f"start[{index}]",
        entry="work",
        exit="done",
        state=shared,
        index=index,
        target=name,
        overrides={"i": index, "name": name, **overrides},
    )


@pytest.fixture
def make_task() -> Callable[..., BranchTask]:
    """``make_task(index, target=..., shared=..., **overrides)``: a branch of the contract
    program; ``shared`` is the fan-out's input (``SHARED`` unless given), the keyword
    arguments the branch's own keys (see ``ContractProgram`` for what they do)."""
    return _make_task
