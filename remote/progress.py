"""A live view of branches: queued, and per host running, done, failed, lost; terminal only.

``Progress.for_terminal(hosts)`` draws a ``rich`` table as a panel of the run's progress
board (``tea.ProgressBoard.join``): under the fan-out lines of ``tea run`` when a front
end opened the board, on a board of its own otherwise. The board draws on stderr only
when it is a terminal (not with ``-q`` or ``TEA_PROGRESS=0``); else the table only
counts, so nothing extra ever reaches stdout or a pipe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import tea

__all__ = ["Progress"]

_COLUMNS = ("running", "done", "failed", "lost")


class Progress:
    """Counts per host; ``update`` is cheap and safe from any thread."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.counts = {host: dict.fromkeys(_COLUMNS, 0) for host in hosts}
        self.queued = 0
        self._hide: Callable[[], None] | None = None
        """Takes the table off the board, while it is drawn."""
        self._board: tea.ProgressBoard | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_terminal(cls, hosts: Sequence[str]) -> Progress:
        """Counts drawn on the progress board when it is live (see the module docstring)."""
        progress = cls(hosts)
        board, owned = tea.ProgressBoard.join()
        if owned:
            progress._board = board
        if board.live:
            progress._hide = board.panel(progress._table).close
        elif owned:  # nothing to draw on: let go of it at once
            board.close()
            progress._board = None
        return progress

    @property
    def drawn(self) -> bool:
        """Whether the table is on a live board."""
        return self._hide is not None

    def update(self, host: str, event: str) -> None:
        """Record ``event`` (running, done, failed, lost) for ``host``."""
        with self._lock:
            counts = self.counts.setdefault(host, dict.fromkeys(_COLUMNS, 0))
            if event != "running" and counts["running"] > 0:
                counts["running"] -= 1
            counts[event] = counts.get(event, 0) + 1

    def waiting(self, delta: int) -> None:
        """Branches queued for a free slot on any host went up or down by ``delta``."""
        with self._lock:
            self.queued += delta

    def _table(self) -> Any:
        """The table as it stands (the board calls this at each redraw, from its thread)."""
        from rich.table import Table

        with self._lock:
            queued = self.queued
            rows = [(host, *(str(counts[c]) for c in _COLUMNS)) for host, counts in self.counts.items()]
        table = Table(title=f"remote branches ({queued} queued)", expand=False)
        table.add_column("host")
        for column in _COLUMNS:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        return table

    def close(self) -> None:
        """Take the table off the board (and close the board if it opened it). Idempotent."""
        hide, self._hide = self._hide, None
        board, self._board = self._board, None
        if hide is not None:
            hide()
        if board is not None:
            board.close()
