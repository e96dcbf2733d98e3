"""Progress on a terminal: one live ``rich`` display on stderr for all the work in flight.

::

    board = ProgressBoard.open()       live on stderr when it is a terminal (TEA_PROGRESS=0: never),
                                       else silent; closing it removes the display
    board, owned = ProgressBoard.join()   the board open in this process (shared: owned is
                                       False), else one opened for the caller to close
    board.watch(run)                   each fan-out of a ``Run``: a line with done, running and
                                       failed branches, elapsed time and ETA (any strategy:
                                       it listens to ``Run.watch``'s branch events)
    counter = board.counter(label, total)   other work that counts (a mission's steps):
                                       counter.started(n), counter.finished(status), counter.close()
    panel = board.panel(render)        a renderable of one's own drawn under the lines (the
                                       remote strategy's per-host table): panel.refresh(), .close()
    board.close()

``progress_board()`` is the board open in this process, or a silent one, for code that
runs under a front end and is not handed the board. Code that may run without a front
end (a mission run from Python, the remote strategy's host table) uses ``join``: one
display per run, and a front end's silent board (``-q``) keeps everything under it
silent. Nothing here writes to stdout, which carries a run's data. Thread-safe:
events arrive from the threads that finish branches or steps.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.progress import Progress

    from tea.run import Run

__all__ = ["Counter", "Panel", "ProgressBoard", "progress_board", "wanted"]

STATUSES = ("success", "failed", "skipped")
"""How a counted unit of work ends: ``failed`` and ``skipped`` are shown, with ``done``."""


def wanted(quiet: bool = False) -> bool:
    """Whether a live display belongs on this stderr: a terminal, not ``quiet``, and
    ``TEA_PROGRESS`` is not ``0``."""
    if quiet or os.environ.get("TEA_PROGRESS") == "0":
        return False
    stream = sys.stderr
    return stream is not None and stream.isatty()


class Counter:
    """Units of work of one kind (one fan-out's branches, one mission's steps) and how
    they went. Methods are safe from any thread."""

    def __init__(self, board: ProgressBoard, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.counts = {"done": 0, "running": 0, "failed": 0, "skipped": 0}
        self._board = board
        self._task: Any = board._add(self)

    def add(self, count: int = 1) -> None:
        """``count`` more units to do (a fan-out learns its size branch by branch)."""
        with self._board._lock:
            self.total += count
        self._board._draw(self)

    def started(self, count: int = 1) -> None:
        """``count`` units started."""
        with self._board._lock:
            self.counts["running"] += count
        self._board._draw(self)

    def finished(self, status: str = "success", was_running: bool = True) -> None:
        """One unit ended as ``status`` (``success``, ``failed`` or ``skipped``);
        ``was_running`` is false for one that never started (skipped before it could)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        with self._board._lock:
            if was_running and self.counts["running"] > 0:
                self.counts["running"] -= 1
            self.counts["done"] += 1
            if status != "success":
                self.counts[status] += 1
        self._board._draw(self)

    @property
    def complete(self) -> bool:
        return self.counts["done"] >= self.total

    def detail(self) -> str:
        """``done 3 · running 2 · failed 1`` (skipped only when some were)."""
        c = self.counts
        text = f"done {c['done'] - c['failed'] - c['skipped']} · running {c['running']} · failed {c['failed']}"
        return text + (f" · skipped {c['skipped']}" if c["skipped"] else "")

    def close(self) -> None:
        """Take the line off the display (the counts stay readable)."""
        self._board._remove(self)


class Panel:
    """A renderable drawn under the board's lines, rendered again at each refresh."""

    def __init__(self, board: ProgressBoard, render: Callable[[], RenderableType]) -> None:
        self.render = render
        self._board = board

    def refresh(self) -> None:
        """Draw now (the board also redraws a few times a second)."""
        self._board._refresh()

    def close(self) -> None:
        """Take the panel off the display. Idempotent."""
        with self._board._panels_lock:
            self._board._panels.pop(self, None)
        self._board._refresh()


