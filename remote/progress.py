"""A live view of branches: queued, and per host running, done, failed, lost; terminal only.

``Progress.for_terminal(hosts)`` returns a ``rich`` live table drawn on stderr when
stderr is a terminal, and a silent recorder otherwise, so nothing extra ever
reaches stdout or a pipe. ``TEA_PROGRESS=0`` turns the display off.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["Progress"]

_COLUMNS = ("running", "done", "failed", "lost")


class Progress:
    """Counts per host; ``update`` is cheap and safe from any thread."""

    def __init__(self, hosts: Sequence[str], live: Any = None) -> None:
        self.counts = {host: dict.fromkeys(_COLUMNS, 0) for host in hosts}
        self.queued = 0
        self._live = live
        self._lock = threading.Lock()

    @classmethod
    def for_terminal(cls, hosts: Sequence[str]) -> Progress:
        """A live display when stderr is a terminal (and ``TEA_PROGRESS`` is not 0)."""
        if os.environ.get("TEA_PROGRESS") == "0" or not sys.stderr.isatty():
            return cls(hosts)
        from rich.console import Console
        from rich.live import Live

        progress = cls(hosts)
        live = Live(
            progress._table(),
            console=Console(stderr=True),
            refresh_per_second=4,
            transient=True,
            # stdout may carry the run's NDJSON events: never capture or move it.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        live.start()
        progress._live = live
        return progress

    def update(self, host: str, event: str) -> None:
        """Record ``event`` (running, done, failed, lost) for ``host``."""
        with self._lock:
            counts = self.counts.setdefault(host, dict.fromkeys(_COLUMNS, 0))
            if event != "running" and counts["running"] > 0:
                counts["running"] -= 1
            counts[event] = counts.get(event, 0) + 1
            if self._live is not None:
                self._live.update(self._table())

    def waiting(self, delta: int) -> None:
        """Branches queued for a free slot on any host went up or down by ``delta``."""
        with self._lock:
            self.queued += delta
            if self._live is not None:
                self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"remote branches ({self.queued} queued)", expand=False)
        table.add_column("host")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for host, counts in self.counts.items():
            table.add_row(host, *(str(counts[c]) for c in _COLUMNS))
        return table

    def close(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
