"""A loaded mission as read-only records: ``Mission`` → ``MissionConfig``, ``Step``\\ s and their ``Plan``.

Plain data only (``tea.mission.format`` builds them, the scheduler reads them);
every record pickles, so a mission can travel to worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tea.errors import Location
from tea.mission.dag import Plan

__all__ = ["CONFIG_DEFAULTS", "Mission", "MissionConfig", "Step", "default_workers"]


@dataclass(frozen=True, slots=True)
class MissionConfig:
    """The mission's ``config:`` block."""

    timeout_seconds: float | None = None
    """The whole mission's limit; when it passes, running steps are stopped and the rest skipped."""
    fail_fast: bool = True
    """Start nothing new after the first failure (steps already running finish)."""
    max_concurrent_steps: int | None = None
    """Steps running at once (default: the strategy's ``max_workers``)."""
    retry_attempts: int = 0
    """Tries after the first one, for every step (a step may set its own)."""
    retry_delay_ms: float = 0.0
    """Fixed wait between tries."""

    def values(self) -> dict[str, Any]:
        """The block as ``{{ config.* }}`` sees it."""
        return {name: getattr(self, name) for name in CONFIG_DEFAULTS}


CONFIG_DEFAULTS: Mapping[str, Any] = {
    name: getattr(MissionConfig(), name)
    for name in ("timeout_seconds", "fail_fast", "max_concurrent_steps", "retry_attempts", "retry_delay_ms")
}


@dataclass(slots=True)
class Step:
    """One step. ``parameters`` hold compiled templates (``tea.templates``) where the
    YAML had ``{{ }}``; ``reads`` are the step ids those templates read.

    Read-only like the other records, but not ``frozen``: a frozen dataclass sets each
    field through ``object.__setattr__``, which made building the 10,000 steps of a
    big mission cost more than checking them (1.8 µs a step, against 0.3 µs).
    """

    id: str
    name: str
    step_type: str
    depends_on: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: float | None = None
    continue_on_error: bool = False
    retry_attempts: int | None = None
    retry_delay_ms: float | None = None
    index: int = 0
    location: Location = field(default_factory=Location)
    reads: tuple[str, ...] = ()
    static: bool = True
    """True when ``parameters`` hold no template (nothing to render)."""


def default_workers(strategy: str) -> int:
    """Steps at once when neither the mission nor ``settings.parallel`` says: the thread
    strategy's default (``min(32, CPUs + 4)``), else the number of CPUs."""
    cpus = os.cpu_count() or 1
    return min(32, cpus + 4) if strategy == "thread" else cpus


@dataclass(frozen=True)
class Mission:
    """A validated mission, ready to plan and run."""

    name: str
    steps: tuple[Step, ...]
    plan: Plan
    config: MissionConfig = MissionConfig()
    version: str | None = None
    description: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The ``settings:`` block as plain data (``shell``, ``files``, ``llm``, ``parallel``)."""
    strategy: str = "thread"
    max_workers: int | None = None
    options: Any = None
    """The strategy's own options, parsed by its backend at load."""
    path: Path | None = None
    source_hash: str = ""
    by_id: Mapping[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {step.id: step for step in self.steps})

    @property
    def base_dir(self) -> Path:
        """The mission file's directory (the default files root; relative paths start here)."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def max_concurrent(self) -> int:
        """How many steps may run at once."""
        return (self.config.max_concurrent_steps or self.max_workers
                or default_workers(self.strategy))
