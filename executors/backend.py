"""``BaseExecutor``: what every backend shares, so that a backend is one ``attempt`` function.

::

    BaseExecutor.run(program, tasks, config, cancel)
      └─ _prepare(program, tasks, config, workers) ─► attempt   (the backend: check the
         │                                                       batch, may raise first)
         └─ BatchRunner.run(tasks, config, attempt)             (retries, breakers,
                                                                 timeouts, fail_fast)

It owns the ``BatchRunner`` (and so the breakers) for the executor's life, one
run; the context manager; and an idempotent ``close()``.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self

from executors.base import BranchProgram, BranchResult, BranchStarted, BranchTask, ParallelConfig
from executors.resilience import Attempt, BatchRunner

__all__ = ["BaseExecutor"]


class BaseExecutor(abc.ABC):
    """Shared base of the backends: a ``ParallelExecutor`` once ``_prepare`` is written.

    A backend implements ``_prepare`` (check the batch, return its ``attempt``
    function), may change ``_default_workers``, and extends ``close`` when it holds
    resources of its own. Thread-safe as long as ``_prepare`` and ``attempt`` are.
    """

    strategy = "base"

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers
        self._runner = BatchRunner()
        self._closed = False

    def run(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        cancel: threading.Event | None = None,
        on_start: BranchStarted | None = None,
    ) -> Iterator[BranchResult]:
        """Start the batch and yield results as branches finish (see ``ParallelExecutor``)."""
        self._check_open()
        workers = self._workers(config)
        attempt = self._prepare(program, tasks, config, workers)
        return self._runner.run(tasks, config, attempt, workers=workers, cancel=cancel, on_start=on_start)

    @abc.abstractmethod
    def _prepare(
        self,
        program: BranchProgram,
        tasks: Sequence[BranchTask],
        config: ParallelConfig,
        workers: int,
    ) -> Attempt:
        """Check the batch (may raise before anything starts) and return its ``attempt``."""

    def _workers(self, config: ParallelConfig) -> int:
        """How many branches of a batch run at once."""
        return config.max_workers or self._max_workers or self._default_workers()

    def _default_workers(self) -> int:
        return os.cpu_count() or 1

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the {self.strategy} executor is closed")

    def close(self) -> None:
        """Release the backend's workers or connections. Idempotent; ``run`` fails after."""
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
