"""What loading collects as it goes: the problems found, and where each reference is written.

Every loading module reports into one ``Problems``, so ``tea validate`` can list
every problem of a file at once, each at its own line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tea.errors import LoadError, LoadErrors, Location

__all__ = ["Problems"]

T = TypeVar("T")

log = logging.getLogger("tea")


class Problems:
    """The load errors of one document, and the locations of its node references."""

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.errors: list[LoadError] = []
        self.warnings: list[str] = []
        self._refs: dict[tuple[str, str], Location] = {}

    def add(self, exc: LoadError) -> None:
        self.errors.append(exc)

    def warn(self, message: str, where: Location, hint: str | None = None) -> None:
        """A form that loads but is not honoured: one WARNING on the ``tea`` logger,
        ``file:line:col: message (hint)``, also kept in ``warnings``."""
        text = f"{where}: {message}"
        if hint:
            text += f" ({hint})"
        self.warnings.append(text)
        log.warning("%s", text)

    def guard(self, fn: Callable[[], T], default: T) -> T:
        """``fn()``; a ``LoadError`` it raises is kept and ``default`` returned instead."""
        try:
            return fn()
        except LoadError as exc:
            self.add(exc)
            return default

    def note(self, source: str, target: str, where: Location) -> None:
        """``source`` names ``target`` at ``where`` (the first mention wins)."""
        self._refs.setdefault((source, target), where)

    def where(self, source: str, target: str, default: Location) -> Location:
        """Where ``source`` names ``target``, else ``default``."""
        return self._refs.get((source, target), default)

    def raise_any(self) -> None:
        """Raise the one error found, or ``LoadErrors`` holding them all."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise LoadErrors(self.errors)