class ProgressBoard:
    """The display (or, silent, only the counts). Use ``open``; close it when done."""

    _active: ProgressBoard | None = None
    _active_lock = threading.RLock()

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress
        # Never held while calling rich: its refresh thread holds rich's lock and asks for
        # the panels (under _panels_lock only).
        self._lock = threading.RLock()
        self._panels_lock = threading.Lock()
        self._panels: dict[Panel, None] = {}  # in the order they came
        self._fanouts_lock = threading.Lock()
        self._fanouts: dict[str, Counter] = {}
        self._growing: set[str] = set()
        """Fan-outs whose size the events did not say: each start adds a branch."""

    @property
    def live(self) -> bool:
        """Whether this board draws on the terminal."""
        return self._progress is not None

    @classmethod
    def open(cls, enabled: bool | None = None) -> ProgressBoard:
        """A live board when ``enabled`` (``None``: ``wanted()``) and no other live board is
        open in this process; else a silent one. It becomes ``progress_board()``."""
        with cls._active_lock:
            if enabled is None:
                enabled = wanted()
            live = enabled and (cls._active is None or not cls._active.live)
            board = cls()
            if live:
                board._progress = _new_progress(board._renderables)
                board._progress.start()
            if cls._active is None or board.live:
                cls._active = board
            return board

    @classmethod
    def join(cls, enabled: bool | None = None) -> tuple[ProgressBoard, bool]:
        """``(board, owned)``: the board open in this process, live or silent, with
        ``owned`` false (its opener closes it); when none is open, a board opened as by
        ``open(enabled)``, with ``owned`` true (the caller closes it)."""
        with cls._active_lock:
            if cls._active is not None:
                return cls._active, False
            return cls.open(enabled), True

    def watch(self, run: Run) -> None:
        """Show each fan-out of ``run`` as it runs (``Run.watch``'s branch events)."""
        run.watch(self.branch_event)

    def branch_event(self, event: dict[str, Any]) -> None:
        """A ``branch_start`` or ``branch_end`` event: count it on its fan-out's line.

        A start that says how many branches its fan-out runs (``total``) sizes the line
        at once; otherwise each start adds one. Events may come from several threads."""
        name = str(event.get("fanout"))
        with self._fanouts_lock:
            counter = self._fanouts.get(name)
            if event.get("type") == "branch_start":
                if counter is None or counter.complete:
                    total = _total(event)
                    counter = self._fanouts[name] = Counter(self, _fanout_label(event), total)
                    if total:
                        self._growing.discard(name)
                    else:
                        self._growing.add(name)
                if name in self._growing:
                    counter.add()
                counter.started()
            elif event.get("type") == "branch_end" and counter is not None:
                counter.finished(_status(event))
                if counter.complete:
                    counter.close()

    def counter(self, label: str, total: int) -> Counter:
        """A line of its own for ``total`` units of work (a mission's steps)."""
        return Counter(self, label, total)

    def panel(self, render: Callable[[], RenderableType]) -> Panel:
        """Draw ``render()`` under the lines until the panel is closed."""
        panel = Panel(self, render)
        with self._panels_lock:
            self._panels[panel] = None
        self._refresh()
        return panel

    def close(self) -> None:
        """Remove the display. Idempotent."""
        with ProgressBoard._active_lock:
            if ProgressBoard._active is self:
                ProgressBoard._active = None
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _add(self, counter: Counter) -> Any:
        progress = self._progress
        if progress is None:
            return None
        task = progress.add_task(counter.label, total=counter.total or None, detail=counter.detail())
        progress.refresh()  # drawn at once: a short fan-out shows too
        return task

    def _draw(self, counter: Counter) -> None:
        progress = self._progress
        if progress is not None and counter._task is not None:
            with self._lock:
                done, total, detail = counter.counts["done"], counter.total, counter.detail()
            progress.update(counter._task, completed=done, total=total or None, detail=detail)

    def _remove(self, counter: Counter) -> None:
        progress = self._progress
        if progress is not None and counter._task is not None:
            progress.remove_task(counter._task)
            counter._task = None
            progress.refresh()

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.refresh()

    def _renderables(self) -> Iterable[RenderableType]:
        with self._panels_lock:
            panels = list(self._panels)
        return [panel.render() for panel in panels]


_SILENT = ProgressBoard()


def progress_board() -> ProgressBoard:
    """The board open in this process, or a silent one (never ``None``)."""
    return ProgressBoard._active or _SILENT


def _fanout_label(event: dict[str, Any]) -> str:
    strategy = event.get("strategy")
    return f"fan-out {event.get('fanout')}" + (f" ({strategy})" if strategy else "")


def _total(event: dict[str, Any]) -> int:
    """How many branches the event's fan-out runs, when it says (else 0)."""
    total = event.get("total")
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else 0


def _status(event: dict[str, Any]) -> str:
    if event.get("success"):
        return "success"
    error = event.get("error") or {}
    return "skipped" if error.get("category") == "cancelled" else "failed"


def _new_progress(extra: Callable[[], Iterable[RenderableType]]) -> Progress:
    """A ``rich`` progress display on stderr that also draws ``extra()`` (the panels)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _BoardProgress(Progress):
        def get_renderables(self) -> Iterable[RenderableType]:
            yield from super().get_renderables()
            yield from extra()

    return _BoardProgress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(file=sys.stderr), transient=True, refresh_per_second=4,
        # Lines written to sys.stderr (logs, print in a node) go above the display, not
        # through it. stdout may carry a run's data: never captured or moved.
        redirect_stdout=False, redirect_stderr=True,
    )
