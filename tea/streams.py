"""The stream modes of a run: which of its events ``Run.stream()`` yields in each.

A module of its own, importing nothing, so that a front end can offer the modes
(``tea run --stream-mode``) without loading the engine.
"""

from __future__ import annotations

__all__ = ["STREAM_MODES", "wanted_events"]

STREAM_MODES = ("updates", "values", "debug")
_UPDATES_EVENTS = frozenset({"start", "node_end", "branch_end", "interrupt", "error", "end"})
_VALUES_EVENTS = frozenset({"start", "state", "interrupt", "error", "end"})


def wanted_events(mode: str) -> frozenset[str] | None:
    """The event types that ``mode`` yields (``None``: all of them, in ``debug``)."""
    if mode == "updates":
        return _UPDATES_EVENTS
    if mode == "values":
        return _VALUES_EVENTS
    return None
