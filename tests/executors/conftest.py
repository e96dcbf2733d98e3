"""Fixtures for the executor tests: one ``backend`` per strategy that the contract suite covers.

A new backend joins the contract suite by adding a builder to ``BACKENDS``: a
function taking pytest's ``request`` (so it can ask for its own fixtures, such as
a real sshd) and returning a ``Backend``. The suite then runs against it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

import tea
from executors import BranchProgram, BranchTask, ParallelConfig, ParallelExecutor, get_executor

CONTRACT_WORKFLOW = Path(__file__).with_name("contract_workflow.yaml")


@dataclass
class Backend:
    """A strategy under test: how to build its executors and its base ``ParallelConfig``."""

    strategy: str
    config: ParallelConfig
    build: Callable[[], ParallelExecutor]
    made: list[ParallelExecutor] = field(default_factory=list)

    def executor(self) -> ParallelExecutor:
        """A new executor, closed at the end of the test."""
        executor = self.build()
        self.made.append(executor)
        return executor

    def configure(self, **changes: Any) -> ParallelConfig:
        """The backend's base config with ``changes`` applied."""
        return replace(self.config, **changes)


def _local(strategy: str) -> Callable[[pytest.FixtureRequest], Backend]:
    def build(request: pytest.FixtureRequest) -> Backend:
        return Backend(strategy, ParallelConfig(strategy=strategy), lambda: get_executor(strategy))

    return build


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "thread": _local("thread"),
    "process": _local("process"),
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
    """The compiled contract workflow: branches enter at ``work`` and stop before ``done``."""
    program: BranchProgram = tea.load(CONTRACT_WORKFLOW).graph
    return program


def _make_task(index: int, *, target: str | None = None, **state: Any) -> BranchTask:
    name = target or f"b{index}"
    initial = {"i": index, "name": name, "ticks": 0, "slow_ticks": 0, **state}
    return BranchTask(
        branch_id=f"start[{index}]",
        entry="work",
        exit="done",
        state=initial,
        index=index,
        target=name,
    )


@pytest.fixture
def make_task() -> Callable[..., BranchTask]:
    """``make_task(index, target=..., **state)``: a branch of the contract workflow.

    State keys choose what it does: ``sleep`` (seconds, in one node), ``slow_ticks``
    (20 ms loop iterations, so a cancel stops it at the next one), ``fail``,
    ``counter`` + ``fail_times`` (fails that many times, counted in a file),
    ``shared`` (``{"seen": []}``, appended to).
    """
    return _make_task
