"""Stream events that travel with a log line (a retry, a fallback), wherever a branch runs.

::

    report(logger, level, message, event)   one line for people (the record) and one stream
                                            event (attached to it as ``EVENT_KEY``)
    with capture() as entries:              in a worker process running a branch: reports
        program.run_branch(task)            are kept in ``entries`` (plain data) instead of
                                            logged, to travel back in ``BranchResult.events``
    replay(entries)                         in the driver: each entry reported again there

A thread branch reports in the driver's own process, where the front end's handlers
see the record as it happens. A process or remote branch reports in a worker, whose
log records reach nobody: there its reports are captured, carried back with the
result, and replayed by the driver before the branch's end is reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["EVENT_KEY", "capture", "replay", "report"]

EVENT_KEY = "tea_event"
"""The attribute of a log record that carries the record's stream event (a dict): a
front end shows the record as a line and may add the event to its output."""

_lock = threading.Lock()
_captured: list[dict[str, Any]] | None = None
"""Where reports go while a worker runs a branch (one branch at a time per process,
nested thread fan-outs included): ``None`` means log them."""


def report(logger: logging.Logger, level: int, message: str, event: Mapping[str, Any]) -> None:
    """Log ``message`` at ``level`` on ``logger`` with ``event`` attached, or keep both
    for the driver while a ``capture`` is open in this process."""
    with _lock:
        sink = _captured
        if sink is not None:
            sink.append({"logger": logger.name, "level": level, "message": message, "event": dict(event)})
            return
    logger.log(level, "%s", message, extra={EVENT_KEY: dict(event)})


@contextmanager
def capture() -> Iterator[list[dict[str, Any]]]:
    """Keep this process's reports in the yielded list until the block ends (a worker
    process around one branch). Entries are plain data: JSON and pickle carry them."""
    global _captured
    entries: list[dict[str, Any]] = []
    with _lock:
        outer, _captured = _captured, entries
    try:
        yield entries
    finally:
        with _lock:
            _captured = outer


def replay(entries: Iterable[Mapping[str, Any]]) -> None:
    """Report again, here, what a worker captured (a malformed entry is skipped: a worker
    of another version may send a shape this one does not know)."""
    for entry in entries:
        event, message = entry.get("event"), entry.get("message")
        if not isinstance(event, Mapping) or not isinstance(message, str):
            continue
        level = entry.get("level")
        name = entry.get("logger")
        logger = logging.getLogger(name if isinstance(name, str) and name else "tea")
        report(logger, level if isinstance(level, int) else logging.INFO, message, event)
